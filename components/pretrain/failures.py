"""Ray Train's failure budget, spent only on failures a restart can fix.

Ray Train (2.60, Train V2) restarts the worker group after any worker error, up to
`FailureConfig.max_failures`, and retries worker-group start-up failures without limit. A lost worker
(killed, out of memory, a node gone) should resume from the last checkpoint; a deterministic error (a
full disk, a bad value) comes back on every restart, so it stops the run at once and is raised with
its own message. Ray has no public hook for this decision, so `deterministic_failures_stop()` wraps the
policy factory the trainer calls (falling back to Ray's own policy if that internal name moves).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from components.faults import causes, disk_full, is_deterministic, is_disk_full

log = logging.getLogger("dsllm.pretrain")
STARTUP_FAILURES = 3
"""Worker-group start-up failures tolerated (Ray's default is unlimited: a start-up that always fails hangs)."""


def lost_worker(error: BaseException) -> bool:
    """True for a worker that died or stopped answering (as opposed to one that raised)."""
    from ray.exceptions import RayActorError
    from ray.train.v2._internal.exceptions import WorkerHealthCheckFailedError, WorkerHealthCheckTimeoutError

    return isinstance(error, RayActorError | WorkerHealthCheckFailedError | WorkerHealthCheckTimeoutError)


def should_stop(training_error: BaseException) -> bool:
    """A worker-group failure where no worker was lost and some worker raised a deterministic error."""
    failures = list((getattr(training_error, "worker_failures", None) or {}).values())
    if not failures or any(lost_worker(e) for e in failures):
        return False
    return any(is_deterministic(e) for e in failures)


try:  # internal names of Ray Train V2 (2.60); without them Ray's own policy stays
    from ray.train.v2._internal.execution.failure_handling import DefaultFailurePolicy, FailureDecision
except ImportError:  # pragma: no cover - another Ray layout
    DefaultFailurePolicy = None

if DefaultFailurePolicy is not None:
    class StopOnDeterministic(DefaultFailurePolicy):
        """Ray's default policy, except that a deterministic worker error raises at once."""

        def make_decision(self, training_failed_error):
            if should_stop(training_failed_error):
                log.error("pretraining stopped without a restart (a restart would fail the same way): %s",
                          training_failed_error)
                return FailureDecision.RAISE
            return super().make_decision(training_failed_error)


@contextlib.contextmanager
def deterministic_failures_stop() -> Iterator[None]:
    """While active, trainers built in this process stop on deterministic worker errors instead of restarting."""
    try:
        from ray.train.v2.api import data_parallel_trainer as dpt
    except ImportError:
        dpt = None
    if dpt is None or DefaultFailurePolicy is None or not hasattr(dpt, "create_failure_policy"):
        log.warning("Ray Train's failure policy could not be adjusted; every worker error is retried")
        yield
        return
    original = dpt.create_failure_policy
    dpt.create_failure_policy = StopOnDeterministic
    try:
        yield
    finally:
        dpt.create_failure_policy = original


def plain_error(error: BaseException, ckpt_dir: Path) -> Exception:
    """The failure of a training run as one readable error: a full disk names the path; a deterministic worker
    error keeps its type and message (not Ray's page of worker tracebacks)."""
    if is_disk_full(error):
        return disk_full(error, ckpt_dir)
    workers = getattr(error, "worker_failures", None) or {}
    for rank, exc in sorted(workers.items()):
        if is_deterministic(exc):
            base = next(e for e in causes(exc) if is_deterministic(e) and not hasattr(e, "_base_exc"))
            return RuntimeError(f"pretraining failed on worker {rank}: {type(base).__name__}: {base}")
    return RuntimeError(f"pretraining failed: {error}")
