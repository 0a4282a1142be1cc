"""`dsllm plan`: memory per device, fit, micro-batch, speed and time of a pretraining run on a cluster,
before any cluster starts (exit 2 when it cannot fit, naming the largest memory term)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from components.presets import PRESETS, ConfigError, load_config

console = Console()
errors = Console(stderr=True)
GB = 1e9


def _cluster(gpus: int | None, gpu: str, cpus: int | None, memory_gb: float | None):
    from components.plan.accelerators import Accelerator, accelerator
    from components.plan.planner import Cluster

    if (gpus is None) == (cpus is None):
        raise ValueError("Describe the cluster with either --gpus N (and --gpu NAME) or --cpus N")
    if gpus is not None:
        acc = accelerator(gpu)
        return Cluster(acc if memory_gb is None else Accelerator(acc.name, acc.peak_flops, memory_gb * GB), gpus)
    import torch

    from components.plan.peak import cpu_peak
    from components.pretrain.runtime import native_bf16

    entry = cpu_peak(torch.bfloat16 if native_bf16(torch.device("cpu")) else torch.float32)
    memory = memory_gb * GB if memory_gb else os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / cpus
    return Cluster(Accelerator("cpu", entry["flops"], memory, f"probe cached in the home ({entry['cpu']})"), cpus)


def plan_command(
    preset: Annotated[str | None, typer.Option("--preset", "-p", help=f"One of: {', '.join(PRESETS)}")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML file of config overrides")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", "-s", help="Override, e.g. pretrain.micro_batch=2")] = None,
    gpus: Annotated[int | None, typer.Option(help="Number of GPUs", min=1)] = None,
    gpu: Annotated[str, typer.Option(help="Accelerator kind (see components/plan/accelerators.py)")] = "h100-80gb",
    cpus: Annotated[int | None, typer.Option(help="Number of CPU workers instead of GPUs", min=1)] = None,
    memory_gb: Annotated[float | None, typer.Option(help="Memory per device in GB (default: the datasheet's; "
                                                    "for --cpus this machine's RAM / workers)")] = None,
    mfu: Annotated[float, typer.Option(help="Model FLOPs utilisation assumed for the speed")] = 0.4,
    strategy: Annotated[str | None, typer.Option(help="ddp or fsdp (default: the config's)")] = None,
    study: Annotated[str | None, typer.Option(help="A scaling study (dsllm://scaling/<key>, its folder or MLflow "
                                                   "run id): print its recommendation for this budget")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON")] = False,
) -> None:
    """Will a pretraining config fit on a cluster, with which micro-batch, and how long to its tokens?"""
    from components.plan.planner import not_fit_message, plan

    try:
        cfg = load_config(preset, config, set_ or [])
        if strategy not in (None, "ddp", "fsdp"):
            raise ValueError(f"--strategy must be ddp or fsdp, not {strategy!r}")
        result = plan(cfg, _cluster(gpus, gpu, cpus, memory_gb), mfu, strategy)
        if study:
            result["recommendation"] = _recommendation(study, cfg, result)
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        errors.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
    else:
        _print(cfg, result)
    if not result["fits"]:
        errors.print(f"[red]{not_fit_message(result)}[/red]")
        raise typer.Exit(2)


def _recommendation(ref: str, cfg, result: dict) -> dict:
    """The study's compute-optimal run for this plan's budget (C = M·D of the config)."""
    from components.config import StudyConfig
    from components.scaling.fit import Law
    from components.scaling.recommend import load, recommend

    laws = load(ref)
    unit = result["layout"]["micro_batch"] * result["cluster"]["count"] * cfg.pack.seq_len
    return recommend(result["speed"]["compute"], {k: Law.from_dict(v) for k, v in laws["laws"].items()},
                     StudyConfig(**laws["study"]), cfg.pack.seq_len, unit)


def _print(cfg, result: dict) -> None:
    lay, mem, acc = result["layout"], result["memory"], result["cluster"]["accelerator"]
    console.print(f"{cfg.preset}: {result['params'] / 1e9:,.2f}B parameters on {result['cluster']['count']} × "
                  f"{acc['name']} ({acc['memory_bytes'] / GB:,.0f} GB, {acc['peak_flops'] / 1e12:,.1f} TFLOP/s bf16 "
                  f"dense, {acc['source']}); {lay['strategy']}, micro-batch {lay['micro_batch']} × {lay['seq_len']}, "
                  f"activation checkpointing {lay['checkpointing']}")
    table = Table("term", "GB per device", title="memory per device")
    for term in ("parameters", "gradients", "optimizer", "fsdp_buffers", "activations"):
        table.add_row(term + (" (largest)" if term == result["largest_term"] else ""), f"{mem[term] / GB:,.2f}")
    table.add_row("total", f"{mem['total'] / GB:,.2f}")
    table.add_row("usable (90%)", f"{result['cluster']['usable_bytes'] / GB:,.2f}")
    console.print(table)
    modes = mem["activations_by_mode"]
    console.print("activations by checkpointing: " + ", ".join(f"{k} {v / GB:,.1f} GB" for k, v in modes.items()))
    largest = result["largest_micro_batch"]
    console.print(f"fits: {'yes' if result['fits'] else 'NO'} · largest micro-batch that fits: {largest['fits']} "
                  f"(that also splits the global batch over the devices: {largest['fits_and_divides']})")
    s = result["speed"]
    console.print(f"at MFU {s['mfu']:.0%}: {s['tokens_per_s']:,.0f} tokens/s (executed FLOPs with recomputation "
                  f"{s['hardware_utilisation']:.0%} of the peak); {s['tokens']:.3g} tokens in "
                  f"{s['seconds'] / 86400:,.1f} days = {s['device_hours']:,.0f} device-hours; C = M·D = "
                  f"{s['compute']:.3g} FLOPs")
    if rec := result.get("recommendation"):
        console.print(f"scaling study for C={rec['budget']:.3g}: {rec['n_layer']} layers × d {rec['d_model']}, "
                      f"{rec['tokens']:,} tokens, batch {rec['batch_tokens']} tokens, lr {rec['lr']}")
