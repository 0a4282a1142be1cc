"""A cache layer with room to grow in both directions: a decode step writes its column in place, and rows join
and leave a batch without copying the others.

transformers' `DynamicLayer` appends with `torch.cat`, so every step copies each layer's whole cache into a
fresh tensor (at 20 rows of the `small` model that was about half of a decode step on a CPU), and selecting or
stacking rows copies every row too. `RoomyLayer` keeps each layer's keys and values in buffers with spare rows
and columns; what attention sees (`keys`, `values`) are views of the filled part, `[:rows, :, start:end]`:

- `update` (a forward) writes new columns at `end`; the buffer is reallocated (doubling) only when it is full;
- `add_rows` (requests join) writes the joiners' rows after the others, their last column at `end`
  (right-aligned: every row's newest token sits in the same column, older ones to the left; the engine's
  mask hides each row's left padding, whose columns are zeroed so that a weight of 0 never meets a NaN);
- `keep_rows` (replies end) moves only the rows that fill the holes (`compaction`);
- `cut` drops left padding columns no row needs any more (the view starts later; nothing is copied).

Anyone may still assign `layer.keys` / `layer.values` (DynamicLayer's own methods do): the next call notices
and copies them into a fresh buffer once. Values are exactly those of `DynamicLayer` (in `dtype` if one is given:
float32 for bf16 models on a CPU, see `cpu_attention`); only where they live differs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

MIN_ROOM = 32  # spare columns at least, so short replies never reallocate


class RoomyLayer(DynamicLayer):
    def __init__(self, dtype: torch.dtype | None = None):
        super().__init__()
        self.dtype = dtype  # of the stored keys/values; None: as they come
        self._buffers: tuple[torch.Tensor, torch.Tensor] | None = None
        self._views: tuple[torch.Tensor, torch.Tensor] | None = None  # what keys/values were last set to here
        self.rows = self.start = self.end = 0

    # -- what a forward does ---------------------------------------------------------------------------
    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
               ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        self._take_over()
        rows, added = key_states.shape[0], key_states.shape[-2]
        if self._buffers is None or self.rows == 0:
            self.rows = rows
        assert rows == self.rows, f"an update for {rows} rows of a cache of {self.rows}"
        if self._buffers is None or self.end + added > self._buffers[0].shape[-2]:
            self._rebuffer(self.rows, self.width + added, offset=0, like=key_states)
        for buffer, new in zip(self._buffers, (key_states, value_states), strict=True):
            buffer[:rows, :, self.end:self.end + added].copy_(new)
        self.end += added
        return self._set_views()

    # -- what the engine does between steps ------------------------------------------------------------
    def add_rows(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Stack rows (their newest token last) after this layer's rows, aligned on the newest column."""
        self._take_over()
        joining, length = keys.shape[0], keys.shape[-2]
        if self._buffers is None or self.rows + joining > self._buffers[0].shape[0] or length > self.end:
            # more rows than the buffer holds, or longer than the room left of `end`: move into a new buffer
            width = max(self.width, length)
            self._rebuffer(max(2 * (self.rows + joining), 4), width, offset=width - self.width, like=keys)
        first = self.end - length
        if first < self.start:  # the joiners reach further left: the others get zero padding there
            for buffer in self._buffers:
                buffer[:self.rows, :, first:self.start].zero_()
            self.start = first
        for buffer, new in zip(self._buffers, (keys, values), strict=True):
            buffer[self.rows:self.rows + joining, :, self.start:first].zero_()
            buffer[self.rows:self.rows + joining, :, first:self.end].copy_(new)
        self.rows += joining
        self._set_views()

    def keep_rows(self, order: Sequence[int]) -> None:
        """Keep `len(order)` rows, row i being the former row order[i]; from `compaction` only the rows that fill
        the holes move (each source row lies past the kept ones, so nothing is overwritten before it is read)."""
        self._take_over()
        assert all(j == i or j >= len(order) for i, j in enumerate(order)), "not a compaction order"
        for i, j in enumerate(order):
            if i != j:
                for buffer in self._buffers:
                    buffer[i, :, self.start:self.end].copy_(buffer[j, :, self.start:self.end])
        self.rows = len(order)
        self._set_views()

    def cut(self, columns: int) -> None:
        """Drop the `columns` oldest columns (left padding that no row needs any more)."""
        self._take_over()
        assert 0 <= columns <= self.width
        self.start += columns
        self._set_views()

    # -- the buffers -----------------------------------------------------------------------------------
    @property
    def width(self) -> int:
        return self.end - self.start

    def _set_views(self) -> tuple[torch.Tensor, torch.Tensor]:
        keys, values = self._buffers
        self.keys, self.values = keys[:self.rows, :, self.start:self.end], values[:self.rows, :, self.start:self.end]
        self._views = (self.keys, self.values)
        return self.keys, self.values

    def _take_over(self) -> None:
        """keys/values were assigned by someone else since this layer last set them: copy those into a buffer."""
        if self._views is not None and self._views[0] is self.keys and self._views[1] is self.values:
            return
        self._buffers = self._views = None
        self.rows = self.start = self.end = 0
        if self.keys is not None and self.keys.numel() > 0:  # the assigned tensors are the filled part, copied in
            self._buffers, self.rows, self.end = (self.keys, self.values), self.keys.shape[0], self.keys.shape[-2]
            self._rebuffer(self.rows, self.width, offset=0, like=self.keys)
            self._set_views()

    def _rebuffer(self, rows: int, needed: int, offset: int, like: torch.Tensor) -> None:
        """New buffers for `rows` rows and `needed` columns with room to spare (twice as many, at least MIN_ROOM
        more); the filled part is copied in starting at column `offset`."""
        capacity = needed + max(MIN_ROOM, needed)
        shape = (max(rows, self.rows), like.shape[1], capacity, like.shape[3])
        fresh = tuple(like.new_empty(shape, dtype=self.dtype or like.dtype) for _ in range(2))
        if self._buffers is not None and self.width:
            for old, new in zip(self._buffers, fresh, strict=True):
                new[:self.rows, :, offset:offset + self.width].copy_(old[:self.rows, :, self.start:self.end])
        self._buffers, self.start, self.end = fresh, offset, offset + self.width


def compaction(keep: Sequence[int], rows: int) -> list[int]:
    """The order (new row i = old row order[i]) that keeps the rows `keep` of `rows` moving the fewest: kept rows
    stay where they are, and the holes among the first len(keep) rows take the kept rows from after them."""
    kept = set(keep)
    movers = iter(j for j in sorted(kept) if j >= len(kept))
    return [i if i in kept else next(movers) for i in range(len(kept))]


def keep_rows(cache: DynamicCache, order: Sequence[int]) -> None:
    """`RoomyLayer.keep_rows` on every layer of `cache`."""
    for layer in cache.layers:
        layer.keep_rows(order)


def roomy_cache(config, dtype: torch.dtype | None = None) -> DynamicCache:
    """A DynamicCache for `config` with RoomyLayers (keys/values stored in `dtype`, default as they come); only
    for models whose layers all use full attention."""
    cache = DynamicCache(config=config)
    if not all(type(layer) is DynamicLayer for layer in cache.layers):
        raise NotImplementedError("continuous batching needs full-attention layers (a plain DynamicCache); this model "
                                  f"uses {sorted({type(layer).__name__ for layer in cache.layers})}.")
    cache.layers = [RoomyLayer(dtype) for _ in cache.layers]
    return cache
