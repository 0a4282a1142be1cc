"""A GPU run whose config cannot fit its devices fails in the driver's checks, before any worker starts."""

from __future__ import annotations

import pytest

from components.plan import planner
from components.plan.accelerators import Accelerator
from components.plan.planner import Cluster, DoesNotFit
from components.pretrain.trainer import plan
from tests.components.pretrain.conftest import tiny_model, tiny_train

pytestmark = pytest.mark.unit


def test_gpu_run_that_cannot_fit_fails_before_starting(inputs, tmp_path, monkeypatch):
    small = Cluster(Accelerator("toy-gpu", 1e12, 2e6), 1)  # 2 MB of memory
    monkeypatch.setattr(planner, "detect_gpus", lambda count: small)
    with pytest.raises(DoesNotFit, match="largest term is activations"):
        plan(tiny_model(inputs), tiny_train(use_gpu=True), inputs["pack"], inputs["tokenizer"], tmp_path / "ckpt")
    roomy = Cluster(Accelerator("toy-gpu", 1e12, 80e9), 1)
    monkeypatch.setattr(planner, "detect_gpus", lambda count: roomy)
    spec, _ = plan(tiny_model(inputs), tiny_train(use_gpu=True), inputs["pack"], inputs["tokenizer"], tmp_path / "ckpt")
    assert spec.total_steps == 16
    assert not (tmp_path / "ckpt").exists()  # nothing was started
