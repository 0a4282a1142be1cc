"""Pretraining from the driver's side: check the inputs, run the workers on Ray Train, publish.

`pretrain(...)` validates everything first (bad input fails before Ray starts), then runs
`train_loop` under a `TorchTrainer` (gloo on CPU, nccl on GPU; `num_workers=0` runs in-process),
recovering from worker failures (FailureConfig) from the newest checkpoint. Checkpoints live
outside the artifact, so a killed process resumes when called again with the same checkpoint
directory. The final model is copied to `out/hf` with the tokenizer, beside metrics.jsonl and the
report; the returned counts summarise the run.

The pack and the checkpoints may be on object storage (URIs, components.storage): workers copy the
pack to their node and write checkpoints straight to the bucket, so a run killed on one machine
resumes on another. metrics.jsonl, the heartbeats and the final model stay in a local run folder.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

from components import preflight, ray_setup, storage
from components.config import ModelConfig, PretrainConfig
from components.home import Home, stage_mlflow_run
from components.model import accounting, build_model, count_parameters
from components.pretrain import budget, failures
from components.pretrain.checks import check_batch, check_pack, check_seq_len, check_tokenizer
from components.pretrain.loop import RunSpec
from components.pretrain.metrics import read
from components.pretrain.progress import ProgressMonitor
from components.pretrain.report import summary, write_report
from components.pretrain.worker import FINAL, train_loop

log = logging.getLogger("dsllm.pretrain")


def ensure_ray(num_cpus: int | None = None) -> None:
    """Ray for training: a small object store (weights travel through checkpoints, not objects)."""
    ray_setup.ensure_ray(num_cpus, object_store_mb=200, log_to_driver=True)


def plan(model: ModelConfig, cfg: PretrainConfig, pack_dir: Path | str, tokenizer_dir: Path, ckpt_dir: Path | str,
         seq_len: int | None = None, run_dir: Path | None = None) -> tuple[RunSpec, object]:
    """Check every input and build the workers' RunSpec; returns (spec, tokenizer). `pack_dir` and `ckpt_dir`
    may be object-storage URIs; `run_dir` (local) defaults to `ckpt_dir`, or a folder in the home's cache."""
    pack = check_pack(pack_dir, model)
    check_seq_len(seq_len, pack)
    tokenizer = check_tokenizer(Path(tokenizer_dir), model)
    steps = check_batch(cfg, pack.seq_len)
    if cfg.use_gpu:  # a config that cannot fit the GPUs fails here, before any worker starts
        from components.plan.planner import check_fits_run, detect_gpus

        if (devices := detect_gpus(max(cfg.num_workers, 1))) is not None:
            check_fits_run(model, cfg, pack.seq_len, devices)
    ids = {"bos_id": _id(tokenizer.bos_token_id, pack.bos_id), "eos_id": _id(tokenizer.eos_token_id, pack.eos_id),
           "pad_id": _id(tokenizer.pad_token_id, pack.pad_id)}
    run_id, uri = stage_mlflow_run()
    return RunSpec(model=model.model_dump(), pretrain=cfg.model_dump(),
                   pack_dir=str(pack_dir) if storage.is_remote(pack_dir) else str(pack.root),
                   ckpt_dir=_location(ckpt_dir), seq_len=pack.seq_len, total_steps=steps, ids=ids,
                   mlflow_uri=uri or Home.resolve().mlflow_uri, mlflow_run_id=run_id,
                   run_dir=str(_run_dir(ckpt_dir, run_dir)), cache_dir=str(Home.resolve().cache)), tokenizer


def _location(place: Path | str) -> str:
    return str(place) if storage.is_remote(place) else str(Path(place).resolve())


def _run_dir(ckpt_dir: Path | str, run_dir: Path | None) -> Path:
    if run_dir is not None:
        return Path(run_dir).resolve()
    if not storage.is_remote(ckpt_dir):
        return Path(ckpt_dir).resolve()
    return storage.cache_path(str(ckpt_dir), Home.resolve().cache, "runs")


def _id(preferred, fallback) -> int | None:
    value = preferred if preferred is not None else fallback
    return int(value) if value is not None and int(value) >= 0 else None


