"""`plan(cfg, cluster)`: will this pretraining fit on these devices, with which micro-batch, and how long
will it take; `check_fits(cfg, devices)` is the same check as a preflight that raises.

Memory per device comes from `components.plan.memory`; speed from the datasheet peak (GPUs) or the
home's cached probe (CPUs) at a stated MFU (model FLOPs, 6·N + 12·n_layer·d·l_seq per token, over the
peak: recomputed activations do not count, so checkpointing needs more executed FLOPs for the same MFU).
"""

from __future__ import annotations

from dataclasses import dataclass

from components.config import PipelineConfig
from components.model import flops_per_token, model_flops_per_token
from components.plan.accelerators import Accelerator
from components.plan.memory import Layout, breakdown, recompute_flops, total_params

RESERVE = 0.10
"""Share of device memory kept free for the CUDA context, communication buffers and fragmentation."""
TERMS = ("parameters", "gradients", "optimizer", "fsdp_buffers", "activations")


@dataclass(frozen=True)
class Cluster:
    accelerator: Accelerator
    count: int

    @property
    def native_bf16(self) -> bool:
        """GPUs compute in bf16; a CPU only where it has bf16 matmul ("auto" precision is fp32 elsewhere)."""
        if self.accelerator.name != "cpu":
            return True
        import torch

        from components.pretrain.runtime import native_bf16

        return native_bf16(torch.device("cpu"))

    @property
    def usable_bytes(self) -> float:
        return self.accelerator.memory_bytes * (1 - RESERVE)


class DoesNotFit(ValueError):
    """The run needs more memory per device than the devices have; the message names the largest term."""


def layout(cfg: PipelineConfig, cluster: Cluster, micro_batch: int | None = None, strategy: str | None = None,
           checkpointing: str | None = None) -> Layout:
    bf16 = cfg.pretrain.precision == "bf16" or (cfg.pretrain.precision == "auto" and cluster.native_bf16)
    return Layout(devices=cluster.count, strategy=strategy or cfg.pretrain.strategy,
                  micro_batch=micro_batch or cfg.pretrain.micro_batch, seq_len=cfg.pack.seq_len,
                  checkpointing=checkpointing or cfg.pretrain.activation_checkpointing,
                  compute_bytes=2 if bf16 else 4, device_type="cpu" if cluster.accelerator.name == "cpu" else "cuda")


