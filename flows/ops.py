"""Operations around a stage task: retries with backoff, timeouts, the training concurrency tag, resume hints.

Every stage runs as the same Prefect task (`flows.common.build_stage`); `task_options(stage)` gives the
options for one stage:

- retries with exponential backoff and jitter: several for stages that talk to the network or a service
  (downloads from registries, models from MLflow), one for the others (a pretrain retry resumes from
  its last checkpoint). Mistakes (ValueError, FileNotFoundError, ...) and timeouts are never retried.
- a timeout per stage, generous by default; `DSLLM_TIMEOUT_<STAGE>_H=<hours>` overrides it, 0 removes it.
- training stages carry the tag `dsllm-training`; `dsllm up` and `dsllm deploy` give that tag a
  concurrency limit of 1 on the server, so two training runs never fight for the same cores.

`resume_command()` is the exact command that reruns the flow run a failure happened in (its root
flow, with the same parameters): finished artifacts are content-addressed and reused, and pretraining
resumes from its checkpoints, so a rerun continues where the failure stopped.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect.tasks import exponential_backoff

from components.faults import is_deterministic
from components.services.specs import REPO, TRAINING_TAG

NETWORK_STAGES = frozenset({"corpus", "registered_model"})
"""Stages that download (registry archives, MLflow models): transient failures are likely, so retry more."""

TRAINING_STAGES = frozenset({"pretrain", "sft", "dpo"})
"""Stages that train on all cores (or GPUs): at most one at a time per Prefect server."""

TIMEOUT_H: dict[str, float] = {"corpus": 12, "data": 72, "tokenizer": 24, "pack": 48, "pretrain": 60 * 24,
                               "sft": 7 * 24, "dpo": 7 * 24, "evaluate": 48, "registered_model": 12}
"""Default timeouts in hours: far above the deepseek_7b preset on a cluster (pretraining 67B takes weeks)."""
DEFAULT_TIMEOUT_H = 72.0

@dataclass(frozen=True)
class StagePolicy:
    """How one stage's task is run."""

    retries: int
    backoff_s: float  # the first retry waits this long, every further one twice as long (±50% jitter)
    timeout_s: float | None
    tags: frozenset[str]


def policy(stage: str) -> StagePolicy:
    """The retry, timeout and tag policy of `stage`."""
    network, training = stage in NETWORK_STAGES, stage in TRAINING_STAGES
    retries, backoff = (4, 30.0) if network else (1, 60.0) if training else (1, 10.0)
    return StagePolicy(retries, backoff, timeout_s(stage), frozenset({TRAINING_TAG} if training else ()))


def timeout_s(stage: str) -> float | None:
    """Seconds a stage may run: `DSLLM_TIMEOUT_<STAGE>_H` (hours; 0 = none) or the default table."""
    var = f"DSLLM_TIMEOUT_{stage.upper()}_H"
    raw = os.environ.get(var)
    try:
        hours = float(raw) if raw else TIMEOUT_H.get(stage, DEFAULT_TIMEOUT_H)
    except ValueError:
        raise ValueError(f"{var}={raw!r} is not a number of hours; use e.g. {var}=48, or 0 for no timeout.") from None
    if hours < 0:
        raise ValueError(f"{var}={raw!r} is negative; use a number of hours, or 0 for no timeout.")
    return hours * 3600 if hours else None


def retry_unless_mistake(task, task_run, state) -> bool:
    """Prefect retry condition: retry transient failures, not mistakes a rerun would repeat."""
    try:
        error = state.result(raise_on_failure=False)
    except Exception:  # the result could not be read: retrying is the safe default
        return True
    # never retried (`components.faults.is_deterministic`): mistakes (faults.MISTAKES: bad configs, missing inputs,
    # broken invariants, a stage past its timeout), a damaged artifact, a full disk or another non-transient OS
    # error, anywhere in the cause chain
    return not (isinstance(error, BaseException) and is_deterministic(error))


def task_options(stage: str) -> dict[str, Any]:
    """Keyword arguments for `build_stage.with_options(...)`."""
    p = policy(stage)
    return {"retries": p.retries, "retry_delay_seconds": exponential_backoff(p.backoff_s)(p.retries),
            "retry_jitter_factor": 0.5, "retry_condition_fn": retry_unless_mistake,
            "timeout_seconds": p.timeout_s, "tags": set(p.tags)}


# ---- how to resume ---------------------------------------------------------------------------

def resume_command() -> str:
    """The command that reruns this run's root flow with the same parameters (best effort, never raises)."""
    try:
        return _resume_command()
    except Exception as exc:  # the hint must never hide the failure it is about
        return f"rerun the same flow with the same parameters (no exact command: {exc})"


def _resume_command() -> str:
    from prefect import get_client
    from prefect.runtime import flow_run

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run.root_flow_run_id)
        flow_name = client.read_flow(run.flow_id).name
        params = json.dumps(run.parameters, sort_keys=True, default=str)
        if run.deployment_id:
            deployment = client.read_deployment(run.deployment_id).name
            return f"prefect deployment run {shlex.quote(f'{flow_name}/{deployment}')} --params {shlex.quote(params)}"
    where = _flow_function(flow_name)
    if where is None:
        return f"rerun flow {flow_name!r} with parameters {params}"
    module, function = where
    code = f"import json, sys; from {module} import {function}; {function}(**json.loads(sys.argv[1]))"
    return f"cd {shlex.quote(str(REPO))} && PYTHONPATH=. python -c {shlex.quote(code)} {shlex.quote(params)}"


def _flow_function(flow_name: str) -> tuple[str, str] | None:
    """(module, attribute) of the imported flow called `flow_name` defined in a module of this checkout
    (importable from its root, as the command runs there); the product's own `flows` package first."""
    from prefect import Flow

    found = []
    for module_name, module in list(sys.modules.items()):
        if not _in_checkout(getattr(module, "__file__", None)):
            continue
        for attr, value in list(vars(module).items()):
            if isinstance(value, Flow) and value.name == flow_name and value.fn.__module__ == module_name:
                found.append((module_name, attr))
    return min(found, key=lambda where: not where[0].startswith("flows.")) if found else None


def _in_checkout(file: str | None) -> bool:
    return bool(file) and Path(file).resolve().is_relative_to(REPO.resolve())


def failure_message(stage: str, key: str, inputs: dict[str, str], error: BaseException) -> str:
    """One log line: what failed, on which inputs, and how to resume."""
    shown = ", ".join(f"{name}={uri}" for name, uri in sorted(inputs.items())) or "none"
    return (f"stage {stage} FAILED ({type(error).__name__}: {error}); artifact dsllm://{stage}/{key}; "
            f"inputs: {shown}. Finished artifacts are reused and training resumes from its checkpoints, "
            f"so this resumes it: {resume_command()}")
