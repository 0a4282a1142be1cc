"""The `evaluate` flow: run the registered benchmark tasks on a model artifact."""

from __future__ import annotations

from prefect import flow

from components.artifacts import StageResult
from components.config import EvalConfig
from flows.common import run_stage


@flow(name="evaluate")
def evaluate(model_uri: str, pack_uri: str | None = None, cfg: EvalConfig = EvalConfig()) -> StageResult:
    """Score a model on the configured tasks (bits-per-byte needs the pack artifact's validation shards)."""
    inputs = {"model": model_uri} | ({"pack": pack_uri} if pack_uri else {})
    return run_stage("evaluate", cfg, inputs)
