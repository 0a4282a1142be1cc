"""Run a component StageSpec as a Prefect task whose cache key is the artifact key.

A finished artifact is never rebuilt: the store skips it, and Prefect's cache (keyed by the same
content hash) skips the task. The cache is refreshed when the artifact was garbage-collected or is
damaged (checked against its manifest first), so Prefect never returns a result that points at nothing
or at a broken artifact. Retries, timeouts and the training concurrency
tag come from `flows.ops` per stage; a failure is logged with the stage, its inputs and the command
that resumes it; the MLflow run and the artifact keys are recorded on the Prefect run (`flows.lineage`).
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from prefect import flow, get_run_logger, task

from components import preflight
from components.artifacts import ArtifactStore, StageResult
from flows import lineage, ops, tracking
from flows.stages import Step, spec


def _artifact_key(context, parameters: dict[str, Any]) -> str:
    return f"dsllm-{parameters['stage']}-{parameters['key']}"


@task(cache_key_fn=_artifact_key, persist_result=True, cache_expiration=timedelta(days=365),
      log_prints=False)  # libraries print (dill disassembles functions to stdout while datasets hashes them)
def build_stage(stage: str, key: str, cfg: Any, inputs: dict[str, str]) -> StageResult:
    """Build one stage artifact (the heavy work runs here, outside the flow's own code)."""
    result = spec(stage).run(cfg, inputs, ArtifactStore())
    assert result.key == key, f"{stage}: key changed between planning ({key}) and building ({result.key})"
    return result


def run_stage(stage: str, cfg: Any, inputs: dict[str, str] | None = None) -> StageResult:
    """Build or reuse `stage` for `cfg` and the input artifact URIs, log it, and return its result."""
    logger = get_run_logger()
    store, inputs = ArtifactStore(), inputs or {}
    key = spec(stage).key(store, cfg, inputs)
    done = _reusable(store, stage, key, logger)
    if not done:  # refuse now rather than fail hours in with a full disk
        preflight.check_disk(store.root, preflight.estimated_mb(stage, cfg), f"stage {stage}")
    logger.info("stage %s: %s (dsllm://%s/%s)", stage, "cached, nothing to do" if done else "building",
                stage, key)
    started = time.perf_counter()
    try:
        with tracking.stage_run(stage, cfg) as run_id:
            options = {**ops.task_options(stage), "task_run_name": f"{stage}-{key[:8]}", "refresh_cache": not done}
            state = build_stage.with_options(**options)(stage, key, cfg, inputs, return_state=True)
            result: StageResult = state.result()
            result.cached = result.cached or done or state.name == "Cached"
            seconds = time.perf_counter() - started
            tracking.log_result(result, seconds)
    except Exception as exc:
        logger.error(ops.failure_message(stage, key, inputs, exc))
        raise
    lineage.record_stage(result, inputs, run_id)
    logger.info("stage %s: %s in %.1fs, counts %s", stage, "cache hit" if result.cached else "built",
                seconds, _summary(result.counts))
    return result


def run_step(step: Step, cfg: Any, uris: dict[str, str]) -> StageResult:
    """Run a declared step as its own (sub)flow on its config section and the URIs of the steps before it."""
    return stage_flow.with_options(name=step.flow or step.stage)(step.stage, step.config(cfg), step.input_uris(uris))


@flow(name="stage")
def stage_flow(stage: str, cfg: Any, inputs: dict[str, str]) -> StageResult:
    """One stage as a flow of its own (renamed per step by `run_step`)."""
    return run_stage(stage, cfg, inputs)


def _reusable(store: ArtifactStore, stage: str, key: str, logger) -> bool:
    """True when an intact artifact exists; a damaged one is named here and rebuilt by the store (and Prefect's
    cache of it is refreshed, so the task really runs)."""
    if not store.is_done(stage, key):
        return False
    if problems := store.problems(stage, key):
        logger.warning("stage %s: the artifact dsllm://%s/%s is damaged, so it is rebuilt: %s", stage, stage, key,
                       "; ".join(problems))
        return False
    return True


def _summary(counts: dict[str, Any], limit: int = 300) -> str:
    text = ", ".join(f"{k}={v}" for k, v in tracking.flatten(counts).items())
    return text if len(text) <= limit else text[:limit] + "…"
