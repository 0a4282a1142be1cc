"""Pretraining throughput: dsllm's training step against a plain PyTorch/HF loop, same model and batch.

Measured in one process run, interleaved (ours, plain, ours, plain, ...) after warm-up:
- the machine's square-matmul peak (bf16 and fp32, sizes 1024/2048/4096; best median);
- dsllm's step (`components.pretrain.loop.Run`: fused chunked loss head, master-weight AdamW,
  precision "auto") and the plain baseline (HF `LlamaForCausalLM`, eager, `torch.autocast` bf16,
  `torch.optim.AdamW`), on the same batches of a learnable synthetic corpus, from the same weights;
- where the CPU has no native bf16 (no AMX / AVX512-BF16) the same plain loop in fp32 as well, since
  autocast bf16 is emulated there and an unfair baseline;
- the peak a training run measures MFU against (`components.plan.peak`: the datasheet on GPUs, the CPU probe
  cached once per machine in the home), so the benchmark's MFU and the pipeline's can be compared;
- model FLOP/s = (6·N_params + 12·n_layer·d·l_seq) · tokens / step time (and the FLOPs actually
  executed as matmuls: without the input embedding's 6·V·d, a lookup), as a fraction of the bf16
  matmul peak (the target) and of the best peak of any precision (the honest one where bf16 is
  emulated); the peaks are probed between the rounds, under the same load; tokens/s ratios;
  training loss after the same tokens; peak memory (a short run of each in a child process: max
  RSS on CPU, max allocated on GPU).

Prints one JSON object and a table; `--out DIR` writes DIR/pretrain_throughput.json; `--quick` is a
small run. The machine may be shared: ratios are the headline.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.model import build_model, count_parameters, model_flops_per_token  # noqa: E402
from components.presets import preset  # noqa: E402
from components.pretrain.checks import check_batch  # noqa: E402
from components.pretrain.loop import Run, RunSpec  # noqa: E402
from components.pretrain.runtime import compiles, compute_dtype, cpu_flags, matmul_peak  # noqa: E402

NAME = "pretrain_throughput"
VARIANTS = ("ours", "plain", "plain_fp32")


def machine(device: torch.device) -> dict:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), "unknown") if Path("/proc/cpuinfo").is_file() else "unknown"
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "python": platform.python_version(), "cpu_bf16": sorted(cpu_flags() & {"amx_bf16", "avx512_bf16"}),
            "load_avg": list(os.getloadavg()), "device": str(device),
            "note": "shared machine: absolute timings are noisy, ratios are the headline"}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def write_pack(folder: Path, vocab: int, seq_len: int, tokens: int, seed: int = 0) -> None:
    """A learnable corpus: a seeded sparse Markov chain (4 likely successors per token) as a pack."""
    rng = np.random.default_rng(seed)
    successors = rng.integers(0, vocab, size=(vocab, 4))
    choice = rng.choice(4, size=tokens, p=[0.55, 0.25, 0.15, 0.05])
    ids = np.empty(tokens, dtype=np.uint16)
    ids[0] = 0
    for i in range(1, tokens):
        ids[i] = successors[ids[i - 1], choice[i]]
    (folder / "train").mkdir(parents=True)
    (folder / "val").mkdir()
    ids.tofile(folder / "train" / "train_00000.bin")
    ids[: seq_len * 8 + 1].tofile(folder / "val" / "en.bin")
    manifest = {"dtype": "uint16", "seq_len": seq_len, "vocab_size": vocab, "eos_id": 2, "bos_id": 1, "pad_id": 0,
                "train": {"shards": [{"file": "train/train_00000.bin", "tokens": tokens}], "tokens_per_bucket": {}},
                "val": {"en": {"file": "val/en.bin", "tokens": seq_len * 8 + 1, "bytes": 0}}}
    (folder / "pack.json").write_text(json.dumps(manifest))


def ours(folder: Path, args, device: torch.device) -> Run:
    cfg = preset(args.preset)
    train = cfg.pretrain.model_copy(update={
        "batch_tokens": args.batch * cfg.pack.seq_len, "micro_batch": args.batch, "num_workers": 0,
        "use_gpu": device.type == "cuda", "compile": compile_setting(args, cfg, device), "precision": args.precision,
        "warmup_steps": 2})
    spec = RunSpec(model=cfg.model.model_dump(), pretrain=train.model_dump(), pack_dir=str(folder),
                   ckpt_dir=str(folder / "ckpt"), seq_len=cfg.pack.seq_len, total_steps=10_000,
                   ids={"bos_id": 1, "eos_id": 2, "pad_id": 0})
    return Run(spec)


def compile_setting(args, cfg, device: torch.device) -> bool:
    """--compile on/off, or (auto) what the preset's own run does: `pretrain.compile` for its planned length."""
    if args.compile != "auto":
        return args.compile == "on"
    steps = check_batch(cfg.pretrain, cfg.pack.seq_len)  # the preset's planned steps, as the stage counts them
    return compiles(cfg.pretrain.compile, device, compute_dtype(args.precision, device), steps)


