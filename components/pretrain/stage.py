"""The pretrain stage as the flows run it: `STAGE = StageSpec("pretrain", ...)`.

Inputs: {"pack": <pack artifact>, "tokenizer": <tokenizer artifact>}; the config is a `PretrainStageConfig`
(the model and pretrain sections and the pack's seq_len). The key covers the model, the pretraining fields
that change the trained weights and the sequence length; cadence and layout fields (evaluation and checkpoint intervals,
workers, micro-batch, devices, threads, compile) do not retrain. Checkpoints live under
`<home>/checkpoints/<key>`, so re-running a killed stage with the same key resumes. With
`DSLLM_ARTIFACTS_URI` set they live at `<uri>/checkpoints/<key>` and the workers read the pack from
`<uri>/artifacts/pack/<key>` (components.storage), so the resume may happen on another machine.
"""

from __future__ import annotations

from pathlib import Path

from components import storage
from components.artifact_mirror import Mirror
from components.artifacts import StageSpec, stage_key
from components.config import PretrainStageConfig
from components.home import Home
from components.pretrain.trainer import pretrain

NAME, VERSION = "pretrain", 2  # 2: initial weights changed
NOT_IN_KEY = {"eval_every", "checkpoint_every", "val_batches", "num_workers", "use_gpu", "strategy", "micro_batch",
              "compile", "max_failures", "cpus_per_worker", "peak_flops", "keep_checkpoints",
              "activation_checkpointing"}
"""Fields that change how the run is laid out or watched, not the trained model (up to float rounding)."""


def key_config(cfg: PretrainStageConfig) -> dict:
    unset = {"time_budget_min"} if cfg.pretrain.time_budget_min is None else set()  # keys from before the field
    return {"model": cfg.model, "pretrain": cfg.pretrain.model_dump(mode="json", exclude=NOT_IN_KEY | unset),
            "seq_len": cfg.seq_len}


def checkpoint_dir(cfg: PretrainStageConfig, inputs: dict[str, Path]) -> Path | str:
    """`<home>/checkpoints/<artifact key>` (input artifacts are named by their keys), or on object storage."""
    key = stage_key(NAME, VERSION, key_config(cfg), {name: Path(path).name for name, path in inputs.items()})
    if remote := storage.root_uri():
        return storage.join(remote, "checkpoints", key)
    return Home.resolve().root / "checkpoints" / key


def pack_location(pack: Path) -> Path | str:
    """The pack artifact where the workers read it: its copy on object storage when there is one."""
    remote = storage.root_uri()
    return Mirror(remote).uri(pack.parent.name, pack.name) if remote else pack


def work(cfg: PretrainStageConfig, inputs: dict[str, Path], out_dir: Path) -> dict:
    return pretrain(cfg.model, cfg.pretrain, pack_location(Path(inputs["pack"])), inputs["tokenizer"], out_dir,
                    checkpoint_dir(cfg, inputs), seq_len=cfg.seq_len)


STAGE = StageSpec(NAME, VERSION, work, key_config, config=PretrainStageConfig, section=PretrainStageConfig.of)
