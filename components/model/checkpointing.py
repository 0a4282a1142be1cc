"""Activation checkpointing of the decoder: recompute in the backward pass what the forward would hold.

Modes (`pretrain.activation_checkpointing`):
- ``none``: autograd keeps every tensor the backward needs (fastest, most memory).
- ``full``: each decoder layer is one checkpointed region; only its input (the residual stream, d values
  per token) is kept, and the whole layer's forward runs again in the backward (about a third more
  compute: 8 instead of 6 FLOPs per parameter and token).
- ``selective``: only each layer's SwiGLU MLP is checkpointed. It holds most of a layer's activations
  (gate, up, SiLU and product: 4·d_ffn values per token of the ~4·d_ffn + 6·d), and recomputing it
  costs its three matmuls but no attention.

Regions are non-reentrant `torch.utils.checkpoint` calls around the module's own forward, installed
on the instance (the module class and the state dict stay those of `LlamaForCausalLM`); FSDP2's hooks
run around the region, so a sharded layer is gathered again before its recomputation. Without
gradients (evaluation, generation) the plain forward runs.
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

MODES = ("none", "full", "selective")


def regions(lm: nn.Module, mode: str) -> list[nn.Module]:
    """The modules that `mode` checkpoints in a `LlamaForCausalLM` (one per layer, or none)."""
    if mode not in MODES:
        raise ValueError(f"activation_checkpointing must be one of {', '.join(MODES)}, not {mode!r}")
    layers = list(lm.model.layers)
    return {"none": [], "full": layers, "selective": [layer.mlp for layer in layers]}[mode]


def apply_activation_checkpointing(lm: nn.Module, mode: str) -> int:
    """Checkpoint the regions of `mode` in place; returns how many were wrapped (0 for none)."""
    wrapped = regions(lm, mode)
    for module in wrapped:
        if getattr(module, "_dsllm_checkpointed", False):
            continue
        module.forward = _checkpointed(module.forward)
        module._dsllm_checkpointed = True
    return len(wrapped)


def _checkpointed(forward):
    @functools.wraps(forward)
    def run(*args, **kwargs):
        if not torch.is_grad_enabled():
            return forward(*args, **kwargs)
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)

    return run
