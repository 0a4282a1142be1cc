"""Pretraining on a CUDA GPU in bf16 (skipped without one)."""

from __future__ import annotations

import pytest

from components.pretrain.trainer import pretrain
from tests.components.pretrain.conftest import tiny_model, tiny_train

pytestmark = pytest.mark.gpu


def test_local_gpu_run_in_bf16(inputs, tmp_path):
    counts = pretrain(tiny_model(inputs), tiny_train(use_gpu=True, precision="auto", peak_flops=None),
                      inputs["pack"], inputs["tokenizer"], tmp_path / "out", tmp_path / "ckpt", progress=False)
    assert counts["final_loss"] < 4.5 and 0 < counts["mfu_mean"] < 1
