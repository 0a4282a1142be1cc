"""The `pretrain` flow: train the base model from scratch on Ray Train."""

from __future__ import annotations

from prefect import flow

from components.artifacts import StageResult
from components.config import PipelineConfig
from components.presets import DEFAULT_PRESET, load_config
from flows.common import run_stage
from flows.stages import step


@flow(name="pretrain")
def pretrain(pack_uri: str, tokenizer_uri: str, preset: str = DEFAULT_PRESET,
             overrides: list[str] | None = None, config: PipelineConfig | None = None) -> StageResult:
    """Pretrain on the packed shards (the model and pretrain sections and pack.seq_len; others ignored)."""
    cfg = config or load_config(preset, None, overrides or [])
    return run_stage("pretrain", step("pretrain").config(cfg), {"pack": pack_uri, "tokenizer": tokenizer_uri})
