"""Build the DeepSeek-style decoder as a plain `transformers.LlamaForCausalLM`.

RMSNorm, SwiGLU, RoPE and grouped-query attention are exactly Llama's, so every later stage
(TRL, MLflow, serving) takes the model as is. `device="meta"` builds the structure without
allocating weights (parameter counts of the 7B and 67B presets on a laptop).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

from components.config import ModelConfig


def llama_config(model: ModelConfig, *, bos_id: int = 1, eos_id: int = 2, pad_id: int | None = None,
                 attn_implementation: str = "sdpa") -> LlamaConfig:
    """The `LlamaConfig` for `model`; pass the tokenizer's special ids (Llama's defaults are 1/2)."""
    cfg = LlamaConfig(
        vocab_size=model.vocab_size, hidden_size=model.d_model, intermediate_size=model.d_ffn,
        num_hidden_layers=model.n_layer, num_attention_heads=model.n_head,
        num_key_value_heads=model.n_kv_head, max_position_embeddings=model.max_seq_len,
        rope_parameters={"rope_type": "default", "rope_theta": model.rope_theta},
        rms_norm_eps=1e-6, hidden_act="silu", initializer_range=0.006 if model.d_model >= 4096 else 0.02,
        tie_word_embeddings=model.tie_embeddings, attention_bias=False, mlp_bias=False,
        bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=pad_id, use_cache=True,
    )
    cfg._attn_implementation = attn_implementation
    return cfg


def build_model(model: ModelConfig, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                seed: int = 0, shard: Callable[[nn.Module], object] | None = None, **ids) -> LlamaForCausalLM:
    """A freshly initialised `LlamaForCausalLM` for `model`.

    The model is laid out on the meta device and materialised one decoder layer at a time, each from
    its own seed derived from `seed`: the initial weights are the same whether the model is built
    whole or sharded as it is built (`shard(layer)` runs after each layer exists, so FSDP never
    holds the whole model on one worker). `device="meta"` allocates nothing (parameter counts).
    """
    with torch.device("meta"):
        net = LlamaForCausalLM(llama_config(model, **ids))
    if torch.device(device).type == "meta":
        return net
    for index, layer in enumerate(net.model.layers):
        _materialize(net, layer, device, seed * 1_000_003 + index + 1)
        if shard is not None:
            shard(layer)
    _materialize(net, net, device, seed * 1_000_003)  # embeddings, final norm, head, rotary tables
    if model.tie_embeddings:
        net.tie_weights()
    return net if shard is not None else net.to(dtype)


def _materialize(net: LlamaForCausalLM, root: nn.Module, device, seed: int) -> None:
    """Allocate and initialise (HF's own init) every module under `root` still on the meta device."""
    torch.manual_seed(seed)
    for module in root.modules():
        tensors = [*module.parameters(recurse=False), *module.buffers(recurse=False)]
        if any(t.is_meta for t in tensors):
            module.to_empty(device=device, recurse=False)
            net._init_weights(module)


def count_parameters(net: torch.nn.Module) -> dict[str, int]:
    """Total, embedding (input and, if untied, output) and non-embedding parameter counts."""
    seen: set[int] = set()
    total = embedding = 0
    embeddings = {id(net.get_input_embeddings().weight), id(net.get_output_embeddings().weight)}
    for param in net.parameters():
        if id(param) in seen:
            continue
        seen.add(id(param))
        total += param.numel()
        embedding += param.numel() if id(param) in embeddings else 0
    return {"total": total, "embedding": embedding, "non_embedding": total - embedding}
