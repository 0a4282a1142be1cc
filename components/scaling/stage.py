"""The scaling StageSpec: pack + tokenizer artifacts in, fitted laws, recommendation and report out.

inputs {"pack": uri, "tokenizer": uri}; config: a `ScalingStageConfig` (its `scaling` section is the
study; model, pretrain and the pack's seq_len give everything a trial does not set itself: vocabulary,
context, precision, schedule, optimizer). Output: laws.json, results.jsonl (every trial), skipped.json, report/ (scaling.md,
laws.json, PNGs). Trials train under `<home>/scaling/<key>`, so a killed study resumes there.
"""

from __future__ import annotations

from pathlib import Path

from components.artifacts import StageSpec, stage_key
from components.config import ScalingStageConfig
from components.home import Home, stage_mlflow_run
from components.scaling.plan import LAYOUT_FIELDS
from components.scaling.study import run_study

NAME, VERSION = "scaling", 3  # 2: bracketed grid, checks and verdict in laws.json; 3: lr/batch held in a range
SHAPE = {"n_layer", "d_model", "n_head", "n_kv_head", "d_ffn"}
NOT_RESULT = {"trial_cpus", "max_concurrent", "allow_extrapolation"}  # study fields that change no result
PER_TRIAL = {"total_tokens", "batch_tokens", "lr", "warmup_steps", "val_batches", "seed", "time_budget_min"}


def key_config(cfg: ScalingStageConfig) -> dict:
    return {"scaling": cfg.scaling.model_dump(mode="json", exclude=NOT_RESULT), "model": cfg.model.model_dump(mode="json", exclude=SHAPE),
            "pretrain": cfg.pretrain.model_dump(mode="json", exclude=LAYOUT_FIELDS | PER_TRIAL),
            "seq_len": cfg.seq_len}


def work_dir(cfg: ScalingStageConfig, inputs: dict[str, Path]) -> Path:
    """`<home>/scaling/<artifact key>`: trial results survive a killed study."""
    key = stage_key(NAME, VERSION, key_config(cfg), {name: Path(path).name for name, path in inputs.items()})
    return Home.resolve().root / "scaling" / key


def work(cfg: ScalingStageConfig, inputs: dict[str, Path], out_dir: Path) -> dict:
    return run_study(cfg.scaling, cfg.model, cfg.pretrain, cfg.seq_len, inputs["pack"], inputs["tokenizer"],
                     work_dir(cfg, inputs), out_dir, Home.resolve().mlflow_uri,
                     stage_mlflow_run()[0])


STAGE = StageSpec(NAME, VERSION, work, key_config, config=ScalingStageConfig, section=ScalingStageConfig.of)