def fit(spec: RunSpec, progress: bool = True) -> None:
    """Train `spec` on Ray Train (or in-process for num_workers=0) until the final model exists."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    cfg = spec.cfg
    if cfg.num_workers > 0:
        ensure_ray()
    preflight.check_training(cfg, ModelConfig(**spec.model),
                             preflight.ray_resources() if cfg.num_workers else preflight.local_resources())
    scaling = ScalingConfig(num_workers=cfg.num_workers, use_gpu=cfg.use_gpu,
                            resources_per_worker=_resources(cfg) if cfg.num_workers else None)
    if cfg.num_workers or cfg.cpus_per_worker:  # torch threads = the CPUs this worker holds
        cpus = scaling.resources_per_worker.get("CPU", 1) if cfg.num_workers else cfg.cpus_per_worker
        spec.threads = max(1, round(cpus))
    if not cfg.use_gpu and not cfg.peak_flops:  # the MFU peak: probed once per machine, here, before any load
        spec.peak_flops, spec.peak_source = driver_cpu_peak(spec)
    trainer = TorchTrainer(
        train_loop, train_loop_config=asdict(spec), scaling_config=scaling,
        torch_config=TorchConfig(backend="nccl" if cfg.use_gpu else "gloo"),
        run_config=RunConfig(name=f"attempt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}",
                             storage_path=str(spec.run_root / "ray"),
                             failure_config=FailureConfig(max_failures=cfg.max_failures,
                                                          controller_failure_limit=failures.STARTUP_FAILURES),
                             worker_runtime_env={"env_vars": worker_env()}))
    with ProgressMonitor(spec.run_root / "metrics.jsonl", spec.total_steps, spec.total_steps * cfg.batch_tokens,
                         bar=progress), failures.deterministic_failures_stop():
        try:
            result = trainer.fit()
        except Exception as exc:
            raise failures.plain_error(exc, spec.run_root) from exc
    if getattr(result, "error", None):
        raise failures.plain_error(result.error, spec.run_root) from result.error


def driver_cpu_peak(spec: RunSpec) -> tuple[float, str]:
    """The CPU peak for MFU from the home's cache (probed there once per machine; components.plan.peak)."""
    import torch

    from components.plan.peak import device_peak
    from components.pretrain.runtime import compute_dtype

    cpu = torch.device("cpu")
    return device_peak(compute_dtype(spec.cfg.precision, cpu), cpu, spec.threads)


def worker_env() -> dict[str, str]:
    """Environment of the training workers. OpenMP threads that sleep at barriers instead of spinning
    (unless the user chose otherwise): on a busy or oversubscribed CPU, spinning threads starve the
    thread everyone waits for; measured here, small steps ran 3-35x faster under load with PASSIVE.
    The object-storage endpoint and region go along (credentials do not: the nodes' own roles or env)."""
    forwarded = {name: os.environ[name] for name in storage.FORWARDED_ENV if os.environ.get(name)}
    return {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"), **forwarded}


def _resources(cfg: PretrainConfig) -> dict:
    import ray

    cpus = preflight.worker_cpus(cfg, ray.cluster_resources().get("CPU", 1))  # the rule preflight checked
    return {"CPU": cpus, **({"GPU": 1} if cfg.use_gpu else {})}


def _log_model(spec: RunSpec, folder: Path) -> None:
    """The final model's files as artifacts of the stage's MLflow run (when the flow opened one)."""
    if not spec.mlflow_run_id:
        return
    import mlflow

    try:
        mlflow.MlflowClient(spec.mlflow_uri).log_artifacts(spec.mlflow_run_id, str(folder), artifact_path="model")
    except Exception as err:  # the artifact in the store is the source of truth; MLflow is a view
        log.warning("the final model was not logged to MLflow (%s)", err)


def pretrain(model: ModelConfig, cfg: PretrainConfig, pack_dir: Path | str, tokenizer_dir: Path, out_dir: Path,
             ckpt_dir: Path | str, seq_len: int | None = None, progress: bool = True,
             run_dir: Path | None = None) -> dict:
    """Train (or resume) and publish into `out_dir`: hf/, metrics.jsonl, report/; returns counts."""
    spec, tokenizer = plan(model, cfg, pack_dir, tokenizer_dir, ckpt_dir, seq_len, run_dir)
    ckpt = spec.run_root
    ckpt.mkdir(parents=True, exist_ok=True)
    if (ckpt / FINAL / "config.json").is_file():
        log.info("pretrain: the final model is already in %s; publishing it", ckpt / FINAL)
    else:
        fit(spec, progress)
    out_dir = Path(out_dir)
    shutil.copytree(ckpt / FINAL, out_dir / "hf", dirs_exist_ok=True)
    tokenizer.save_pretrained(str(out_dir / "hf"))
    records = read(ckpt / "metrics.jsonl")
    shutil.copy2(ckpt / "metrics.jsonl", out_dir / "metrics.jsonl")
    decision = budget.read(spec.ckpt_dir) if cfg.time_budget_min else None
    steps = decision.steps if decision else spec.total_steps
    params = count_parameters(build_model(model, device="meta"))
    acc = accounting(model, spec.seq_len, steps * cfg.batch_tokens, params)
    write_report(records, acc, out_dir / "report")
    if decision:
        (out_dir / budget.FILE).write_text(json.dumps(asdict(decision), indent=2))
    _log_model(spec, out_dir / "hf")
    if not cfg.keep_checkpoints:
        shutil.rmtree(ckpt, ignore_errors=True)
        if storage.is_remote(spec.ckpt_dir):
            storage.remove(spec.ckpt_dir)
    return {**summary(records), "params": acc["params"], "params_non_embedding": acc["params_non_embedding"],
            "flops_per_token": acc["flops_per_token"], "six_n1": acc["six_n1"], "six_n2": acc["six_n2"],
            "compute": acc["compute"], **({f"budget.{k}": v for k, v in asdict(decision).items()} if decision else {})}
