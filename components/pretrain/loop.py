"""The training loop each Ray Train worker runs (and local mode runs in-process).

`Run` holds one worker's model, optimizer, schedule and data order; `train_loop(config)` is the
Ray Train entry point: resume from the newest checkpoint, train to the configured tokens with
gradient accumulation, evaluate per domain, checkpoint, and save the final model. Rank 0 writes
metrics; every rank calls `ray.train.report` at the same steps.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from components.config import ModelConfig, PretrainConfig
from components.model import (
    accounting,
    apply_activation_checkpointing,
    build_model,
    count_parameters,
    model_flops_per_token,
)
from components.pretrain import checkpoint
from components.pretrain.data import Pack, TrainOrder, val_windows
from components.pretrain.optim import MasterAdamW
from components.pretrain.runtime import (
    CausalLMLoss,
    all_mean,
    all_sum,
    compile_blocker,
    compiles,
    compute_dtype,
    fsdp_layer,
    place,
    wrap,
)
from components.pretrain.schedule import make_scheduler

log = logging.getLogger("dsllm.pretrain")


@dataclass
class RunSpec:
    """Everything a worker needs (plain values: it travels to Ray workers)."""

    model: dict
    pretrain: dict
    pack_dir: str
    """The pack artifact: a local directory or an object-storage URI (workers copy it to `cache_dir`)."""
    ckpt_dir: str
    """Step checkpoints: a local directory or an object-storage URI."""
    seq_len: int
    total_steps: int
    ids: dict = field(default_factory=dict)
    mlflow_uri: str | None = None
    mlflow_run_id: str | None = None
    threads: int | None = None
    peak_flops: float | None = None
    """Per-worker matmul peak resolved once by the driver (the cached CPU probe); None = resolve in the worker."""
    peak_source: str = ""
    run_dir: str | None = None
    """Local folder for metrics.jsonl, worker heartbeats and the final model; None = `ckpt_dir`."""
    cache_dir: str | None = None
    """Where workers keep local copies of a remote pack."""

    @property
    def run_root(self) -> Path:
        return Path(self.run_dir or self.ckpt_dir)

    @property
    def model_cfg(self) -> ModelConfig:
        return ModelConfig(**self.model)

    @property
    def cfg(self) -> PretrainConfig:
        return PretrainConfig(**self.pretrain)


class Run:
    """One worker's share of a training run."""

    def __init__(self, spec: RunSpec):
        self.spec, cfg = spec, spec.cfg
        if spec.threads:
            torch.set_num_threads(spec.threads)
        self.where = place(cfg.use_gpu)
        self.dtype = compute_dtype(cfg.precision, self.where.device)
        self.sharded = self.where.sharded(cfg.strategy)
        self.global_seqs = cfg.batch_tokens // spec.seq_len
        self.accum = self.global_seqs // (cfg.micro_batch * self.where.world)
        pack = Pack.open(spec.pack_dir, cache=Path(spec.cache_dir) if spec.cache_dir else None)
        self.order = TrainOrder(pack.train_shards(), spec.seq_len, cfg.seed)
        self.val = {b: val_windows(pack.val(b), spec.seq_len, cfg.val_batches * cfg.micro_batch)
                    for b in pack.buckets}
        self.lm = build_model(spec.model_cfg, seed=cfg.seed, device=self.where.device,
                              dtype=self.dtype, shard=fsdp_layer(self.dtype) if self.sharded else None, **spec.ids)
        self.params = count_parameters(self.lm)
        apply_activation_checkpointing(self.lm, cfg.activation_checkpointing)
        self.compiled = self._compile(cfg.compile, spec.total_steps)
        self.net = wrap(CausalLMLoss(self.lm), self.where, cfg.strategy, self.dtype)
        self.opt = MasterAdamW(list(self.lm.named_parameters()), cfg.lr, cfg.weight_decay)
        self.total_steps = spec.total_steps  # the run's length; a time budget sets it after the warmup
        self.sched = make_scheduler(self.opt.inner, lambda: self.total_steps, cfg.warmup_steps, cfg.schedule,
                                    cfg.min_lr_ratio)
        self.step, self.tokens = 0, 0
        self.flops_per_token = model_flops_per_token(spec.model_cfg, spec.seq_len, self.params["total"])
        self.matmul_flops_per_token = executed_matmul_flops(spec.model_cfg, spec.seq_len, self.params["total"],
                                                            cfg.activation_checkpointing)

    def _compile(self, setting: bool | str, planned_steps: int) -> bool:
        """torch.compile each decoder layer where pretrain.compile asks for it and compiling works here."""
        if not compiles(setting, self.where.device, self.dtype, planned_steps):
            return False
        if blocker := compile_blocker(self.where.device):
            log.warning("pretrain.compile is %s but this worker trains eagerly: %s", setting, blocker)
            return False
        if self.where.rank == 0:
            log.info("torch.compile of each decoder layer (pretrain.compile=%s; the first steps compile)", setting)
        for layer in self.lm.model.layers:
            layer.compile()
        return True

    # ---- one optimizer step ------------------------------------------------------------------
    def _micro_batch(self, micro: int) -> torch.Tensor:
        start = self.step * self.global_seqs + (micro * self.where.world + self.where.rank) * self.spec.cfg.micro_batch
        batch = torch.from_numpy(self.order.batch(start, self.spec.cfg.micro_batch))
        return batch.to(self.where.device, non_blocking=True)

    def _sync_context(self, last: bool):
        if self.sharded:
            self.net.set_requires_gradient_sync(last)
        elif self.where.distributed and not last:
            return self.net.no_sync()
        return contextlib.nullcontext()

    def train_step(self) -> dict:
        """Forward/backward over the global batch, clip, AdamW, schedule; returns step metrics."""
        started = time.perf_counter()
        total = torch.zeros((), device=self.where.device)
        for micro in range(self.accum):
            batch = self._micro_batch(micro)
            with self._sync_context(micro == self.accum - 1):
                loss = self.net(batch[:, :-1], batch[:, 1:]) / self.accum
                loss.backward()
            total += loss.detach().float()
        lr = self.sched.get_last_lr()[0]
        grad_norm = self.opt.step(self.spec.cfg.grad_clip)
        self.opt.zero_grad()
        self.sched.step()
        loss = float(all_mean(total, self.where))
        seconds = time.perf_counter() - started
        self.step += 1
        self.tokens += self.spec.cfg.batch_tokens
        return {"step": self.step, "tokens": self.tokens, "loss": loss, "lr": lr, "grad_norm": grad_norm,
                "step_s": seconds, "tokens_per_s": self.spec.cfg.batch_tokens / seconds}

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Mean next-token loss per validation bucket (every rank takes a share; equal call counts)."""
        mb, out = self.spec.cfg.micro_batch, {}
        sums = torch.zeros(2 * len(self.val), device=self.where.device, dtype=torch.float64)
        for i, windows in enumerate(self.val.values()):
            mine = windows[self.where.rank::self.where.world]
            rounds = -(-len(windows) // (mb * self.where.world)) if len(windows) else 0
            for r in range(rounds):
                part = mine[r * mb:(r + 1) * mb]
                weight = len(part)
                if weight == 0:  # keep collective calls equal across ranks (FSDP)
                    part = windows[:1]
                batch = torch.from_numpy(np.ascontiguousarray(part)).to(self.where.device)
                loss = self.net(batch[:, :-1], batch[:, 1:]).double()
                sums[2 * i] += loss * weight * (batch.shape[1] - 1)
                sums[2 * i + 1] += weight * (batch.shape[1] - 1)
        sums = all_sum(sums, self.where)
        for i, bucket in enumerate(self.val):
            out[bucket] = float(sums[2 * i] / sums[2 * i + 1]) if sums[2 * i + 1] > 0 else float("nan")
        return out

    def set_total_steps(self, steps: int) -> None:
        """Change the run's length (a time budget's decision); the next step's LR follows the new length."""
        self.total_steps = steps
        lrs = [base * factor(self.sched.last_epoch)
               for base, factor in zip(self.sched.base_lrs, self.sched.lr_lambdas, strict=True)]
        for group, lr in zip(self.opt.inner.param_groups, lrs, strict=True):
            group["lr"] = lr
        self.sched._last_lr = lrs

    # ---- state ---------------------------------------------------------------------------------
    def _state_fns(self):
        if not self.sharded:
            return self.opt.master_state, self.opt.inner.state_dict
        from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

        return (lambda: get_model_state_dict(self.lm)), (lambda: get_optimizer_state_dict(self.lm, self.opt.inner))

    def save(self) -> checkpoint.Location:
        model_fn, optim_fn = self._state_fns()
        state = {"step": self.step, "tokens": self.tokens, "position": self.step * self.global_seqs,
                 "global_seqs": self.global_seqs, "scheduler": self.sched.state_dict(), "world": self.where.world}
        return checkpoint.save(self.spec.ckpt_dir, self.step, state, self.where.rank, model_fn, optim_fn,
                               self.sharded)

    def resume(self) -> bool:
        """Continue from the newest checkpoint, if any; True when one was loaded."""
        path = checkpoint.latest(self.spec.ckpt_dir)
        if path is None:
            return False
        model_fn, optim_fn = self._state_fns()
        state, tensors = checkpoint.load(path, self.where.rank, self.sharded,
                                         lambda: {"model": model_fn(), "optim": optim_fn()})
        if self.sharded:
            from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

            set_model_state_dict(self.lm, tensors["model"])
            set_optimizer_state_dict(self.lm, self.opt.inner, tensors["optim"])
        else:
            self.opt.load_master(tensors["model"])
            self.opt.inner.load_state_dict(tensors["optim"])
        self.sched.load_state_dict(state["scheduler"])
        assert state["global_seqs"] == self.global_seqs, "checkpoint from a run with another global batch"
        self.step, self.tokens = state["step"], state["tokens"]
        return True

    def final_weights(self) -> dict[str, torch.Tensor] | None:
        """The full fp32 weights on rank 0 (every rank must call this; others get None)."""
        if self.sharded:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

            full = get_model_state_dict(self.lm, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        else:
            full = {k: v.detach().to("cpu", torch.float32) for k, v in self.opt.master_state().items()}
        return full if self.where.rank == 0 else None

    def describe(self) -> dict:
        """Run-level facts for the tracking store: accounting and layout."""
        acc = accounting(self.spec.model_cfg, self.spec.seq_len, self.total_steps * self.spec.cfg.batch_tokens,
                         self.params)
        return {**{f"accounting.{k}": v for k, v in acc.items()}, "run.precision": str(self.dtype).split(".")[-1],
                "run.world_size": self.where.world, "run.grad_accumulation": self.accum,
                "run.total_steps": self.total_steps, "run.device": self.where.device.type, "run.compiled": self.compiled,
                "run.threads": torch.get_num_threads(), "run.omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "")}

    def peak_flops(self) -> tuple[float, str]:
        """(matmul peak of all workers together, its source): the config's, the driver's (a cached CPU probe), or
        the datasheet's on a known GPU; never a probe under this run's own load (see components.plan.peak)."""
        if self.spec.cfg.peak_flops:
            return self.spec.cfg.peak_flops * self.where.world, "config"
        if self.spec.peak_flops:
            return self.spec.peak_flops * self.where.world, self.spec.peak_source
        from components.plan.peak import device_peak

        peak, source = device_peak(self.dtype, self.where.device, torch.get_num_threads())
        return peak * self.where.world, source


def executed_matmul_flops(model: ModelConfig, seq_len: int, params: int, checkpointing: str) -> int:
    """Matmul FLOPs a step executes per token: the MFU numerator without the input embedding (a lookup, no
    matmul) and with the forward passes that activation checkpointing runs again."""
    from components.plan.memory import recompute_flops

    embedding = 0 if model.tie_embeddings else 6 * model.vocab_size * model.d_model
    return model_flops_per_token(model, seq_len, params) - embedding + recompute_flops(model, seq_len, checkpointing)
