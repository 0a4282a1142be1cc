"""An MFU to believe: a utilisation above 100% of a trusted peak is a bug and stops the run with a clear error;
the metrics carry MFU and the executed-matmul utilisation against one stable peak."""

from __future__ import annotations

import pytest

from components.pretrain.metrics import ImpossibleMFU, read, utilisation
from components.pretrain.trainer import pretrain
from tests.components.pretrain.conftest import tiny_model, tiny_train

pytestmark = pytest.mark.unit


def test_utilisation_above_one_raises_for_a_trusted_peak():
    assert utilisation(6e9, 10.0, 1e11, "datasheet") == pytest.approx(0.6)
    with pytest.raises(ImpossibleMFU, match="exceeds 100%.*peak_flops"):
        utilisation(6e9, 100.0, 1e11, "datasheet (h100-80gb)")
    # a CPU probe taken on a busy machine may read low: reported, not fatal
    assert utilisation(6e9, 100.0, 1e11, "cached CPU probe (busy machine)", trusted=False) == pytest.approx(6.0)


def test_run_with_an_impossible_peak_fails_and_a_real_one_reports_both(inputs, home, tmp_path):
    model = tiny_model(inputs)

    def go(name, **train):
        return pretrain(model, tiny_train(**train), inputs["pack"], inputs["tokenizer"], tmp_path / f"out-{name}",
                        tmp_path / f"ckpt-{name}", progress=False)

    with pytest.raises(Exception, match="exceeds 100%"):
        go("impossible", peak_flops=1e3, total_tokens=2 * 512)
    go("ok", total_tokens=2 * 512, eval_every=2, checkpoint_every=2, activation_checkpointing="full")
    last = read(tmp_path / "out-ok" / "metrics.jsonl")[-1]
    assert 0 < last["mfu"] < 1 and 0 < last["matmul_utilisation"] < 1
    assert last["matmul_utilisation"] > last["mfu"]  # full checkpointing runs the layers' forward twice


def test_an_mfu_against_a_peak_probed_under_load_is_shown_nowhere():
    from components.pretrain.progress import describe
    from components.pretrain.report import summary

    busy = {"step": 2, "tokens": 20, "loss": 5.0, "tokens_per_s": 100.0, "mfu": 5.66, "peak_probed_busy": 1}
    line = describe(busy, 10, 100, None)
    assert "MFU n/a" in line and "566" not in line
    assert "mfu_mean" not in summary([{**busy, "step": 1}, busy])
    quiet = {**busy, "mfu": 0.4, "peak_probed_busy": 0}
    assert "MFU 40.0%" in describe(quiet, 10, 100, None)
    assert summary([quiet, quiet])["mfu_mean"] == pytest.approx(0.4)
