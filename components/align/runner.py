"""Run an alignment worker function on Ray Train and bring its final checkpoint home.

Each worker builds its own TRL trainer (the TRL/Ray pattern: RayTrainReportCallback reports every
epoch's checkpoint, prepare_trainer wires Ray Data iterables). When training ends, rank 0 reports
one last checkpoint holding the HF model, the tokenizer and `results.json`; every other rank
reports too (Ray Train wants the same number of reports from each). The driver copies that
checkpoint into the stage's output directory. Ray is started locally only when no cluster is
connected; `RAY_ADDRESS` points it at a cluster instead. With `num_workers=0` the same code runs in
Ray Train's local mode: no Ray cluster and no actors, the worker function runs in this process.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from components.align.timing import Phases
from components.config import AlignConfig
from components.home import Home, quiet_telemetry
from components.ray_setup import ensure_ray

RESULTS = "results.json"
MAX_CHECKPOINTS = 4  # per run: each one is written, reported and persisted by Ray (seconds on a small box),
# and the held-out evaluation and repetition monitor run with them


def fit(worker: Callable[[dict], None], config: dict, cfg: AlignConfig, name: str, out_dir: Path,
        phases: Phases) -> dict:
    """Train with `cfg.num_workers` Ray workers (0: Ray Train's local mode, in this process); copy rank 0's
    final checkpoint to out_dir; return results."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    home = Home.resolve()
    if cfg.num_workers:
        with phases("ray_start"):
            ensure_ray(log_to_driver=True)
    storage = home.ray / "train"
    progress = storage / f"{name}-progress.jsonl"  # rank 0 writes, this process logs it (components.align.progress)
    cpus = _worker_cpus(cfg)
    config = {**config, "progress": str(progress), "threads": max(1, round(cpus)) if cpus else None}
    resources = {"CPU": cpus, **({"GPU": 1} if cfg.use_gpu else {})}
    trainer = TorchTrainer(
        worker, train_loop_config=config,
        scaling_config=ScalingConfig(num_workers=cfg.num_workers, use_gpu=cfg.use_gpu,
                                     resources_per_worker=resources if cfg.num_workers else None),
        run_config=RunConfig(name=name, storage_path=str(storage), failure_config=FailureConfig(max_failures=0),
                             checkpoint_config=CheckpointConfig(num_to_keep=1)))
    from components.align.progress import follow

    with phases("ray_fit"), _restored_torch_threads(), follow(progress):
        result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"{name}: training finished without a final checkpoint (see the Ray worker logs)")
    try:
        with result.checkpoint.as_directory() as ckpt:
            shutil.copytree(Path(ckpt) / "hf", out_dir / "hf", dirs_exist_ok=True)
            return json.loads((Path(ckpt) / RESULTS).read_text())
    finally:
        shutil.rmtree(storage / name, ignore_errors=True)  # checkpoints copied out; keep the home small
        progress.unlink(missing_ok=True)
        if not cfg.num_workers:  # local mode reports the worker's own directory, not a persisted copy
            shutil.rmtree(result.checkpoint.path, ignore_errors=True)


def _worker_cpus(cfg: AlignConfig) -> float | None:
    """CPUs each Ray worker holds (the configured number, else pretraining's equal share of the cluster); None
    in local mode with none configured, where the process keeps its own threads."""
    if not cfg.num_workers:
        return cfg.cpus_per_worker
    import ray

    from components import preflight

    return preflight.worker_cpus(cfg, ray.cluster_resources().get("CPU", 1))


@contextmanager
def _restored_torch_threads():
    """The worker sets torch's thread count; in local mode that worker is this process."""
    import torch

    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def report_final(trainer, tokenizer, results: dict, metrics: dict, phases: Phases, local: bool) -> None:
    """In a worker after training: rank 0 reports model + tokenizer + results (with the worker's phase
    timings) as the last checkpoint. Ray persists a copy of it, except in local mode (`local`), where
    the driver reads the directory itself and removes it."""
    import ray.train

    if not trainer.is_world_process_zero():
        ray.train.report(metrics)
        return
    tmp = tempfile.mkdtemp(prefix="dsllm-final-")
    try:
        with phases("save"):
            master_weights_into_model(trainer)
            trainer.save_model(str(Path(tmp) / "hf"))
            tokenizer.save_pretrained(str(Path(tmp) / "hf"))
        results = {**results, "seconds": phases.seconds}
        (Path(tmp) / RESULTS).write_text(json.dumps(results, ensure_ascii=False, default=str))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
    finally:
        if not local:
            shutil.rmtree(tmp, ignore_errors=True)


def attach(trainer, *callbacks, progress: str | None = None, stage: str = "train"):
    """Our callbacks, a step clock, the progress file (`progress`, which the driver logs every ~10 s), Ray's
    report callback and prepare_trainer; the stdout printer goes (MLflow and Ray get the values, and every
    worker printing every log line only clutters the driver's output)."""
    from ray.train.huggingface.transformers import RayTrainReportCallback, prepare_trainer
    from transformers.trainer_callback import PrinterCallback

    from components.align.callbacks import StepClock
    from components.align.progress import ProgressFile

    trainer.remove_callback(PrinterCallback)
    for callback in (*callbacks, StepClock(), ProgressFile(progress, stage), RayTrainReportCallback()):
        trainer.add_callback(callback)
    return prepare_trainer(trainer)


