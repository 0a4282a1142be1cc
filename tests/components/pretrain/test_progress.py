"""The driver's progress lines follow metrics.jsonl, including a run length a time budget set."""

from __future__ import annotations

import json
import logging

import pytest

from components.pretrain.progress import ProgressMonitor

pytestmark = pytest.mark.unit


def test_progress_follows_the_length_the_time_budget_sets(tmp_path, caplog):
    path = tmp_path / "metrics.jsonl"
    monitor = ProgressMonitor(path, total_steps=100, total_tokens=100 * 512, bar=False)
    records = [{"step": s, "tokens": s * 512, "loss": 5.0, "step_s": 1.0, "total_steps": 100 if s < 5 else 60}
               for s in range(1, 8)]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    with caplog.at_level(logging.INFO, logger="dsllm.pretrain"):
        monitor.poll(force=True)
    assert monitor.total_steps == 60 and monitor.total_tokens == 60 * 512
    assert any("time budget holds 60 steps (30,720 tokens)" in r.message for r in caplog.records)
    assert "step 7/60" in caplog.records[-1].message and "ETA 0:00:53" in caplog.records[-1].message
