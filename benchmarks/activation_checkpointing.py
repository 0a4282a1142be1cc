"""Activation checkpointing: equal loss, lower peak memory, and what the recomputation costs in time.

In one process run, the project's training step (`components.pretrain.loop.Run`) with
`pretrain.activation_checkpointing` none, selective and full, from the same weights on the same batches,
interleaved step by step (none, selective, full, none, ...): the loss of every step (headline: the largest
difference from none) and the step time (median, min-max; ratio to none). Peak memory of one micro-batch's
forward and backward per mode is measured in a child process by the kernel's high-water mark with every
tensor in its own mapping (`components.plan.measure`), beside the planner's prediction
(`components.plan.memory`). Prints one JSON object and a table; `--out DIR` writes DIR/activation_checkpointing.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import emit, machine, summary  # noqa: E402
from benchmarks.pretrain_throughput import write_pack  # noqa: E402
from components.plan.measure import measure  # noqa: E402
from components.plan.memory import Layout, activations  # noqa: E402
from components.presets import preset  # noqa: E402
from components.pretrain.loop import Run, RunSpec  # noqa: E402

NAME = "activation_checkpointing"
MODES = ("none", "selective", "full")


def runs(folder: Path, cfg, batch: int) -> dict[str, Run]:
    out = {}
    for mode in MODES:
        train = cfg.pretrain.model_copy(update={
            "batch_tokens": batch * cfg.pack.seq_len, "micro_batch": batch, "num_workers": 0, "use_gpu": False,
            "warmup_steps": 2, "activation_checkpointing": mode, "peak_flops": 1.0})
        spec = RunSpec(model=cfg.model.model_dump(), pretrain=train.model_dump(), pack_dir=str(folder),
                       ckpt_dir=str(folder / "ckpt"), seq_len=cfg.pack.seq_len, total_steps=10_000,
                       ids={"bos_id": 1, "eos_id": 2, "pad_id": 0})
        out[mode] = Run(spec)
    return out


def train(args, cfg) -> tuple[dict, dict, str]:
    losses, times = {m: [] for m in MODES}, {m: [] for m in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        seq = cfg.pack.seq_len
        write_pack(Path(tmp) / "pack", cfg.model.vocab_size, seq, args.batch * seq * (args.steps + 2) + 1)
        variants = runs(Path(tmp) / "pack", cfg, args.batch)
        dtype = str(variants["none"].dtype).removeprefix("torch.")
        for step in range(args.steps):
            for mode, run in variants.items():
                started = time.perf_counter()
                losses[mode].append(run.train_step()["loss"])
                if step >= args.warmup:
                    times[mode].append(time.perf_counter() - started)
    return losses, times, dtype


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--quick", action="store_true", help="the tiny preset, few steps")
    parser.add_argument("--preset", default=None, help="model and sequence length of this preset (default small)")
    parser.add_argument("--batch", type=int, default=None, help="sequences per step (default 8, quick 4)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per mode (default 6, quick 4)")
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    args.preset = args.preset or ("tiny" if args.quick else "small")
    args.batch, args.steps = args.batch or (4 if args.quick else 8), args.steps or (4 if args.quick else 6)
    cfg = preset(args.preset)
    losses, times, dtype = train(args, cfg)
    bytes_per_value = 2 if dtype == "bfloat16" else 4
    memory = measure(cfg.model.model_dump(), args.batch, cfg.pack.seq_len, MODES, "bf16" if bytes_per_value == 2 else
                     "fp32", threads=torch.get_num_threads())
    results, rows = {}, []
    for mode in MODES:
        predicted = activations(cfg.model, Layout(1, "ddp", args.batch, cfg.pack.seq_len, mode, bytes_per_value))
        diff = max(abs(a - b) for a, b in zip(losses[mode], losses["none"], strict=True))
        step_s = statistics.median(times[mode])
        results[mode] = {"losses": losses[mode], "max_abs_loss_diff_vs_none": diff, "step_s": summary(times[mode]),
                         "time_ratio_vs_none": step_s / statistics.median(times["none"]),
                         "peak_bytes_measured": memory[mode]["step_peak"], "held_bytes_measured": memory[mode]["held"],
                         "peak_bytes_predicted": predicted["peak"],
                         "memory_ratio_vs_none": memory[mode]["step_peak"] / memory["none"]["step_peak"]}
        r = results[mode]
        rows.append([mode, f"{losses[mode][-1]:.5f}", f"{diff:.1e}", f"{r['peak_bytes_measured'] / 2**20:,.1f}",
                     f"{r['peak_bytes_predicted'] / 2**20:,.1f}", f"{r['memory_ratio_vs_none']:.2f}",
                     f"{step_s:.3f}", f"{r['time_ratio_vs_none']:.2f}"])
    result = {"benchmark": NAME, "machine": {**machine(), "torch": torch.__version__, "threads": torch.get_num_threads()},
              "config": {"preset": args.preset, "batch_seqs": args.batch, "seq_len": cfg.pack.seq_len,
                         "steps": args.steps, "warmup": args.warmup, "precision": dtype,
                         "model": cfg.model.model_dump()},
              "results": results,
              "headline": {"max_abs_loss_diff": max(results[m]["max_abs_loss_diff_vs_none"] for m in MODES),
                           **{f"memory_ratio_{m}": results[m]["memory_ratio_vs_none"] for m in MODES[1:]},
                           **{f"time_ratio_{m}": results[m]["time_ratio_vs_none"] for m in MODES[1:]}}}
    emit(NAME, result, rows, ["mode", "last loss", "max |Δloss|", "peak MiB", "predicted MiB", "mem/none",
                              "step s", "time/none"], args.out)


if __name__ == "__main__":
    main()
