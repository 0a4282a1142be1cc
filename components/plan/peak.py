"""The matmul peak that MFU is measured against, stable across a run.

GPUs: the datasheet's dense bf16 number (`components.plan.accelerators`). CPUs: a probe (best FLOP/s of
square matmuls in the compute dtype at 1024, 2048 and 4096) measured once per machine and cached in
`<home>/cache/peak.json` with its conditions (CPU model, cores, torch version, threads, dtype, load average
at probe time). A cached peak is reused as is: a run never probes again once one exists, so a busy machine
in the middle of a run cannot lower it. The one exception is a peak measured on a busy machine (load
average above half the cores): the next start on a quiet machine measures it again and replaces it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch

log = logging.getLogger("dsllm.peak")
CACHE_FILE = "peak.json"
SIZES = (1024, 2048, 4096)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def conditions(dtype: torch.dtype, threads: int) -> dict:
    """What a cached peak is valid for."""
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__, "threads": threads,
            "dtype": str(dtype).removeprefix("torch.")}


def is_quiet(load_avg: float, cores: int) -> bool:
    return load_avg <= 0.5 * cores


def cpu_peak(dtype: torch.dtype = torch.bfloat16, threads: int | None = None, cache_dir: Path | None = None,
             probe: Callable[[torch.dtype, tuple[int, ...]], float] | None = None) -> dict:
    """The cached CPU peak for these conditions, probing (and caching) only when none is cached or the cached
    one was measured on a busy machine and this one is quiet. Returns the entry (flops and conditions)."""
    from components.home import Home

    threads = threads or torch.get_num_threads()
    path = Path(cache_dir or Home.resolve().cache) / CACHE_FILE
    entries = _read(path)
    key = json.dumps(conditions(dtype, threads), sort_keys=True)
    load = os.getloadavg()[0]
    quiet = is_quiet(load, os.cpu_count() or 1)
    cached = entries.get(key)
    if cached and (cached["quiet"] or not quiet):
        return cached
    flops = _probe(dtype, threads, probe)
    entry = {**conditions(dtype, threads), "flops": flops, "load_avg": load, "quiet": quiet,
             "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if not quiet:
        log.warning("CPU matmul peak probed on a busy machine (load %.1f on %s cores): %.3g FLOP/s may be low; "
                    "it is replaced at the next quiet start", load, os.cpu_count(), flops)
    entries[key] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(entries, indent=2))
    tmp.replace(path)
    return entry


def _probe(dtype: torch.dtype, threads: int, probe) -> float:
    from components.pretrain.runtime import matmul_peak

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        if probe is not None:
            return probe(dtype, SIZES)
        return matmul_peak(dtype, torch.device("cpu"), SIZES, seconds=0.5)
    finally:
        torch.set_num_threads(before)


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def device_peak(dtype: torch.dtype, device: torch.device, threads: int | None = None) -> tuple[float, str]:
    """(peak FLOP/s of one device, where it came from): the datasheet on a known GPU, else the cached probe."""
    if device.type == "cuda":
        from components.plan.accelerators import from_device_name
        from components.pretrain.runtime import matmul_peak

        name = torch.cuda.get_device_name(device)
        if (acc := from_device_name(name)) is not None:
            return acc.peak_flops, f"datasheet ({acc.name})"
        log.warning("%s is not in the accelerator table: MFU against a probe; set pretrain.peak_flops", name)
        return matmul_peak(torch.bfloat16, device), "probe (GPU not in the table)"
    entry = cpu_peak(dtype, threads)
    return entry["flops"], f"cached CPU probe ({'quiet' if entry['quiet'] else 'busy'} machine)"
