"""Attention in float32 for bf16 models that decode on a CPU.

PyTorch's CPU `scaled_dot_product_attention` is about 6x slower in bf16 than in float32 for a
one-token query (20 rows x 4 heads x 85 keys x 64: 504 us against 84 us, 2026-12-04, the 2-core
AVX512-BF16 EPYC), so at 20 replies attention was a third of a bf16 decode step. A bf16 model
served on a CPU therefore keeps its KV cache in float32 (`RoomyLayer(dtype=float32)`) and attends
in float32, while its matmuls, where bf16 pays, stay bf16. Registered with transformers'
`AttentionInterface` under `NAME`, with sdpa's mask.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

NAME = "dsllm_cpu_float32_sdpa"


def float32_sdpa(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask, **kwargs):
    if query.shape[2] == 1 and (attention_mask is None or attention_mask.shape[1] == 1):
        out = one_query_attention(query.float(), key.float(), value.float(), attention_mask, kwargs.get("scaling"))
        return out.to(query.dtype), None
    out, weights = sdpa_attention_forward(module, query.float(), key.float(), value.float(), attention_mask,
                                          **kwargs)
    return out.to(query.dtype), weights


def one_query_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None,
                        scaling: float | None) -> torch.Tensor:
    """A decode step's attention, softmax(q kᵀ · scaling) v, as two batched matmuls; returned as sdpa_attention_forward
    returns it ([batch, 1, heads, dim]). The query heads that share a key head form that head's rows (no repeat_kv).

    Why not sdpa: for a one-token query CPU sdpa's flash kernel walks the cache in blocks per (row, head); at 20 rows
    of the `small` model with caches larger than the CPU's caches, the matmuls took 176 against 242 us per layer
    (float32, 80 keys; 2026-12-05, the 2-core EPYC)."""
    batch, heads, _, dim = query.shape
    kv_heads = key.shape[1]
    grouped = query.reshape(batch, kv_heads, heads // kv_heads, dim)
    scores = torch.matmul(grouped, key.transpose(-1, -2)).mul_(scaling if scaling is not None else dim ** -0.5)
    if mask is not None:  # [batch, 1, 1, keys]: True (or 0.0) where a row attends
        scores = scores.masked_fill_(~mask, float("-inf")) if mask.dtype == torch.bool else scores.add_(mask)
    return torch.matmul(scores.softmax(-1), value).reshape(batch, heads, 1, dim).transpose(1, 2)


AttentionInterface.register(NAME, float32_sdpa)
AttentionMaskInterface.register(NAME, sdpa_mask)


def wants_float32_attention(model) -> bool:
    return model.device.type == "cpu" and model.dtype == torch.bfloat16


def attend_in_float32(model) -> None:
    """Switch a bf16 model on a CPU to float32 attention (the KV cache must then be float32 too)."""
    if wants_float32_attention(model):
        model.set_attn_implementation(NAME)
