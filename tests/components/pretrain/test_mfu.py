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
