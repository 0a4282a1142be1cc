"""The planner's activation memory against the peak measured on the CPU (scaled-down shapes, within 15%)."""

from __future__ import annotations

import pytest

from components.config import ModelConfig
from components.plan.measure import measure
from components.plan.memory import Layout, activations, total_params

pytestmark = pytest.mark.unit
MIB = 2 ** 20
# layers dominate the memory here (4 layers, d 192, 4 sequences of 256 tokens; a small vocabulary)
SHAPE = ModelConfig(n_layer=4, d_model=192, n_head=4, n_kv_head=2, d_ffn=512, vocab_size=512, max_seq_len=256)


# bf16 matmul is emulated (slow) on CPUs without AVX512-BF16/AMX: a smaller shape checks its bytes per value
SMALL = SHAPE.model_copy(update={"n_layer": 2, "d_model": 128, "d_ffn": 352})


@pytest.mark.parametrize(("precision", "shape", "micro", "modes"), [
    ("fp32", SHAPE, 4, ("none", "selective", "full")), ("bf16", SMALL, 2, ("none",))])
def test_model_matches_the_measured_peak(precision, shape, micro, modes):
    measured = measure(shape.model_dump(), micro_batch=micro, seq_len=256, modes=modes, precision=precision)
    p = 4 if precision == "fp32" else 2
    for mode in modes:
        predicted = activations(shape, Layout(1, "ddp", micro, 256, mode, p))
        got = measured[mode]
        assert predicted["peak"] == pytest.approx(got["step_peak"], rel=0.15), (mode, predicted, got)
        assert predicted["held"] == pytest.approx(got["held"], rel=0.15), (mode, predicted, got)
    if "full" in modes:
        assert measured["none"]["step_peak"] > 2 * measured["full"]["step_peak"]  # checkpointing saves


def test_parameter_count_matches_the_built_model():
    from components.model import build_model, count_parameters

    for shape in (SHAPE, SHAPE.model_copy(update={"n_kv_head": 4, "tie_embeddings": True})):
        assert total_params(shape) == count_parameters(build_model(shape, device="meta"))["total"]
