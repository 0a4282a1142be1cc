"""SFT/DPO progress: rank 0's callback writes a record after the first step, then every interval and at the
last step; the driver's follower logs each as one `step i/N · loss · s/step · ETA` line."""

from __future__ import annotations

import contextvars
import json
import logging
import threading
import time
from types import SimpleNamespace

import pytest

from components.align.progress import ProgressFile, describe, follow

pytestmark = pytest.mark.unit


def _state(step: int, total: int = 10, rank0: bool = True):
    return SimpleNamespace(global_step=step, max_steps=total, is_world_process_zero=rank0)


def test_describe_gives_step_loss_rate_and_eta():
    line = describe({"stage": "sft", "step": 30, "total": 120, "loss": 2.3456, "elapsed": 60.0})
    assert line == "sft: step 30/120 (25%) · loss 2.3456 · 2.00 s/step · ETA 0:03:00"


def test_rank0_records_first_interval_and_last_steps_and_the_driver_logs_them(tmp_path, caplog):
    path = tmp_path / "train" / "sft-progress.jsonl"
    callback, other = ProgressFile(str(path), "sft", every_s=3600), ProgressFile(str(path), "sft")
    with caplog.at_level(logging.INFO, logger="components.align.progress"), follow(path, poll_s=0.05):
        callback.on_train_begin(None, _state(0), None)
        for step in range(1, 11):
            callback.on_log(None, _state(step), None, logs={"loss": 5.0 - step / 10})
            callback.on_step_end(None, _state(step), None)
            other.on_step_end(None, _state(step, rank0=False), None)  # other ranks write nothing
    lines = [r.getMessage() for r in caplog.records if r.name == "components.align.progress"]
    assert [line.split(" · ")[0] for line in lines] == ["sft: step 1/10 (10%)", "sft: step 10/10 (100%)"]
    assert "loss 4.9000" in lines[0] and lines[1].endswith("ETA 0:00:00")


def test_without_a_path_nothing_is_written(tmp_path):
    callback = ProgressFile(None, "dpo")
    callback.on_train_begin(None, _state(0), None)
    callback.on_step_end(None, _state(1), None)
    assert list(tmp_path.iterdir()) == []


RUN = contextvars.ContextVar("run", default=None)


def test_the_follower_logs_inside_the_callers_context(tmp_path):
    """Prefect finds the run a log line belongs to in context variables: the follower thread carries the caller's."""
    seen: list = []

    class Handler(logging.Handler):
        def emit(self, record):
            seen.append((threading.current_thread().name, RUN.get()))

    handler, logger = Handler(), logging.getLogger("components.align.progress")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    token = RUN.set("task-run-1")
    try:
        path = tmp_path / "p.jsonl"
        with follow(path, poll_s=0.05):
            path.write_text(json.dumps({"stage": "dpo", "step": 1, "total": 2, "loss": 1.0, "elapsed": 1.0}) + "\n")
            deadline = time.monotonic() + 10
            while not seen and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        RUN.reset(token)
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert seen[0] == ("align-progress", "task-run-1")
