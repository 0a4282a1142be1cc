"""SFT/DPO progress where a person watches: one line every ~10 s, `sft: step 120/400 (30%) · loss 2.31 ·
1.2 s/step · ETA 0:05:36`, on the driver's console and in the Prefect run's log.

Training runs inside Ray Train workers (other processes, maybe other nodes), where no bar can render and
whose logging reaches no Prefect handler. So rank 0's `ProgressFile` callback appends one JSON record per
interval to a file in the run's storage folder, and the driver's `follow` thread logs each new record on
logger `components.align.progress` (forwarded to Prefect). The ETA counts everything the trainer does
between steps (held-out evaluation, the repetition monitor, checkpoints), so it is the wall-clock ETA.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

from transformers import TrainerCallback

log = logging.getLogger("components.align.progress")
EVERY_S = 10.0


def describe(record: dict) -> str:
    step, total = record["step"], max(record["total"], 1)
    parts = [f"{record['stage']}: step {step}/{total} ({100 * step / total:.0f}%)"]
    if record.get("loss") is not None:
        parts.append(f"loss {record['loss']:.4f}")
    if step:
        per_step = record["elapsed"] / step
        parts += [f"{per_step:.2f} s/step", f"ETA {timedelta(seconds=round(per_step * (total - step)))}"]
    return " · ".join(parts)


class ProgressFile(TrainerCallback):
    """Rank 0 appends {stage, step, total, loss, elapsed} to `path` after the first step, then every `every_s`
    seconds and at the last step."""

    def __init__(self, path: str | None, stage: str, every_s: float = EVERY_S):
        self.path, self.stage, self.every_s = Path(path) if path else None, stage, every_s
        self._t0 = self._last = 0.0
        self._loss: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._t0 = time.monotonic()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and isinstance(logs.get("loss"), int | float):
            self._loss = float(logs["loss"])

    def on_step_end(self, args, state, control, **kwargs):
        if self.path is None or not state.is_world_process_zero:
            return
        now, step = time.monotonic(), state.global_step
        if step == 1 or step >= state.max_steps or now - self._last >= self.every_s:
            self._last = now
            record = {"stage": self.stage, "step": step, "total": state.max_steps, "loss": self._loss,
                      "elapsed": now - self._t0}
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")


@contextlib.contextmanager
def follow(path: Path, poll_s: float = 1.0) -> Iterator[None]:
    """Log every record `ProgressFile` appends to `path` while the block runs (the driver's side)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)  # a resumed or repeated run starts its own file
    stop, offset = threading.Event(), [0]

    def drain() -> None:
        try:
            with path.open("rb") as fh:
                fh.seek(offset[0])
                data = fh.read()
        except FileNotFoundError:
            return
        complete = data[:data.rfind(b"\n") + 1]  # a line still being written waits for the next poll
        offset[0] += len(complete)
        for line in complete.splitlines():
            with contextlib.suppress(ValueError, KeyError):
                log.info(describe(json.loads(line)))

    def loop() -> None:
        while not stop.wait(poll_s):
            drain()

    # the caller's context (a Prefect task run) goes with the thread, so the lines land in that run's log
    thread = threading.Thread(target=contextvars.copy_context().run, args=(loop,), daemon=True,
                              name="align-progress")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
        drain()