class Plain:
    """The baseline: HF LlamaForCausalLM, eager, autocast bf16 (or plain fp32), torch.optim.AdamW, the same
    batches from the same initial weights."""

    def __init__(self, run: Run, args, device: torch.device, autocast: bool = True):
        self.run, self.device, self.autocast = run, device, autocast
        cfg = preset(args.preset)
        self.lm = build_model(cfg.model, seed=cfg.pretrain.seed, bos_id=1, eos_id=2, pad_id=0).to(device)
        self.opt = torch.optim.AdamW(self.lm.parameters(), lr=cfg.pretrain.lr, betas=(0.9, 0.95), weight_decay=0.1)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, run.sched.lr_lambdas[0])
        self.step_no = 0

    def train_step(self) -> dict:
        started = time.perf_counter()
        batch = torch.from_numpy(self.run.order.batch(self.step_no * self.run.global_seqs, self.run.global_seqs))
        batch = batch.to(self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            loss = self.lm(input_ids=batch[:, :-1], labels=batch[:, :-1].clone()).loss  # HF shifts inside
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.lm.parameters(), 1.0)
        self.opt.step()
        self.opt.zero_grad()
        self.sched.step()
        self.step_no += 1
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return {"loss": float(loss.detach()), "step_s": time.perf_counter() - started}


def timed_step(variant) -> dict:
    result = variant.train_step()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return result


