"""A decode step and the prefills of the requests joining the batch, in one forward.

Prefilling a joiner on its own costs a whole forward (at one joiner of ~20 tokens, 3 ms against a 4-ms
decode step of 20 rows on the `small` model), while its tokens add little to a forward that runs anyway:
the weights are read once either way. So the engine lays out one sequence, the running rows' last tokens
first, then each joiner's prompt (after the shared prefix), with each token's own position; the layers' matmuls
run over all of it, and only attention tells the parts apart (`MixedStep.attend`): the rows attend to the
batch's cache (a column each, as in a plain step), each joiner to its own cache (the shared prefix's keys/values
and its prompt so far, causally). The logits kept are the rows' and each joiner's last token's.

Attention reaches the step through a keyword argument of the model's forward (transformers hands its extra
keywords down to the attention function), under attention implementations registered here that wrap sdpa
and the CPU's float32 sdpa and behave exactly as those without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import AttentionInterface, DynamicCache
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from components.serving import cpu_attention

KEYWORD = "dsllm_mixed_step"


@dataclass
class MixedStep:
    rows: int  # decode rows: the sequence's first `rows` tokens
    batch: DynamicCache  # theirs (RoomyLayers: a new column per step)
    batch_mask: torch.Tensor  # [rows, 1, 1, keys] boolean, True where a row attends
    joiners: list[DynamicCache]  # one per joiner: its shared prefix's keys/values, or empty
    lengths: list[int]  # each joiner's tokens in the sequence, in order after the rows

    def attend(self, base: Callable, module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               scaling: float | None) -> tuple[torch.Tensor, None]:
        """`base` attention per part; query/key/value [1, heads, tokens, dim]; out [1, tokens, heads, dim]."""
        layer, rows = module.layer_idx, self.rows
        keys, values = self.batch.layers[layer].update(_as_rows(key[:, :, :rows]), _as_rows(value[:, :, :rows]))
        out, _ = base(module, _as_rows(query[:, :, :rows]), keys, values, self.batch_mask, scaling=scaling)
        parts, start = [out.reshape(1, rows, *out.shape[2:])], rows
        for cache, length in zip(self.joiners, self.lengths, strict=True):
            end = start + length
            keys, values = cache.layers[layer].update(key[:, :, start:end], value[:, :, start:end])
            causal = torch.ones(length, keys.shape[2], dtype=torch.bool, device=keys.device).tril(
                diagonal=keys.shape[2] - length)[None, None]  # a prompt token sees the prefix and itself back
            out, _ = base(module, query[:, :, start:end], keys, values, causal, scaling=scaling)
            parts.append(out)
            start = end
        return torch.cat(parts, dim=1), None


def _as_rows(states: torch.Tensor) -> torch.Tensor:
    """[1, heads, rows, dim] (a token per row in the sequence) -> [rows, heads, 1, dim] (a row per token)."""
    return states[0].transpose(0, 1).unsqueeze(2)


def _mixing(base: Callable) -> Callable:
    def attention(module, query, key, value, attention_mask, **kwargs):
        step: MixedStep | None = kwargs.pop(KEYWORD, None)
        if step is not None:
            return step.attend(base, module, query, key, value, kwargs.get("scaling"))
        return base(module, query, key, value, attention_mask, **kwargs)

    return attention


MIXING = {"sdpa": "dsllm_mixed_sdpa", cpu_attention.NAME: "dsllm_mixed_float32_sdpa"}
for _name, _base in (("sdpa", sdpa_attention_forward), (cpu_attention.NAME, cpu_attention.float32_sdpa)):
    AttentionInterface.register(MIXING[_name], _mixing(_base))
    AttentionMaskInterface.register(MIXING[_name], sdpa_mask)


def enable_mixed_steps(model) -> bool:
    """Switch `model` to the mixing twin of its attention (sdpa, or the CPU's float32 sdpa); False when it uses
    another implementation (eager, flash attention), whose joiners are then prefilled on their own."""
    current = model.config._attn_implementation
    if current in MIXING:
        model.set_attn_implementation(MIXING[current])
    return model.config._attn_implementation in MIXING.values()
