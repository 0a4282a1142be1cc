"""Wall-clock seconds per phase of an alignment stage, printed as they end and kept for the counts.

A stage's driver and its Ray worker each keep a `Phases`; the worker's travel home in results.json
and both land in the stage's counts under `seconds` (so MLflow gets them as metrics), which shows
where the time goes: Ray start, data preparation, trainer construction (tokenisation), the epochs,
the generation monitors, the preference scoring, saving.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class Phases:
    """Named timers; a name used twice adds up."""

    def __init__(self, stage: str):
        self.stage = stage
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = round(self.seconds.get(name, 0.0) + seconds, 3)
        print(f"[{self.stage}] {name}: {seconds:.1f}s", flush=True)  # Ray forwards a worker's stdout to the driver
