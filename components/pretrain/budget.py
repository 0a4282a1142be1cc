"""Pretraining sized by wall time (`pretrain.time_budget_min`) instead of a fixed token count.

A token count fits one machine only: the small preset's 3M tokens took 20 of its 45 minutes on a
2-core CPU without bf16 matmul and 5 on one with it. With a budget, the workers train the warmup
steps (whose learning rate does not depend on the run's length), time those steps, one evaluation
and one checkpoint, and set the run's length to what fits:

    steps = done + (budget - elapsed) / (step + evaluation / eval_every + checkpoint / checkpoint_every)

capped by `total_tokens`. A machine that was busy while it was timed (or becomes busy) would train a
length that no longer fits, so the length is revised at every evaluation in the first half of the run,
from the loop's elapsed time and the recent steps (the multi-step schedule's LR is flat until 80%).
Every rank takes the same decision (the mean of theirs), and rank 0 writes it beside the checkpoints
(`budget.json`), so a resumed run trains to the same length (and revises it no more). The budget
covers the training loop (steps, evaluations, checkpoints), not starting the workers.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from components import storage

FILE = "budget.json"
PROBE_STEPS = 4
"""Steps timed before deciding; the first of an attempt (allocation, compilation) is not counted."""
RECENT_STEPS = 20
"""Steps whose median time a revision uses."""
REVISE_UNTIL = 0.5
"""Revisions stop at this fraction of the run (before any LR drop of the multi-step schedule)."""


@dataclass
class Decision:
    """How long the run trains, and the timings that decided it."""

    steps: int
    budget_s: float
    step_s: float
    eval_s: float
    checkpoint_s: float
    max_steps: int
    decided_at: int
    elapsed_s: float = 0.0

    @property
    def per_step_s(self) -> float:
        return self.step_s + self.eval_s + self.checkpoint_s

    def describe(self, batch_tokens: int) -> str:
        return (f"time budget {self.budget_s / 60:g} min, {self.elapsed_s:.0f} s used at step {self.decided_at}: "
                f"{self.step_s:.2f} s per step + evaluation {self.eval_s:.3f} s + checkpoint {self.checkpoint_s:.3f} s "
                f"(per step) -> {self.steps} steps, {self.steps * batch_tokens:,} tokens (at most {self.max_steps})")


def steps_in_budget(remaining_s: float, per_step_s: float, done: int, max_steps: int) -> int:
    """The run's length: the `done` steps and as many more as `remaining_s` holds at `per_step_s`."""
    return max(done, min(max_steps, done + int(max(remaining_s, 0.0) // per_step_s)))


def read(root: str | Path) -> Decision | None:
    """The decision a previous attempt of this run took, or None."""
    where = storage.join(str(root), FILE) if storage.is_remote(root) else Path(root) / FILE
    if not (storage.exists(where) if storage.is_remote(root) else Path(where).is_file()):
        return None
    text = storage.read_text(where) if storage.is_remote(root) else Path(where).read_text()
    return Decision(**json.loads(text))


def write(root: str | Path, decision: Decision) -> None:
    text = json.dumps(asdict(decision), indent=2)
    if storage.is_remote(root):
        storage.write_text(storage.join(str(root), FILE), text)
        return
    Path(root).mkdir(parents=True, exist_ok=True)
    tmp = Path(root) / f".{FILE}.tmp"
    tmp.write_text(text)
    tmp.replace(Path(root) / FILE)


class TimeBudget:
    """Times the steps, evaluations and checkpoints of an attempt; decides the run's length at `due_step` and
    revises it at evaluations until `REVISE_UNTIL` of the run (a fresh run only: a resumed one keeps its length)."""

    def __init__(self, minutes: float, warmup_steps: int, start_step: int, max_steps: int,
                 decided: Decision | None = None):
        self.budget_s, self.max_steps, self.decided = minutes * 60, max_steps, decided
        self.revising = decided is None
        self.due_step = max(warmup_steps, start_step + PROBE_STEPS)
        self.started = time.perf_counter()
        self.eval_s = self.checkpoint_s = 0.0
        self._step_s: list[float] = []

    def observe(self, step_s: float) -> None:
        self._step_s.append(step_s)

    def first_due(self, step: int) -> bool:
        """Time to decide (an evaluation and a checkpoint are due with it, to be timed)."""
        return self.decided is None and step >= self.due_step

    def due(self, step: int, evaluated: bool) -> bool:
        if self.decided is None:
            return self.first_due(step)
        return self.revising and evaluated and step < self.decided.steps * REVISE_UNTIL

    def settled(self, step: int) -> bool:
        """The run's length will not change any more."""
        return self.decided is not None and (not self.revising or step >= self.decided.steps * REVISE_UNTIL)

    def decide(self, step: int, eval_every: int, checkpoint_every: int, agree=lambda steps: steps) -> Decision:
        """The run's length from the timings so far; `agree` makes every rank take the same number."""
        recent = self._step_s[1:][-RECENT_STEPS:] or self._step_s
        elapsed = time.perf_counter() - self.started
        timings = Decision(0, self.budget_s, statistics.median(recent), self.eval_s / eval_every,
                           self.checkpoint_s / checkpoint_every, self.max_steps, step, elapsed)
        steps = agree(steps_in_budget(self.budget_s - elapsed, timings.per_step_s, step, self.max_steps))
        self.decided = Decision(**{**asdict(timings), "steps": steps})
        return self.decided
