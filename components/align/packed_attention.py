"""Attention for padding-free batches: each packed conversation attends only to itself, computed as such.

SFT concatenates a step's conversations into one row (`padding_free=True`); transformers then builds a
block-diagonal causal mask over the whole row and sdpa computes every query against every key of the row,
the masked ones included. On a CPU that is about 8x the attention work of the conversations themselves
(8 conversations a row): 36% of an SFT step on the small preset (torch profiler, 2026-12-05). Here the
row is cut at the position resets and each conversation runs through sdpa's causal kernel on its own
(in float32 for a bf16 model on a CPU: CPU sdpa forward + backward of one causal conversation, 4 heads x 64,
takes about half the time in float32 as in bf16 at 32-96 tokens: 100 vs 211 us at 32, 317 vs 602 us at 96;
2026-12-05, the 2-core AVX512-BF16 EPYC. The matmuls stay bf16).

Registered with transformers' `AttentionInterface` under `NAME`, with a mask function that builds no mask
where the attention does without one (no padding mask, no cache offset); everything else (padded
batches, generation with a cache) is plain sdpa with sdpa's mask.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

NAME = "dsllm_packed_sdpa"


def segments(position_ids: torch.Tensor) -> list[list[tuple[int, int]]]:
    """Per row, the (start, end) of each sequence: a new one starts wherever the position does not go up by 1."""
    starts = torch.diff(position_ids, dim=-1) != 1  # True at i: a sequence starts at i + 1
    length = position_ids.shape[-1]
    out = []
    for row in starts:
        bounds = [0] + (torch.nonzero(row).flatten() + 1).tolist() + [length]
        out.append(list(zip(bounds[:-1], bounds[1:], strict=True)))
    return out


def packed_sdpa(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask, **kwargs):
    dtype = query.dtype
    if query.device.type == "cpu" and dtype == torch.bfloat16:
        query, key, value = query.float(), key.float(), value.float()
    position_ids = kwargs.pop("position_ids", None)
    if attention_mask is not None or position_ids is None or query.shape[2] != key.shape[2]:
        out = sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)[0]
        return out.to(dtype), None
    kwargs["is_causal"] = True
    rows = []
    for b, spans in enumerate(segments(position_ids.expand(query.shape[0], -1))):
        parts = [sdpa_attention_forward(module, query[b:b + 1, :, s:e], key[b:b + 1, :, s:e],
                                        value[b:b + 1, :, s:e], None, **kwargs)[0] for s, e in spans]
        rows.append(parts[0] if len(parts) == 1 else torch.cat(parts, dim=1))
    return (rows[0] if len(rows) == 1 else torch.cat(rows)).to(dtype), None


def packed_mask(*, attention_mask=None, q_length: int, kv_length: int, q_offset: int = 0, kv_offset: int = 0,
                **kwargs):
    """No mask where `packed_sdpa` derives causality and packing from the position ids; sdpa's elsewhere."""
    if attention_mask is None and q_length == kv_length and q_offset == 0 and kv_offset == 0:
        return None
    return sdpa_mask(attention_mask=attention_mask, q_length=q_length, kv_length=kv_length, q_offset=q_offset,
                     kv_offset=kv_offset, **kwargs)


AttentionInterface.register(NAME, packed_sdpa)
AttentionMaskInterface.register(NAME, packed_mask)