def train_phases(phases: Phases, trainer, monitor_seconds: float = 0.0) -> None:
    """Split trainer.train()'s time: optimizer steps, held-out evaluation, generation monitors; the rest
    is checkpoints, Ray reports and data loading between steps."""
    from components.align.callbacks import StepClock

    clock = next(c for c in trainer.callback_handler.callbacks if isinstance(c, StepClock))
    phases.add("train.steps", clock.seconds)
    phases.add("train.eval", sum(h.get("eval_runtime", 0.0) for h in trainer.state.log_history))
    if monitor_seconds:
        phases.add("train.monitor", monitor_seconds)


def worker_setup(config: dict) -> tuple[AlignConfig, str]:
    """Threads, seed and a per-rank scratch directory for the HF trainer's own checkpoints; on a cluster's
    node too, no telemetry and no Hub kernels (`quiet_telemetry`) before the model is loaded."""
    import ray.train
    import torch
    from transformers import set_seed

    quiet_telemetry()
    cfg = AlignConfig(**config["cfg"])
    if not cfg.use_gpu and config.get("threads"):
        torch.set_num_threads(config["threads"])
    set_seed(cfg.seed)
    rank = ray.train.get_context().get_world_rank()
    return cfg, tempfile.mkdtemp(prefix=f"dsllm-{config['stage']}-rank{rank}-")


def training_args(cfg: AlignConfig, output_dir: str, n_examples: int, epochs: float, evaluate: bool) -> dict:
    """TrainingArguments shared by SFT and DPO: precision and checkpointing from the config (TRL defaults
    both to on, which the CPU does not want), a checkpoint (and Ray report) and a held-out evaluation every
    epoch but at most MAX_CHECKPOINTS per run (the last at the end), no built-in loggers."""
    import torch

    per_step = cfg.batch_size * cfg.grad_accum * max(cfg.num_workers, 1)
    total_steps = max(1, math.ceil(epochs * math.ceil(n_examples / per_step)))
    every = {"strategy": "epoch"} if epochs <= MAX_CHECKPOINTS else \
        {"strategy": "steps", "steps": math.ceil(total_steps / MAX_CHECKPOINTS)}
    save = {f"save_{k}": v for k, v in every.items()}
    evals = {f"eval_{k}": v for k, v in every.items()} if evaluate else {"eval_strategy": "no"}
    return dict(output_dir=output_dir, num_train_epochs=epochs, per_device_train_batch_size=cfg.batch_size,
                per_device_eval_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum,
                warmup_steps=cfg.warmup_ratio, lr_scheduler_type="cosine", use_cpu=not cfg.use_gpu,
                bf16=cfg.bf16 and weights_dtype(cfg) is torch.float32, **checkpointing_arg(cfg.gradient_checkpointing),
                logging_steps=max(1, total_steps // 100), **evals, **save,
                save_only_model=True, save_total_limit=1, report_to="none", seed=cfg.seed,
                disable_tqdm=True, ddp_find_unused_parameters=False, dataloader_num_workers=0)


def checkpointing_arg(enabled: bool) -> dict:
    """Activation checkpointing under the name the installed transformers knows: `activation_checkpointing`
    since 5.25, `gradient_checkpointing` in 5.24 (pyproject admits both)."""
    import dataclasses

    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    return {"activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing": enabled}


def weights_dtype(cfg: AlignConfig):
    """The torch dtype the model trains in (`cfg.precision` on this worker's kind of device)."""
    import torch

    from components.pretrain.runtime import compute_dtype

    device = torch.device("cuda" if cfg.use_gpu and torch.cuda.is_available() else "cpu")
    return compute_dtype(cfg.precision, device)


def with_master_weights(trainer):
    """`trainer` whose optimizer is AdamW over fp32 master copies (with the Trainer's own AdamW settings) where
    the model is not fp32. Set after construction: TRL's DPOTrainer does not pass `optimizer_cls_and_kwargs`."""
    import torch

    from components.pretrain.optim import MasterWeightsAdamW

    if any(p.dtype != torch.float32 for p in trainer.model.parameters()):
        _, kwargs = trainer.get_optimizer_cls_and_kwargs(trainer.args, trainer.model)
        trainer.optimizer_cls_and_kwargs = (MasterWeightsAdamW, kwargs)
    return trainer


def master_weights_into_model(trainer) -> None:
    """After training `with_master_weights`: the model in fp32 with the master weights (what is saved)."""
    from components.pretrain.optim import MasterWeightsAdamW

    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)  # accelerate wraps it
    if isinstance(optimizer, MasterWeightsAdamW):
        trainer.model.float()
        optimizer.write_back()


def load_model(model_dir: str, cfg: AlignConfig, tokenizer):
    """A causal LM in `weights_dtype(cfg)` on this worker's device, attending within each conversation of a
    padding-free batch (`packed_attention`), its generation config set to the tokenizer's eos and pad."""
    from transformers import AutoModelForCausalLM

    from components.align import packed_attention

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=weights_dtype(cfg),
                                                 attn_implementation=packed_attention.NAME)
    for conf in (model.config, model.generation_config):
        conf.eos_token_id, conf.pad_token_id = tokenizer.eos_token_id, tokenizer.pad_token_id
    if cfg.use_gpu:  # scoring and sample replies before training run on the GPU too
        from components.pretrain.runtime import place

        model.to(place(True).device)
    return model