def memory_probe(args, which: str) -> dict:
    """Peak memory of two steps of one variant, in a fresh child process (bytes)."""
    cmd = [sys.executable, __file__, "--probe-memory", which, "--preset", args.preset, "--batch", str(args.batch),
           "--precision", args.precision, "--compile", args.compile] + (["--cpu"] if args.cpu else [])
    cmd += ["--threads", str(args.threads)] if args.threads else []
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _high_water_mark() -> int:
    """Peak resident memory of this process (VmHWM; unlike ru_maxrss it does not carry the parent's over exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def probe(args, device: torch.device) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = preset(args.preset)
        write_pack(Path(tmp) / "pack", cfg.model.vocab_size, cfg.pack.seq_len, args.batch * cfg.pack.seq_len * 4)
        run = ours(Path(tmp) / "pack", args, device)
        variant = run if args.probe_memory == "ours" else Plain(run, args, device, args.probe_memory == "plain")
        if args.probe_memory != "ours":
            run.lm = run.net = run.opt = None  # only the data order stays
        import gc

        gc.collect()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        before = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        for _ in range(2):
            timed_step(variant)
        if device.type == "cuda":
            print(json.dumps({"peak": torch.cuda.max_memory_allocated(), "model_and_setup": None}))
        else:
            print(json.dumps({"peak": _high_water_mark(), "before_steps": before}))


def training_peak(dtype: str, device: torch.device) -> dict:
    """The peak the pretrain stage uses for MFU on this machine (probed and cached once if not yet)."""
    from components.plan.peak import device_peak

    flops, source = device_peak(getattr(torch, dtype), device, torch.get_num_threads())
    return {"flops": flops, "source": source}


def summary(samples: list[float]) -> dict:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "samples": samples}


def variants_for(args, device: torch.device) -> list[str]:
    if args.variants:
        return args.variants.split(",")
    fp32_baseline = not args.no_fp32_baseline and device.type == "cpu" and not cpu_flags() & {"amx_bf16", "avx512_bf16"}
    return ["ours", "plain"] + (["plain_fp32"] if fp32_baseline else [])


def measure(args, device: torch.device, sizes: list[int]) -> dict:
    """Interleaved rounds: every variant's steps, then the matmul probes, so all see the same load."""
    cfg = preset(args.preset)
    seq = cfg.pack.seq_len
    steps = args.warmup + args.repeats * args.steps
    names = variants_for(args, device)
    probes: dict[str, dict[int, list[float]]] = {d: {n: [] for n in sizes} for d in ("bf16", "fp32")}
    slow: dict[str, set[int]] = {"bf16": set(), "fp32": set()}
    with tempfile.TemporaryDirectory() as tmp:
        write_pack(Path(tmp) / "pack", cfg.model.vocab_size, seq, args.batch * seq * (steps + 1) + 1)
        run = ours(Path(tmp) / "pack", args, device)
        variants = {"ours": run, "plain": Plain(run, args, device),
                    "plain_fp32": Plain(run, args, device, autocast=False)}
        variants = {k: variants[k] for k in names}
        losses, times = {k: [] for k in variants}, {k: [] for k in variants}
        for _ in range(args.warmup):
            for name, variant in variants.items():
                losses[name].append(timed_step(variant)["loss"])
        for _ in range(args.repeats):
            for name, variant in variants.items():
                started = time.perf_counter()
                for _ in range(args.steps):
                    losses[name].append(timed_step(variant)["loss"])
                times[name].append((time.perf_counter() - started) / args.steps)
            for dname, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
                for n in sizes:
                    if n in slow[dname]:
                        continue
                    started = time.perf_counter()
                    probes[dname][n].append(matmul_peak(dtype, device, (n,), 0.5))
                    if time.perf_counter() - started > 5:  # emulated: larger sizes would take minutes
                        slow[dname].update(m for m in sizes if m > n)
        params = count_parameters(run.lm)["total"]
        dtype, compiled = str(run.dtype).replace("torch.", ""), run.compiled
    peak = {d: {"by_size": {n: statistics.median(v) for n, v in by.items() if v}, "samples": by}
            for d, by in probes.items()}
    for d in peak:
        peak[d]["peak"] = max(peak[d]["by_size"].values())
    # 6·N counts the input embedding, a lookup that does no matmul: the executed matmul FLOPs omit it
    embedding = 0 if cfg.model.tie_embeddings else 6 * cfg.model.vocab_size * cfg.model.d_model
    return {"times": times, "losses": losses, "params": params, "tokens_per_step": args.batch * seq,
            "matmul_flops_per_token": model_flops_per_token(cfg.model, seq, params) - embedding,
            "flops_per_token": model_flops_per_token(cfg.model, seq, params), "ours_dtype": dtype, "peak": peak,
            "ours_compiled": compiled}


