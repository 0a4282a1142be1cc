"""Refuse a run that cannot work before it starts, with one line saying why.

Ray does not reject a request it cannot place: a worker asking for a GPU that no node has, or more
CPUs than the cluster holds, waits forever for resources. So the pretraining request is checked
against what Ray (or, before Ray starts, this machine) provides: GPUs when `use_gpu`, workers ×
CPUs per worker against the CPUs, the memory training the model needs against the memory there is.
Free disk space is checked against a stage's estimated output. Each refusal is a `PreflightError`
(a ValueError: never retried, reported to the user as a mistake to fix).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from components.faults import free_mb

TRAIN_BYTES_PER_PARAM = 16
"""fp32 weights, gradients and AdamW's two moments: the floor of what training holds per parameter."""
MIN_FREE_MB = 50.0
"""Every stage needs some room (manifests, logs, MLflow and Prefect databases) beyond its estimate."""


BEFORE_PRETRAIN = frozenset({"corpus", "data", "tokenizer", "pack"})
"""`--until` values that stop before pretraining (its resources are then not checked)."""


class PreflightError(ValueError):
    """A run asks for what the machine or cluster cannot give."""


def local_resources(gpus: bool = True) -> dict[str, float]:
    """What a local Ray started here would offer: CPUs, GPUs (counted only when asked: importing torch takes
    seconds) and available memory (bytes)."""
    import psutil

    count = 0
    try:
        if gpus:
            import torch

            count = torch.cuda.device_count()
    except Exception:  # no usable torch build: no GPUs as far as training is concerned
        pass
    return {"CPU": float(os.cpu_count() or 1), "GPU": float(count), "memory": float(psutil.virtual_memory().available)}


def ray_resources() -> dict[str, float]:
    """The resources of the running Ray cluster (call after `ray.init`)."""
    import ray

    return {k: float(v) for k, v in ray.cluster_resources().items()}


def model_params(model: Any) -> int:
    """Parameters of the model (the planner's analytic count)."""
    from components.plan.memory import total_params

    return total_params(model)


def worker_cpus(cfg: Any, cluster_cpus: float) -> float:
    """CPUs each Ray Train worker asks for (`components.pretrain.trainer` requests exactly these): the configured
    number, else an equal share of the cluster's CPUs (at most 16), leaving a little for the driver and Ray's actors."""
    if cfg.cpus_per_worker:
        return cfg.cpus_per_worker
    return max(min(int(cluster_cpus // max(cfg.num_workers, 1)), 16), 1) * 0.95


def check_training(cfg: Any, model: Any, resources: dict[str, float], section: str = "pretrain") -> None:
    """Raise PreflightError when `cfg` (num_workers, use_gpu, cpus_per_worker, strategy) cannot run on `resources`."""
    workers, cpus, gpus = cfg.num_workers, resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    if cfg.use_gpu and gpus < max(workers, 1):
        raise PreflightError(f"{section}.use_gpu=true needs {max(workers, 1)} GPU(s), but Ray sees {gpus:g}: set "
                             f"{section}.use_gpu=false, fewer {section}.num_workers, or run on a cluster with GPUs.")
    if workers > 0:
        each = worker_cpus(cfg, cpus)
        if workers * each > cpus + 1e-9:
            raise PreflightError(f"{section}.num_workers={workers} × {each:g} CPUs per worker = {workers * each:g} "
                                 f"CPUs, but Ray has {cpus:g}: lower {section}.num_workers or "
                                 f"{section}.cpus_per_worker (num_workers=0 trains in this process).")
    memory = resources.get("memory")
    if memory and not cfg.use_gpu:
        copies = 1 if getattr(cfg, "strategy", "ddp") == "fsdp" else max(workers, 1)
        need = model_params(model) * TRAIN_BYTES_PER_PARAM * copies
        if need > memory:
            raise PreflightError(f"Training this model needs about {need / 2**30:.1f} GiB of memory "
                                 f"({model_params(model) / 1e6:.0f}M parameters × {TRAIN_BYTES_PER_PARAM} bytes × "
                                 f"{copies} copies), but {memory / 2**30:.1f} GiB is available: use a smaller model, "
                                 "strategy fsdp, or more machines.")


def estimated_mb(stage: str, cfg: Any) -> float:
    """A rough size (MB) of what `stage` writes: checkpoints for pretrain, text and tokens for data stages."""
    if stage == "pretrain" and hasattr(cfg, "model"):
        # the final model plus up to two checkpoints of weights and optimizer state
        return model_params(cfg.model) * (4 + 2 * 12) / 2**20
    sources = getattr(cfg, "sources", cfg)
    chars = getattr(sources, "max_chars_per_source", None)
    names = getattr(sources, "names", None)
    if stage in ("corpus", "data") and chars and names is not None:
        return chars * max(len(names), 1) * 3 / 2**20  # UTF-8 text plus JSON lines and quarantine
    return 0.0


def check_disk(path: Path, need_mb: float, what: str) -> None:
    """Raise PreflightError when the file system of `path` has less free space than `need_mb` (+ a margin)."""
    free = free_mb(Path(path))
    if free < need_mb + MIN_FREE_MB:
        raise PreflightError(f"Not enough disk space for {what}: about {need_mb + MIN_FREE_MB:.0f} MB needed under "
                             f"{path}, {free:.0f} MB free. Free some space or point DSLLM_HOME at a larger disk.")


def check_sources(sources: Any) -> None:
    """Unknown catalog source names fail now (with a did-you-mean), not minutes into the corpus stage."""
    from components.sources.catalog import get_source

    for name in sources.names:
        try:
            get_source(name)
        except ValueError as exc:
            raise PreflightError(f"sources.names: {exc}") from None
