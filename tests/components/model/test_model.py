"""The model presets build a plain LlamaForCausalLM with the DeepSeek architecture."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaForCausalLM

from components.config import ModelConfig
from components.model import build_model, count_parameters, llama_config
from components.presets import preset

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("name", "published", "layers", "d", "heads", "kv"), [
    ("deepseek_7b", 6.9e9, 30, 4096, 32, 32),
    ("deepseek_67b", 67e9, 95, 8192, 64, 8),
])
def test_deepseek_parameter_counts_on_meta_device(name, published, layers, d, heads, kv):
    model_cfg = preset(name).model
    net = build_model(model_cfg, device="meta")
    assert all(p.is_meta for p in net.parameters())  # nothing allocated
    counts = count_parameters(net)
    assert counts["total"] == pytest.approx(published, rel=0.01)
    assert counts["embedding"] == 2 * 102_400 * d  # untied input and output embeddings
    cfg = net.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads) == \
        (layers, d, heads, kv)
    assert cfg.vocab_size == 102_400 and cfg.max_position_embeddings == 4096
    assert net.model.layers[0].self_attn.k_proj.weight.shape == (d // heads * kv, d)


def test_config_carries_architecture_and_special_ids():
    model = ModelConfig(n_layer=3, d_model=96, n_head=6, n_kv_head=2, d_ffn=256, vocab_size=300,
                        max_seq_len=64, rope_theta=5e4, tie_embeddings=True)
    cfg = llama_config(model, bos_id=1, eos_id=2, pad_id=0)
    assert (cfg.intermediate_size, cfg.num_key_value_heads, cfg.hidden_act) == (256, 2, "silu")
    assert cfg.rope_parameters["rope_theta"] == 5e4
    assert (cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id) == (1, 2, 0)
    net = build_model(model, seed=0, bos_id=1, eos_id=2, pad_id=0)
    assert type(net) is LlamaForCausalLM
    assert net.lm_head.weight is net.model.embed_tokens.weight
    assert count_parameters(net)["embedding"] == 300 * 96  # shared once


def test_seeded_build_is_reproducible_and_runs():
    model = ModelConfig(n_layer=1, d_model=32, n_head=2, n_kv_head=1, d_ffn=64, vocab_size=260, max_seq_len=16)
    a, b = build_model(model, seed=3), build_model(model, seed=3)
    assert torch.equal(a.model.layers[0].mlp.up_proj.weight, b.model.layers[0].mlp.up_proj.weight)
    out = a(input_ids=torch.randint(0, 260, (2, 16)))
    assert out.logits.shape == (2, 16, 260)
