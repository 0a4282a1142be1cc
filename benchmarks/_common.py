"""Shared helpers for the data benchmarks: arguments, machine info, interleaved timing, output."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path


def args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, help="write <out>/<name>.json")
    parser.add_argument("--quick", action="store_true", help="a small run that proves the benchmark works")
    parser.add_argument("--repeats", type=int, default=None)
    return parser.parse_args()


def machine() -> dict:
    cpu = "unknown"
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                   if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "load_avg": os.getloadavg() if hasattr(os, "getloadavg") else None,
            "note": "shared machine: absolute timings are noisy, ratios are the headline"}


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds per call for each function, run A, B, A, B, ... after `warmup` rounds."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return times


def summary(samples: list[float]) -> dict:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "samples": samples}


def emit(name: str, result: dict, rows: list[list], header: list[str], out: Path | None) -> None:
    """Print the JSON object, then a small table; write <out>/<name>.json when asked."""
    print(json.dumps(result, indent=2, ensure_ascii=False))
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)))
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{name}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))


def corpus_texts(chars_per_source: int, names: list[str] | None = None) -> list[tuple[str, str, str]]:
    """(source, bucket, text) of a real corpus built from the pinned archives (see components.data.samples)."""
    import tempfile

    import pyarrow.parquet as pq

    from components.data.samples import SOURCES, build_corpus

    with tempfile.TemporaryDirectory() as tmp:
        root = build_corpus(Path(tmp), chars_per_source, names)
        out = []
        for path in sorted((root / "docs").glob("*.parquet")):
            lang, domain = SOURCES[path.stem][1], SOURCES[path.stem][2]
            bucket = "code" if domain == "code" else lang
            out += [(path.stem, bucket, t) for t in pq.read_table(path).column("text").to_pylist()]
        return out
