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
    out, weights = sdpa_attention_forward(module, query.float(), key.float(), value.float(), attention_mask,
                                          **kwargs)
    return out.to(query.dtype), weights


AttentionInterface.register(NAME, float32_sdpa)
AttentionMaskInterface.register(NAME, sdpa_mask)


def wants_float32_attention(model) -> bool:
    return model.device.type == "cpu" and model.dtype == torch.bfloat16


def attend_in_float32(model) -> None:
    """Switch a bf16 model on a CPU to float32 attention (the KV cache must then be float32 too)."""
    if wants_float32_attention(model):
        model.set_attn_implementation(NAME)
