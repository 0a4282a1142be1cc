"""Per-device training memory of the project's own loop, term by term (bytes).

States, as `components.pretrain` keeps them (N parameters, W devices, p bytes per compute value):
- DDP: compute-dtype weights (p·N), gradients (p·N, plus the fp32 master gradients 4·N when p < 4),
  optimizer states (AdamW m and v, 8·N, plus fp32 master weights 4·N when p < 4).
- FSDP (ZeRO-3-like): fp32 shards of weights, gradients and AdamW states (16·N / W), plus the gathered
  compute-dtype weights of the root group (embeddings, head) and of two decoder layers (the current one
  and the prefetched next), and one layer's unsharded gradients (p, and 4 for the fp32 reduce-scatter).
Activations per micro-batch (T tokens; d, d_ffn, kv = d·n_kv_head/n_head, h heads), counted from what
autograd saves in `LlamaForCausalLM` with SDPA attention (no s² scores) and the fused loss head:
- per layer and token: two RMSNorms (fp32 copy 4d, cast and output 2·p·d, 4 for the rms) = 8d + 4pd + 8,
  attention q, k, v and output p·(2d + 2kv) and the fp32 log-sum-exp 4h, SwiGLU gate, up, SiLU and
  product 4·p·d_ffn;
- with `full` checkpointing a layer keeps only its input (p·d) and recomputes the rest in the backward,
  one layer at a time; with `selective` it drops the MLP's 4·p·d_ffn and recomputes that;
- the head: the final norm (4d + pd + 4), the hidden-state gradient (pd) and token ids (8) per token, the
  fp32 output-weight gradient (4·V·d) computed in the forward, and one chunk of logits in flight.
`components/plan/measure.py` measures the same quantities on the CPU; tests/components/plan compares them.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.config import ModelConfig
from components.pretrain.loss import chunk_rows


@dataclass(frozen=True)
class Layout:
    """How a run is laid out on its devices."""

    devices: int
    strategy: str  # ddp | fsdp
    micro_batch: int
    seq_len: int
    checkpointing: str = "none"  # none | full | selective
    compute_bytes: int = 2  # 2 = bf16 compute, 4 = fp32
    device_type: str = "cpu"  # cuda | cpu: the loss head's chunk size differs (components.pretrain.loss)


def layer_params(m: ModelConfig) -> int:
    kv = m.d_model * m.n_kv_head // m.n_head
    return 2 * m.d_model * m.d_model + 2 * m.d_model * kv + 3 * m.d_model * m.d_ffn + 2 * m.d_model


def root_params(m: ModelConfig) -> int:
    """Embeddings, output head (unless tied) and the final norm: FSDP's root group."""
    return m.vocab_size * m.d_model * (1 if m.tie_embeddings else 2) + m.d_model


def total_params(m: ModelConfig) -> int:
    return m.n_layer * layer_params(m) + root_params(m)


def recompute_flops(m: ModelConfig, seq_len: int, checkpointing: str) -> int:
    """Forward FLOPs per token that activation checkpointing runs again (the MLP for selective, the layer for full)."""
    return {"none": 0, "selective": 6 * m.d_model * m.d_ffn * m.n_layer,
            "full": 2 * m.n_layer * layer_params(m) + 4 * m.n_layer * m.d_model * seq_len}[checkpointing]


def layer_activation_bytes(m: ModelConfig, p: int) -> int:
    """What one decoder layer saves for the backward, per token (bytes)."""
    d, kv = m.d_model, m.d_model * m.n_kv_head // m.n_head
    return 8 * d + 4 * p * d + 8 + p * (2 * d + 2 * kv) + 4 * m.n_head + 4 * p * m.d_ffn


def activations(m: ModelConfig, layout: Layout) -> dict[str, float]:
    """Bytes held after the forward, the forward's and the backward's peaks, and the step's peak."""
    p, tokens, full = layout.compute_bytes, layout.micro_batch * layout.seq_len, layer_activation_bytes(m, layout.compute_bytes)
    mlp = 4 * p * m.d_ffn
    kept, recomputed = {"none": (full, 0), "full": (p * m.d_model, full),
                        "selective": (full - mlp, mlp)}[layout.checkpointing]
    head_tokens = 4 * m.d_model + 2 * p * m.d_model + 4 + 8
    held = tokens * (m.n_layer * kept + head_tokens) + 4 * m.vocab_size * m.d_model
    rows = min(tokens, chunk_rows(m.vocab_size, layout.device_type))
    head_work = rows * m.vocab_size * (p + 4 + (4 if p < 4 else 0))  # logits, fp32 upcast, fp32 log-softmax
    layer_work = tokens * (recomputed + 2 * p * m.d_model + 4 * m.d_model)  # one layer's backward in flight
    forward, backward = held + head_work, held + layer_work
    return {"held": held, "forward_peak": forward, "backward_peak": backward, "peak": max(forward, backward)}


def states(m: ModelConfig, layout: Layout) -> dict[str, float]:
    """Parameters, gradients, optimizer states and (FSDP) gather buffers per device (bytes)."""
    n, p, w = total_params(m), layout.compute_bytes, layout.devices
    master = 4 if p < 4 else 0
    if layout.strategy == "ddp":  # FSDP shards on one device too (the loop keeps its fp32 shards)
        return {"parameters": p * n, "gradients": (p + master) * n, "optimizer": (8 + master) * n,
                "fsdp_buffers": 0.0}
    gathered = p * (root_params(m) + 2 * layer_params(m)) + (p + 4) * layer_params(m)
    return {"parameters": 4 * n / w, "gradients": 4 * n / w, "optimizer": 8 * n / w, "fsdp_buffers": gathered}


def breakdown(m: ModelConfig, layout: Layout) -> dict[str, float]:
    """Every term per device, the activations under each checkpointing mode, and the total."""
    terms = states(m, layout)
    modes = {mode: activations(m, Layout(**{**layout.__dict__, "checkpointing": mode}))["peak"]
             for mode in ("none", "selective", "full")}
    terms["activations"] = modes[layout.checkpointing]
    return {**terms, "total": sum(terms.values()), "activations_by_mode": modes}