def largest_micro_batch(cfg: PipelineConfig, cluster: Cluster, base: Layout, divides: bool = False) -> int:
    """The largest micro-batch whose memory fits (0 if none); with `divides`, one that also splits the global
    batch evenly over the devices (whole gradient-accumulation steps)."""
    seqs = cfg.pretrain.batch_tokens // cfg.pack.seq_len
    best = 0
    for micro in range(1, max(seqs // cluster.count, 1) + 1):
        if breakdown(cfg.model, Layout(**{**base.__dict__, "micro_batch": micro}))["total"] > cluster.usable_bytes:
            break
        if not divides or seqs % (micro * cluster.count) == 0:
            best = micro
    return best


def speed(cfg: PipelineConfig, cluster: Cluster, mfu: float, checkpointing: str) -> dict:
    """Tokens/s at `mfu`, the FLOPs executed with recomputation, and time and device-hours to the tokens (those a
    time budget holds, when the config has one)."""
    m, seq = cfg.model, cfg.pack.seq_len
    model_flops = model_flops_per_token(m, seq, total_params(m))
    recompute = recompute_flops(m, seq, checkpointing)
    tokens_per_s = mfu * cluster.accelerator.peak_flops * cluster.count / model_flops
    tokens = cfg.pretrain.total_tokens
    if cfg.pretrain.time_budget_min:
        tokens = min(tokens, int(cfg.pretrain.time_budget_min * 60 * tokens_per_s))
    seconds = tokens / tokens_per_s
    return {"mfu": mfu, "model_flops_per_token": model_flops, "executed_flops_per_token": model_flops + recompute,
            "hardware_utilisation": mfu * (model_flops + recompute) / model_flops, "tokens_per_s": tokens_per_s,
            "seconds": seconds, "device_hours": seconds / 3600 * cluster.count, "tokens": tokens,
            "compute": flops_per_token(m, seq) * tokens}


def plan(cfg: PipelineConfig, cluster: Cluster, mfu: float = 0.4, strategy: str | None = None,
         checkpointing: str | None = None) -> dict:
    """Memory breakdown per device, fit, largest micro-batches, speed and time for `cfg` on `cluster`."""
    if not 0 < mfu <= 1:
        raise ValueError(f"--mfu must be in (0, 1], not {mfu}")
    base = layout(cfg, cluster, strategy=strategy, checkpointing=checkpointing)
    memory = breakdown(cfg.model, base)
    largest = {"fits": largest_micro_batch(cfg, cluster, base),
               "fits_and_divides": largest_micro_batch(cfg, cluster, base, divides=True)}
    return {"layout": base.__dict__, "cluster": {"accelerator": cluster.accelerator.__dict__, "count": cluster.count,
                                                 "usable_bytes": cluster.usable_bytes},
            "params": total_params(cfg.model), "memory": memory, "fits": memory["total"] <= cluster.usable_bytes,
            "largest_term": max(TERMS, key=lambda t: memory[t]), "largest_micro_batch": largest,
            "speed": speed(cfg, cluster, mfu, base.checkpointing)}


def check_fits(cfg: PipelineConfig, devices: Cluster) -> dict:
    """The preflight: raise `DoesNotFit` naming the largest memory term if `cfg` cannot fit on `devices`
    (at its micro-batch, strategy and checkpointing); returns the plan otherwise."""
    result = plan(cfg, devices)
    if not result["fits"]:
        raise DoesNotFit(not_fit_message(result))
    return result


def not_fit_message(result: dict) -> str:
    mem, term, lay = result["memory"], result["largest_term"], result["layout"]
    acc = result["cluster"]["accelerator"]
    return (f"Does not fit: {mem['total'] / 1e9:,.1f} GB per device needed, {result['cluster']['usable_bytes'] / 1e9:,.1f} "
            f"GB usable on {result['cluster']['count']} × {acc['name']}; the largest term is {term} "
            f"({mem[term] / 1e9:,.1f} GB, {lay['strategy']}, micro-batch {lay['micro_batch']}, activation "
            f"checkpointing {lay['checkpointing']}). More devices (fsdp shards the states over them), fsdp instead "
            "of ddp, activation checkpointing or a smaller micro-batch reduce it.")


def check_fits_run(model, pretrain, seq_len: int, devices: Cluster) -> dict:
    """`check_fits` for the pretrain stage's own inputs (model and pretrain configs, the pack's seq_len)."""
    from components.config import PackConfig, TokenizerConfig

    cfg = PipelineConfig(model=model, pretrain=pretrain, pack=PackConfig(seq_len=seq_len),
                         tokenizer=TokenizerConfig(vocab_size=model.vocab_size))
    return check_fits(cfg, devices)


def detect_gpus(count: int) -> Cluster | None:
    """`count` devices like the GPU this process sees, or like the Ray cluster's accelerator type; None when
    neither says which GPU it is (the preflight is then skipped)."""
    from components.plan.accelerators import ACCELERATORS, from_device_name

    try:
        import torch

        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            known = from_device_name(props.name)
            peak = known.peak_flops if known else 0.0
            return Cluster(Accelerator(props.name, peak, float(props.total_memory), "this machine's GPU"), count)
        import ray

        if ray.is_initialized():
            kinds = [k.split(":", 1)[1] for k in ray.cluster_resources() if k.startswith("accelerator_type:")]
            known = [from_device_name(k) for k in kinds]
            if len(known) == 1 and known[0] is not None and known[0].name in ACCELERATORS:
                return Cluster(known[0], count)
    except Exception:  # detection is best effort: no GPU information means no preflight, never a failure
        return None
    return None
