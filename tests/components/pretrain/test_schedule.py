"""The multi-step and cosine learning-rate schedules."""

from __future__ import annotations

import math

import pytest
import torch

from components.pretrain.schedule import lr_factor, make_scheduler

pytestmark = pytest.mark.unit


def test_multistep_values():
    total, warm = 1000, 100
    assert lr_factor(0, total, warm) == pytest.approx(0.01)
    assert lr_factor(49, total, warm) == pytest.approx(0.5)
    assert lr_factor(99, total, warm) == pytest.approx(1.0)
    assert lr_factor(799, total, warm) == 1.0
    assert lr_factor(800, total, warm) == pytest.approx(0.316, abs=1e-3)
    assert lr_factor(899, total, warm) == pytest.approx(0.316, abs=1e-3)
    assert lr_factor(900, total, warm) == pytest.approx(0.1)
    assert lr_factor(999, total, warm) == pytest.approx(0.1)


def test_cosine_values():
    total, warm = 1000, 100
    assert lr_factor(100, total, warm, "cosine") == pytest.approx(1.0)
    assert lr_factor(550, total, warm, "cosine") == pytest.approx(0.55)
    assert lr_factor(1000, total, warm, "cosine", min_ratio=0.1) == pytest.approx(0.1)
    assert all(lr_factor(s, total, warm, "cosine") >= lr_factor(s + 1, total, warm, "cosine")
               for s in range(100, 999))


def test_scheduler_drives_the_optimizer_and_rejects_unknown():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    sched = make_scheduler(opt, 10, 0, "multistep", 0.1)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:8] == [2.0] * 8 and lrs[8] == pytest.approx(2 * math.sqrt(0.1)) and lrs[9] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="Unknown schedule"):
        lr_factor(5, 10, 0, "linear")