def report(args, device, measured: dict, memory: dict) -> tuple[dict, list[list]]:
    tokens, fpt, peak = measured["tokens_per_step"], measured["flops_per_token"], measured["peak"]
    best = max(peak["bf16"]["peak"], peak["fp32"]["peak"])
    rows, results = [], {}
    for name in measured["times"]:
        step_s = statistics.median(measured["times"][name])
        flops = fpt * tokens / step_s
        last = measured["losses"][name][-3:]
        executed = flops * measured["matmul_flops_per_token"] / fpt
        results[name] = {"step_s": summary(measured["times"][name]), "tokens_per_s": tokens / step_s,
                         "model_flops_per_s": flops, "mfu_vs_bf16_peak": flops / peak["bf16"]["peak"],
                         "mfu_vs_best_peak": flops / best, "matmul_flops_per_s": executed,
                         "mfu_vs_training_peak": flops / measured["training_peak"]["flops"],
                         "matmul_utilisation_vs_best_peak": executed / best, "final_loss": statistics.fmean(last),
                         "loss_curve": measured["losses"][name], "memory_bytes": memory.get(name)}
        rows.append([name, f"{tokens / step_s:,.0f}", f"{flops / 1e9:,.1f}", f"{100 * flops / peak['bf16']['peak']:.1f}%",
                     f"{100 * flops / best:.1f}%", f"{statistics.fmean(last):.3f}",
                     f"{(memory.get(name) or {}).get('peak', 0) / 2 ** 20:,.0f}"])
    def vs(other: str, key: str = "tokens_per_s"):
        return results["ours"][key] / results[other][key] if other in results else None

    ratio, fp32_ratio = vs("plain"), vs("plain_fp32")
    plain = results.get("plain", {})
    result = {"benchmark": NAME, "machine": machine(device), "config": {
        "preset": args.preset, "batch_seqs": args.batch, "seq_len": preset(args.preset).pack.seq_len,
        "tokens_per_step": tokens, "params": measured["params"], "model_flops_per_token": fpt,
        "matmul_flops_per_token": measured["matmul_flops_per_token"],
        "ours_precision": measured["ours_dtype"], "compile": args.compile,
        "ours_compiled": measured["ours_compiled"], "warmup": args.warmup,
        "repeats": args.repeats, "steps_per_repeat": args.steps},
        "matmul_peak_flops": peak, "training_peak": measured["training_peak"], "results": results,
        "headline": {"tokens_per_s_ratio": ratio, "tokens_per_s_ratio_vs_plain_fp32": fp32_ratio,
                     "ours_mfu_vs_bf16_peak": results["ours"]["mfu_vs_bf16_peak"],
                     "ours_mfu_vs_best_peak": results["ours"]["mfu_vs_best_peak"],
                     "ours_mfu_vs_training_peak": results["ours"]["mfu_vs_training_peak"],
                     "ours_matmul_utilisation_vs_best_peak": results["ours"]["matmul_utilisation_vs_best_peak"],
                     "plain_mfu_vs_bf16_peak": plain.get("mfu_vs_bf16_peak"),
                     "loss_ours_minus_plain": results["ours"]["final_loss"] - plain["final_loss"] if plain else None}}
    return result, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--quick", action="store_true", help="small batch, few repeats")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batch", type=int, default=None, help="sequences per step (default 16, quick 4)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--steps", type=int, default=1, help="steps per timed sample")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    parser.add_argument("--compile", choices=["auto", "on", "off"], default="auto",
                        help="torch.compile our decoder layers (auto: as the preset's run, pretrain.compile)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--cpu", action="store_true", help="stay on the CPU even with a GPU")
    parser.add_argument("--no-memory", action="store_true", help="skip the child-process memory probes")
    parser.add_argument("--no-fp32-baseline", action="store_true",
                        help="skip the plain fp32 loop (measured by default where bf16 is not native)")
    parser.add_argument("--variants", help="comma-separated subset of " + ",".join(VARIANTS))
    parser.add_argument("--probe-memory", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.batch = args.batch or (4 if args.quick else 16)
    args.repeats = args.repeats or (2 if args.quick else 5)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    if args.probe_memory:
        return probe(args, device)
    sizes = [4096, 8192] if device.type == "cuda" else ([1024, 2048] if args.quick else [1024, 2048, 4096])
    measured = measure(args, device, sizes)
    peak = measured["peak"]
    measured["training_peak"] = training_peak(measured["ours_dtype"], device)
    memory = {} if args.no_memory else {which: memory_probe(args, which) for which in measured["times"]}
    result, rows = report(args, device, measured, memory)
    print(json.dumps(result, indent=2))
    header = ["loop", "tokens/s", "GFLOP/s", "MFU(bf16 peak)", "MFU(best peak)", "loss", "peak MiB"]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)))
    h = result["headline"]
    if h["tokens_per_s_ratio_vs_plain_fp32"]:
        print(f"ours/plain-fp32 tokens/s: {h['tokens_per_s_ratio_vs_plain_fp32']:.2f}x (bf16 is emulated on this CPU)")
    if h["tokens_per_s_ratio"]:
        print(f"ours/plain tokens/s: {h['tokens_per_s_ratio']:.2f}x · loss ours-plain {h['loss_ours_minus_plain']:+.3f}")
    print(f"ours MFU {100 * h['ours_mfu_vs_bf16_peak']:.1f}% of the bf16 peak ({peak['bf16']['peak'] / 1e9:,.1f} "
          f"GFLOP/s), {100 * h['ours_mfu_vs_best_peak']:.1f}% of the best peak "
          f"({max(peak['bf16']['peak'], peak['fp32']['peak']) / 1e9:,.1f} GFLOP/s; executed matmul FLOPs "
          f"{100 * h['ours_matmul_utilisation_vs_best_peak']:.1f}%) · precision {measured['ours_dtype']}")
    tp = result["training_peak"]
    print(f"ours MFU {100 * h['ours_mfu_vs_training_peak']:.1f}% of the peak training runs use ({tp['flops'] / 1e9:,.1f} "
          f"GFLOP/s, {tp['source']})")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{NAME}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
