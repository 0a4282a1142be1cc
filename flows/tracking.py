"""MLflow for the flows: one experiment, a parent run per pipeline, a nested run per stage.

Uses `$MLFLOW_TRACKING_URI` when set (the server `dsllm up` starts) and otherwise the SQLite file in
the home, with artifacts stored under the home too (never ./mlruns in the working directory).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow

from components.artifacts import StageResult, canonical
from components.home import STAGE_RUN_ENV, Home, use_mlflow_experiment
from flows import run_owner

EXPERIMENT = "dsllm"
_parent_run_id: str | None = None  # the pipeline's run; stage flows in the same process nest under it


def configure(home: Home | None = None, experiment: str = EXPERIMENT) -> str:
    """Point MLflow at the tracking store and make sure the experiment exists; returns its id."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    return use_mlflow_experiment(experiment, home)


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} → {"a.b": 1}."""
    if not isinstance(tree, dict):
        return {prefix.rstrip("."): tree} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}{key}."))
    return flat


def numeric(tree: Any) -> dict[str, float]:
    """The numeric leaves of a nested dict, as MLflow metrics (names sanitised)."""
    return {_metric_name(k): float(v) for k, v in flatten(tree).items()
            if isinstance(v, int | float) and not isinstance(v, bool)}


def _metric_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in name)


@contextlib.contextmanager
def pipeline_run(name: str, config: Any) -> Iterator[str]:
    """The parent run of one pipeline execution; stage runs started inside nest under it."""
    global _parent_run_id
    experiment_id = configure()  # first: it points MLflow at the home's store
    run_owner.end_stale_runs(mlflow.MlflowClient(mlflow.get_tracking_uri()), experiment_id)
    with mlflow.start_run(run_name=name, tags=run_owner.owner_tags()) as run:
        mlflow.log_params({k: str(v)[:500] for k, v in flatten(canonical(config)).items()})
        _parent_run_id, previous = run.info.run_id, _parent_run_id
        try:
            yield run.info.run_id
        finally:
            _parent_run_id = previous


@contextlib.contextmanager
def stage_run(stage: str, config: Any) -> Iterator[str]:
    """A (nested) run for one stage, open while it builds; its id reaches the stage's components through
    `components.home.stage_mlflow_run()` (training logs live curves there, from Ray workers on rank 0 only)."""
    configure()
    with mlflow.start_run(run_name=stage, parent_run_id=_parent_run_id, nested=_parent_run_id is not None,
                          tags=run_owner.owner_tags()) as run:
        mlflow.set_tag("dsllm.stage", stage)
        mlflow.log_params({k: str(v)[:500] for k, v in flatten(canonical(config)).items()})
        previous = os.environ.get(STAGE_RUN_ENV)
        os.environ[STAGE_RUN_ENV] = run.info.run_id
        try:
            yield run.info.run_id
        finally:
            os.environ.pop(STAGE_RUN_ENV) if previous is None else os.environ.__setitem__(STAGE_RUN_ENV, previous)


def log_result(result: StageResult, seconds: float) -> None:
    """Counts as metrics, report/ files as artifacts and the artifact lineage as tags, on the active run."""
    mlflow.set_tags({"dsllm.artifact_uri": result.uri, "dsllm.artifact_key": result.key,
                     "dsllm.cached": str(result.cached).lower()})
    mlflow.log_metrics({**numeric(result.counts), "stage_seconds": seconds, "cache_hit": float(result.cached)})
    mlflow.log_dict(canonical(result.counts), "counts.json")
    report = Path(result.path) / "report"
    if report.is_dir():
        mlflow.log_artifacts(str(report), artifact_path="report")
