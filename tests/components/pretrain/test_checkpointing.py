"""The training loop with activation checkpointing: the same losses as without, step by step."""

from __future__ import annotations

import pytest
import torch

from components.pretrain.loop import Run
from components.pretrain.trainer import plan
from tests.components.pretrain.conftest import tiny_model, tiny_train

pytestmark = pytest.mark.unit


def _losses(inputs, tmp_path, mode: str, steps: int = 4) -> list[float]:
    spec, _ = plan(tiny_model(inputs), tiny_train(activation_checkpointing=mode), inputs["pack"],
                   inputs["tokenizer"], tmp_path / mode)
    run = Run(spec)
    return [run.train_step()["loss"] for _ in range(steps)]


def test_checkpointed_training_has_the_same_losses(inputs, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one reduction order for all runs
    try:
        plain = _losses(inputs, tmp_path, "none")
        for mode in ("full", "selective"):
            assert _losses(inputs, tmp_path, mode) == pytest.approx(plain, abs=1e-4)
    finally:
        torch.set_num_threads(threads)
    assert plain[-1] < plain[0]
