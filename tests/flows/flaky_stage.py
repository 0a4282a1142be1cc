"""A stage that fails on demand, to test retries, timeouts, the training limit and resume hints (not a pipeline stage)."""

import time

from components.artifacts import StageSpec
from components.config import StageConfig


class Flaky(StageConfig):
    """n: the value written (and the key of FAIL); sleep: seconds the work takes."""

    n: int
    sleep: float = 0


CALLS: list[Flaky] = []
FAIL: dict[int, list[type[Exception]]] = {}  # cfg n -> the errors its next calls raise, in order
SPANS: list[tuple[float, float]] = []  # (start, end) of each finished call, to see whether two overlapped


def _work(cfg: Flaky, inputs, out):
    CALLS.append(cfg)
    start = time.monotonic()
    if FAIL.get(cfg.n):
        raise FAIL[cfg.n].pop(0)(f"failure of n={cfg.n} on purpose")
    while time.monotonic() - start < cfg.sleep:
        time.sleep(0.05)  # short sleeps: a timeout raised into this thread lands between them
    SPANS.append((start, time.monotonic()))
    (out / "value.txt").write_text(str(cfg.n))
    return {"value": cfg.n}


STAGE = StageSpec("flaky", 1, _work, config=Flaky)
