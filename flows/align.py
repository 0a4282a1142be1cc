"""Alignment flows: SFT on conversations, then DPO on preference pairs (TRL on Ray Train)."""

from __future__ import annotations

from prefect import flow

from components.artifacts import StageResult
from components.config import AlignConfig
from flows.common import run_stage


@flow(name="sft")
def sft(base_model_uri: str, cfg: AlignConfig = AlignConfig()) -> StageResult:
    """Supervised fine-tuning of the base model with the project's chat template."""
    return run_stage("sft", cfg, {"model": base_model_uri})


@flow(name="dpo")
def dpo(sft_model_uri: str, cfg: AlignConfig = AlignConfig()) -> StageResult:
    """Direct preference optimisation from the SFT model (the SFT model is the reference)."""
    return run_stage("dpo", cfg, {"model": sft_model_uri})


@flow(name="align")
def align(base_model_uri: str, cfg: AlignConfig = AlignConfig()) -> dict[str, StageResult]:
    """SFT then DPO."""
    sft_result = sft(base_model_uri, cfg)
    return {"sft": sft_result, "dpo": dpo(sft_result.uri, cfg)}
