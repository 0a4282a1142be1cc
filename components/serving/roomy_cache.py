"""A cache layer whose keys and values have room to grow: a decode step writes its column in place.

transformers' `DynamicLayer` appends with `torch.cat`, so every step copies each layer's whole cache
into a fresh tensor: at 20 rows of the `small` model that was about half of a decode step on a CPU.
`RoomyLayer` keeps each layer's keys and values in a buffer with spare columns; what attention sees
(`keys`, `values`) are views of the filled part, and the buffer is reallocated (doubling) only when
it is full. Anyone may still assign `layer.keys` / `layer.values` (the engine stacks, selects and cuts
rows and padding columns that way): the next update notices the new tensors and copies them into a
fresh buffer once. Values are exactly those of `DynamicLayer` (in `dtype` if one is given: float32
for bf16 models on a CPU, see `cpu_attention`); only where they live differs.
"""

from __future__ import annotations

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

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
               ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        used, added = self.get_seq_length(), key_states.shape[-2]
        if not self._owns_views() or used + added > self._buffers[0].shape[-2]:
            self._rebuffer(key_states, value_states, used + added)
        keys, values = self._buffers
        keys[:, :, used:used + added].copy_(key_states)
        values[:, :, used:used + added].copy_(value_states)
        self.keys, self.values = keys[:, :, :used + added], values[:, :, :used + added]
        self._views = (self.keys, self.values)
        return self.keys, self.values

    def _owns_views(self) -> bool:
        """keys/values are still the views this layer made (not tensors someone assigned since)."""
        return self._views is not None and self._views[0] is self.keys and self._views[1] is self.values

    def _rebuffer(self, key_states: torch.Tensor, value_states: torch.Tensor, needed: int) -> None:
        """New buffers with room (twice what is needed, at least MIN_ROOM spare), the cached part copied in."""
        capacity = needed + max(MIN_ROOM, needed)
        buffers = []
        for cached, new in ((self.keys, key_states), (self.values, value_states)):
            shape = (new.shape[0], new.shape[1], capacity, new.shape[3])
            buffer = new.new_empty(shape, dtype=self.dtype or new.dtype)
            if cached.numel():
                buffer[:, :, :cached.shape[-2]].copy_(cached)
            buffers.append(buffer)
        self._buffers = (buffers[0], buffers[1])


def roomy_cache(config, dtype: torch.dtype | None = None) -> DynamicCache:
    """A DynamicCache for `config` with RoomyLayers (keys/values stored in `dtype`, default as they come); only
    for models whose layers all use full attention."""
    cache = DynamicCache(config=config)
    if not all(type(layer) is DynamicLayer for layer in cache.layers):
        raise NotImplementedError("continuous batching needs full-attention layers (a plain DynamicCache); this model "
                                  f"uses {sorted({type(layer).__name__ for layer in cache.layers})}.")
    cache.layers = [RoomyLayer(dtype) for _ in cache.layers]
    return cache
