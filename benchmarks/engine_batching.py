"""The batching engine alone (no Gradio, no HTTP, no load generator): N concurrent replies against one alone.

`demo_load.py` measures the whole demo, where Gradio and the 20 gradio_client sessions running on the
same machine take much of the CPU; this isolates what continuous batching gives. Same process, same
random `small`-shaped model (demo_load's), rounds interleaved (one reply alone, then N at once, ...):
total tokens/s of N concurrent replies over one reply alone (the headline: >= 8x is issue 15's
target for the demo), and time to first token of the N requests that arrive together (their prompts
are prefilled in one forward). Sampled at temperature 0.7, top-p 0.95, each with its own seed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import emit, machine, summary  # noqa: E402
from benchmarks.demo_load import MESSAGES, SYSTEM, percentile, small_model  # noqa: E402


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the demo's default on 2 cores)")
    parser.add_argument("--dtype", default="auto", help="weights dtype, as the demo's (auto: bf16 where native)")
    parser.add_argument("--keep-freed-memory", action=argparse.BooleanOptionalAction, default=True,
                        dest="keep_freed_memory", help="as the demo's engine: glibc keeps freed blocks (`malloc`)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--quick", action="store_true", help="4 replies, 16 tokens, 1 round")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.max_tokens, args.repeats = 4, 16, 1
    return args


def round_of(engine, prompts: list[list[int]], max_tokens: int) -> dict:
    """Every prompt at once, each from its own thread; tokens/s in total and each one's time to first token."""
    ttft, tokens = [0.0] * len(prompts), [0] * len(prompts)

    def one(i: int) -> None:
        start = time.monotonic()
        for event in engine.stream(prompts[i], max_new_tokens=max_tokens, temperature=0.7, top_p=0.95, seed=i):
            ttft[i] = ttft[i] or time.monotonic() - start
            tokens[i] = event.completion_tokens
    t0 = time.monotonic()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"tokens_per_s": sum(tokens) / (time.monotonic() - t0), "ttft_p95_s": percentile(sorted(ttft), 95)}


def main() -> None:
    import torch

    from components.home import Home
    from components.serving.engine import Engine
    from components.serving.generate import encode
    from components.serving.malloc import keep_freed_memory
    from components.serving.refs import load, resolve

    args = parse()
    torch.set_num_threads(args.threads)
    if args.keep_freed_memory:
        keep_freed_memory()
    with tempfile.TemporaryDirectory(prefix="dsllm-engine-batching-") as tmp:
        home = Home.resolve(Path(tmp) / "home")
        served = load(resolve(str(small_model(Path(tmp) / "model")), home=home), home=home, dtype=args.dtype)
    prompts = [encode(served.tokenizer, [{"role": "system", "content": SYSTEM},
                                         {"role": "user", "content": MESSAGES[i % len(MESSAGES)]}])
               for i in range(args.clients)]
    engine = Engine(served, max_batch=max(32, args.clients))
    round_of(engine, prompts[:2], 8)  # warm-up
    rounds = [(round_of(engine, prompts[:1], args.max_tokens), round_of(engine, prompts, args.max_tokens))
              for _ in range(args.repeats)]
    report(args, rounds)


def report(args: argparse.Namespace, rounds: list[tuple[dict, dict]]) -> None:
    single, load = ([r[k]["tokens_per_s"] for r in rounds] for k in (0, 1))
    ratios = [b / a for a, b in zip(single, load, strict=True)]
    ttft = [r[1]["ttft_p95_s"] for r in rounds]
    result = {"benchmark": "engine_batching", "machine": machine(), "config": vars(args) | {"out": None},
              "single_tokens_per_s": summary(single), "load_tokens_per_s": summary(load),
              "load_ttft_p95_s": summary(ttft), "ratios": {"total_tokens_per_s_load_over_single": summary(ratios)}}
    header = ["replies at once", "tok/s total (median)", "ttft p95 s (median)", "ratio to one (median)"]
    rows = [[1, f"{statistics.median(single):.1f}", "-", "1.0"],
            [args.clients, f"{statistics.median(load):.1f}", f"{statistics.median(ttft):.3f}",
             f"{statistics.median(ratios):.2f}"]]
    emit("engine_batching", result, rows, header, args.out)


if __name__ == "__main__":
    main()
