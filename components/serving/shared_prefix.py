"""The prompt prefix that requests share (the chat template and the system prompt), prefilled once.

Every chat request starts with the same tokens: `<s><|system|>You are a helpful assistant.<|end|><|user|>` is 18 of
the demo's 31-44-token first prompts. The engine prefills those tokens once, keeps their keys and values, and
starts each joining request whose prompt begins with them from a copy: only the rest of the prompt is computed.
Keys and values depend only on the tokens and their positions, so a row's cache is the one a full prefill gives
(up to float rounding).

The prefix is learned, not configured: the longest common prefix of the prompts of a join (of a prompt that joins
alone and the last prompt seen before it), when it is at least `min_tokens` long and leaves every prompt a token of
its own. Prompts that share only part of it cut it to that part (a slice of what is kept); it is computed again
only when prompts share too little of it (another system prompt).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torch

KeysValues = list[tuple[torch.Tensor, torch.Tensor]]
"""Per layer, the keys and values of one row: [1, kv_heads, tokens, head_dim] each."""


class SharedPrefix:
    def __init__(self, prefill: Callable[[list[int]], KeysValues], min_tokens: int = 8):
        self._prefill, self.min_tokens = prefill, min_tokens
        self.ids: tuple[int, ...] = ()
        self.kv: KeysValues | None = None
        self._seen: tuple[int, ...] | None = None

    def covers(self, ids: Sequence[int]) -> bool:
        """`ids` starts with the prefix and has at least one token after it."""
        n = len(self.ids)
        return n > 0 and len(ids) > n and tuple(ids[:n]) == self.ids

    def learn(self, prompts: Sequence[Sequence[int]]) -> None:
        """Make the prefix one these prompts share: the current one cut to what they share with it (a slice of its
        keys/values, nothing computed), else what they share with each other (one prompt alone: with the last
        prompt seen before it), computed once."""
        candidates = [tuple(p) for p in prompts]
        if not candidates:
            return
        seen, self._seen = self._seen, candidates[-1]
        if all(self.covers(p) for p in candidates):
            return
        if self.ids and (n := _shared(candidates, self.ids)) >= self.min_tokens:
            self.ids, self.kv = self.ids[:n], [(k[:, :, :n], v[:, :, :n]) for k, v in self.kv]
            return
        if len(candidates) == 1 and not seen:  # nothing to tell the shared part from this prompt's own
            return
        n = _shared(candidates, seen if len(candidates) == 1 else ())
        if n >= self.min_tokens:
            self.ids = candidates[0][:n]
            self.kv = self._prefill(list(self.ids))

    def rows(self, n: int) -> KeysValues:
        """The prefix's keys and values for `n` rows (views: a cache layer copies them on its first update)."""
        assert self.kv is not None, "no prefix learned yet"
        return [(k.expand(n, -1, -1, -1), v.expand(n, -1, -1, -1)) for k, v in self.kv]


def _shared(prompts: list[tuple[int, ...]], other: tuple[int, ...] = ()) -> int:
    """The length of the prefix all `prompts` (and `other`) share that leaves every prompt a token of its own."""
    common = os.path.commonprefix([*prompts, other] if other else prompts)
    return min(len(common), min(len(p) for p in prompts) - 1)
