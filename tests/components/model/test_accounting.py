"""FLOPs accounting: DeepSeek's M, 6N₁, 6N₂ and C = M·D."""

from __future__ import annotations

import pytest

from components.config import ModelConfig
from components.model import accounting, build_model, count_parameters, flops_per_token, six_n1, six_n2
from components.model.accounting import model_flops_per_token
from components.presets import preset

pytestmark = pytest.mark.unit


def test_formulas_by_hand():
    model = ModelConfig(n_layer=2, d_model=64, n_head=4, n_kv_head=4, d_ffn=176, vocab_size=1000, max_seq_len=128)
    assert flops_per_token(model, 128) == 72 * 2 * 64 ** 2 + 12 * 2 * 64 * 128
    assert six_n1(model) == 72 * 2 * 64 ** 2
    assert six_n2(model) == 72 * 2 * 64 ** 2 + 6 * 1000 * 64
    assert model_flops_per_token(model, 128, params=10_000) == 60_000 + 12 * 2 * 64 * 128


def test_accounting_of_the_7b_preset():
    cfg = preset("deepseek_7b")
    params = count_parameters(build_model(cfg.model, device="meta"))
    acc = accounting(cfg.model, 4096, 2 * 10 ** 12, params)
    # M exceeds 6N₁ by the attention term, which is 12·n·d·l = 1/6 of 72·n·d² at l = d = 4096
    assert acc["flops_per_token"] == pytest.approx(acc["six_n1"] * 7 / 6)
    # SwiGLU with d_ffn ≈ 8/3·d: the real non-embedding parameters match N₁ = 12·n·d² within 1%
    assert 6 * acc["params_non_embedding"] == pytest.approx(acc["six_n1"], rel=0.01)
    assert acc["compute"] == acc["flops_per_token"] * 2 * 10 ** 12
    assert acc["six_n2"] - acc["six_n1"] == 6 * 102_400 * 4096
