"""Sandbox throughput: HumanEval canonical solutions through the sandbox against a bare subprocess
(`python -I -S program.py`, no isolation, no limits) with the same 2-worker pool, interleaved.

The headline is the isolation overhead (sandbox / bare time) and the time for all 164 problems,
the acceptance bar being 60 s on 2 cores.

    python benchmarks/eval_sandbox.py [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from components.evaluate import data
from components.evaluate.sandbox import Sandbox, isolation


def programs(limit: int | None) -> list[str]:
    rows = data.humaneval()[:limit]
    return [f"{r['prompt']}{r['canonical_solution']}\n\n{r['test']}\n\ncheck({r['entry_point']})\n" for r in rows]


def bare(programs_: list[str], workers: int) -> list[int]:
    def one(program: str) -> int:
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
            fh.write(program)
        try:
            return subprocess.run([isolation()["python"] or sys.executable, "-I", "-S", fh.name],
                                  capture_output=True, timeout=60).returncode
        finally:
            os.unlink(fh.name)
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, programs_))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    progs = programs(24 if args.quick else None)
    repeats, box = (2 if args.quick else 3), Sandbox(workers=2)
    times: dict[str, list[float]] = {"sandbox": [], "bare": []}
    for _ in range(repeats):
        for name, fn in (("sandbox", lambda: [r.status for r in box.run_many(progs)]),
                         ("bare", lambda: bare(progs, 2))):
            start = time.perf_counter()
            outcome = fn()
            times[name].append(time.perf_counter() - start)
            assert all(o in ("pass", 0) for o in outcome), outcome
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "benchmark": "eval_sandbox", "machine": {"cores": os.cpu_count(), "load_avg": os.getloadavg(),
                                                 "isolation": {k: v for k, v in isolation().items() if k != "prefix"},
                                                 "note": "shared machine: timings are noisy, ratios are the headline"},
        "config": {"problems": len(progs), "workers": 2, "repeats": repeats},
        "seconds": {k: {"median": med[k], "min": min(v), "max": max(v), "samples": v} for k, v in times.items()},
        "overhead_ratio": med["sandbox"] / med["bare"],
        "projected_164_s": {k: v * 164 / len(progs) for k, v in med.items()},
    }
    print(json.dumps(result, indent=2))
    print(f"\n{'':9s}{'s/problem':>10s}{'164 problems (s)':>18s}")
    for k in ("sandbox", "bare"):
        print(f"{k:9s}{med[k] / len(progs):10.3f}{result['projected_164_s'][k]:18.1f}")
    print(f"isolation overhead x{result['overhead_ratio']:.2f}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "eval_sandbox.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
