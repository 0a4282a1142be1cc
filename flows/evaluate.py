"""Evaluation flows: `evaluate` scores a model artifact; `evaluate_approved` scores the registry's approved model.

`evaluate_approved` (the nightly deployment) resolves `models:/<model>@<alias>` with MlflowClient,
downloads that version once as the `registered_model` artifact and runs the evaluate stage on it
with the full task set. Both steps are content-addressed: a night on which the alias has not moved
and the task settings are the same finds the scorecard already built and costs nothing. Given a `judge`
(an OpenAI-compatible endpoint), it adds the `pairwise` task against the version under the `previous`
alias (the former approved one) and writes the head-to-head result into the approved version's model card.
"""

from __future__ import annotations

import mlflow
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE
from prefect.tasks import exponential_backoff

from components.artifacts import ArtifactStore, StageResult, parse_uri
from components.config import EndpointConfig, EvalConfig
from components.evaluate.registered import RegisteredModelConfig, resolve_version
from components.evaluate.registry import TASKS
from flows import lineage, tracking
from flows.common import run_stage

FULL_TASK_SET = EvalConfig(tasks=[name for name, t in TASKS.items() if t.kind != "judge"])
"""Every registered task but the judged ones (bits-per-byte runs when a pack artifact is known); a `judge` adds
the head-to-head."""


@flow(name="evaluate")
def evaluate(model_uri: str, pack_uri: str | None = None, cfg: EvalConfig = EvalConfig()) -> StageResult:
    """Score a model on the configured tasks (bits-per-byte needs the pack artifact's validation shards)."""
    inputs = {"model": model_uri} | ({"pack": pack_uri} if pack_uri else {})
    return run_stage("evaluate", cfg, inputs)


@task(retries=4, retry_delay_seconds=exponential_backoff(10)(4), retry_jitter_factor=0.5, cache_policy=NONE)
def resolve_alias(model: str, alias: str) -> dict | None:
    """The version behind `model@alias` from the MLflow registry (retried: the tracking server may be restarting)."""
    return resolve_version(model, alias)


@flow(name="evaluate_approved")
def evaluate_approved(model: str = "dsllm-chat", alias: str = "approved", cfg: EvalConfig = FULL_TASK_SET,
                      pack_uri: str | None = None, judge: EndpointConfig | None = None) -> dict | None:
    """Evaluate the registered model version that `alias` points at (nothing to do when there is none).

    Args:
        model: the MLflow registered model name.
        alias: the alias to evaluate (moved by the approval gate).
        cfg: the evaluation settings; the full task set by default.
        pack_uri: the pack artifact for bits-per-byte; default: a `dsllm://pack/...` value among the
            version's lineage tags when that artifact is on this machine, else bpb is skipped.
        judge: an OpenAI-compatible judge (URL, model, the name of its key's environment variable): adds the
            pairwise task against the `previous` version and the result to the model card. None: not run.
    """
    logger = get_run_logger()
    version = resolve_alias(model, alias)
    if version is None:
        logger.warning("no version of %r has the alias %r (not registered or not approved yet): nothing to "
                       "evaluate", model, alias)
        return None
    pack_uri = pack_uri or _pack_from_lineage(version["tags"])
    cfg = _without_bpb(cfg, logger) if pack_uri is None else cfg
    cfg = _with_head_to_head(cfg, judge, model, logger)
    title = f"evaluate-{model}-v{version['version']}"
    logger.info("evaluating models:/%s@%s = version %s (run %s)", model, alias, version["version"], version["run_id"])
    with tracking.pipeline_run(title, {"model": model, "alias": alias, "eval": cfg}) as run_id:
        mlflow.set_tags({"dsllm.model": model, "dsllm.alias": alias, "dsllm.model_version": version["version"],
                         "dsllm.model_run_id": version["run_id"]})
        chosen = RegisteredModelConfig(name=version["name"], version=version["version"], run_id=version["run_id"])
        fetched = run_stage("registered_model", chosen)
        scored = run_stage("evaluate", cfg, {"model": fetched.uri} | ({"pack": pack_uri} if pack_uri else {}))
    if isinstance(scored.counts.get("pairwise"), dict):
        record_head_to_head(model, version["version"], scored.counts["pairwise"], cfg)
    lineage.record_pipeline("evaluate-approved", title, {"registered_model": fetched.uri, "evaluate": scored.uri},
                            run_id)
    return {"model": model, "alias": alias, "version": version["version"], "model_uri": fetched.uri,
            "evaluate_uri": scored.uri, "scores": scored.counts}


@task(cache_policy=NONE)
def record_head_to_head(model: str, version: str, metrics: dict, cfg: EvalConfig) -> None:
    """The pairwise result into the approved version's model card and a tag."""
    from components.evaluate.report import head_to_head
    from components.registry import head_to_head as h2h

    h2h.record(model, version, head_to_head(metrics, cfg), metrics, str(cfg.opponent))


def _with_head_to_head(cfg: EvalConfig, judge: EndpointConfig | None, model: str, logger) -> EvalConfig:
    """cfg plus pairwise against `model@previous` when a judge is given and a previous version exists."""
    if judge is None:
        return cfg
    previous = resolve_alias(model, "previous")
    if previous is None:
        logger.info("head to head not run: no version of %r has the alias 'previous' yet", model)
        return cfg
    tasks = [*cfg.tasks, *(["pairwise"] if "pairwise" not in cfg.tasks else [])]
    return cfg.model_copy(update={"judge": judge, "opponent": f"models:/{model}/{previous['version']}",
                                  "tasks": tasks})


def _pack_from_lineage(tags: dict[str, str]) -> str | None:
    """A pack artifact named in the version's tags that exists in this home (the tag's name does not matter)."""
    store = ArtifactStore()
    for value in tags.values():
        if isinstance(value, str) and value.startswith("dsllm://pack/") and value.count("/") == 3 \
                and store.is_done(*parse_uri(value)):
            return value
    return None


def _without_bpb(cfg: EvalConfig, logger) -> EvalConfig:
    if "bpb" not in cfg.tasks:
        return cfg
    tasks = [t for t in cfg.tasks if t != "bpb"]
    if not tasks:
        raise ValueError("Only bpb was asked for, and it needs pack_uri (a dsllm://pack/<key> artifact); pass one.")
    logger.info("bpb skipped: no pack artifact given or found in the version's lineage tags (pass pack_uri)")
    return cfg.model_copy(update={"tasks": tasks})
