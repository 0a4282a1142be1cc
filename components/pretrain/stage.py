"""The pretrain stage as the flows run it: `STAGE = StageSpec("pretrain", ...)`.

Inputs: {"pack": <pack artifact>, "tokenizer": <tokenizer artifact>}; the config is the whole
`PipelineConfig`. The key covers the model, the pretraining fields that change the trained weights
and the pack's sequence length; cadence and layout fields (evaluation and checkpoint intervals,
workers, micro-batch, devices, threads, compile) do not retrain. Checkpoints live under
`<home>/checkpoints/<key>`, so re-running a killed stage with the same key resumes.
"""

from __future__ import annotations

from pathlib import Path

from components.artifacts import StageSpec, stage_key
from components.config import PipelineConfig
from components.home import Home
from components.pretrain.trainer import pretrain

NAME, VERSION = "pretrain", 2  # 2: initial weights changed
NOT_IN_KEY = {"eval_every", "checkpoint_every", "val_batches", "num_workers", "use_gpu", "strategy", "micro_batch",
              "compile", "max_failures", "cpus_per_worker", "peak_flops", "keep_checkpoints",
              "activation_checkpointing"}
"""Fields that change how the run is laid out or watched, not the trained model (up to float rounding)."""


def key_config(cfg: PipelineConfig) -> dict:
    return {"model": cfg.model, "pretrain": cfg.pretrain.model_dump(mode="json", exclude=NOT_IN_KEY),
            "seq_len": cfg.pack.seq_len}


def checkpoint_dir(cfg: PipelineConfig, inputs: dict[str, Path]) -> Path:
    """`<home>/checkpoints/<artifact key>` (input artifacts are named by their keys)."""
    key = stage_key(NAME, VERSION, key_config(cfg), {name: Path(path).name for name, path in inputs.items()})
    return Home.resolve().root / "checkpoints" / key


def work(cfg: PipelineConfig, inputs: dict[str, Path], out_dir: Path) -> dict:
    return pretrain(cfg.model, cfg.pretrain, inputs["pack"], inputs["tokenizer"], out_dir,
                    checkpoint_dir(cfg, inputs), seq_len=cfg.pack.seq_len)


STAGE = StageSpec(NAME, VERSION, work, key_config)
