"""Training progress where a person watches: a tqdm bar in the CLI and log lines (logger
`dsllm.pretrain`, which flows forward to Prefect) with step, tokens, loss, throughput and ETA.

The driver follows rank 0's metrics.jsonl in a thread, so it works the same for local mode, Ray
workers on this machine and workers on other nodes (the checkpoint directory is shared storage).
"""

from __future__ import annotations

import contextvars
import json
import logging
import threading
import time
from datetime import timedelta
from pathlib import Path

from tqdm.auto import tqdm

log = logging.getLogger("dsllm.pretrain")


def describe(record: dict, total_steps: int, total_tokens: int, rate_s_per_step: float | None) -> str:
    """One progress line: step, tokens, loss, validation, throughput, MFU and ETA."""
    parts = [f"step {record['step']}/{total_steps}", f"tokens {record['tokens']:,}/{total_tokens:,}",
             f"loss {record.get('loss', float('nan')):.4f}"]
    if record.get("val_loss"):
        parts.append("val " + " ".join(f"{k} {v:.3f}" for k, v in record["val_loss"].items()))
    if record.get("tokens_per_s"):
        parts.append(f"{record['tokens_per_s']:,.0f} tok/s")
    if record.get("peak_probed_busy"):
        parts.append("MFU n/a (the CPU peak was probed under load; reprobed at the next quiet start)")
    elif record.get("mfu"):
        parts.append(f"MFU {100 * record['mfu']:.1f}%")
    if rate_s_per_step:
        parts.append(f"ETA {timedelta(seconds=round(rate_s_per_step * (total_steps - record['step'])))}")
    return " · ".join(parts)


class ProgressMonitor:
    """Context manager: follows `metrics_path` until exit, logging at most every `every_s` seconds."""

    def __init__(self, metrics_path: Path, total_steps: int, total_tokens: int, every_s: float = 10.0,
                 bar: bool = True):
        self.path, self.total_steps, self.total_tokens, self.every_s = metrics_path, total_steps, total_tokens, every_s
        self._stop = threading.Event()
        self._bar = tqdm(total=total_steps, desc="pretrain", unit="step", disable=not bar, leave=False)
        # with the caller's context (a Prefect task run), so the log lines land in that run's log
        self._thread = threading.Thread(target=contextvars.copy_context().run, args=(self._follow,), daemon=True,
                                        name="pretrain-progress")
        self._offset, self._partial, self._latest, self._last_log, self._times = 0, b"", None, 0.0, []
        self._announced = total_steps

    def __enter__(self) -> ProgressMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.poll(force=True)
        self._bar.close()

    def _follow(self) -> None:
        while not self._stop.wait(1.0):
            self.poll()

    def _new_records(self) -> list[dict]:
        """Records appended since the last call (the file is followed, not re-read; a resumed run may
        have truncated it, which starts the reading over)."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return []
        if size < self._offset:
            self._offset, self._partial = 0, b""
        with self.path.open("rb") as fh:
            fh.seek(self._offset)
            data = self._partial + fh.read()
            self._offset = fh.tell()
        *lines, self._partial = data.split(b"\n")
        records = []
        for line in lines:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return records

    def poll(self, force: bool = False) -> None:
        new = [r for r in self._new_records() if r.get("step", 0) > 0]
        if new:
            self._latest = new[-1]
            if (steps := self._latest.get("total_steps")) and steps != self.total_steps:  # a time budget decided
                self.total_tokens = self.total_tokens // self.total_steps * steps
                self.total_steps = self._bar.total = steps
                if abs(steps - self._announced) > 0.05 * self._announced:  # revisions move it a little each time
                    self._announced = steps
                    log.info("the time budget holds %d steps (%s tokens) at the speed measured so far", steps,
                             f"{self.total_tokens:,}")
            self._times.extend(r.get("step_s", 0.0) for r in new)
            self._times = self._times[-20:]
            self._bar.update(self._latest["step"] - self._bar.n)
            self._bar.set_postfix(loss=f"{self._latest.get('loss', float('nan')):.3f}")
        latest = self._latest
        if latest and (new or force) and (force or time.monotonic() - self._last_log >= self.every_s
                                         or "val_loss" in latest):
            recent = [t for t in self._times if t]
            rate = sum(recent) / len(recent) if recent else None
            log.info(describe(latest, self.total_steps, self.total_tokens, rate))
            self._last_log = time.monotonic()
