"""Measured activation memory of one training micro-batch on the CPU (what the planner's model is checked by).

The measurement runs in a fresh child process whose C allocator serves every block of 64 KiB or more
with its own mmap (`MALLOC_MMAP_THRESHOLD_`, which also switches off glibc's adaptive threshold): a freed
tensor goes straight back to the OS, so the resident set follows the live tensors and its high-water
mark (VmHWM, reset through /proc/self/clear_refs) is the true peak of the step. Python-level tracers
(tracemalloc) do not see torch's allocations, and torch's own profiler reports CPU memory per operator,
not a peak; the kernel's counters do. Gradients are allocated by a warm-up step first, so what the
measured step adds is activations and the backward's working memory only.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

MMAP_THRESHOLD = 65536


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise OSError(f"{key} is not in /proc/self/status (Linux only)")


def _measure_all(spec: dict) -> dict[str, dict]:
    """`_measure` for each of `spec["modes"]`, a fresh model each (one process: torch is imported once)."""
    out = {}
    for mode in spec["modes"]:
        out[mode] = _measure({**spec, "mode": mode})
        gc.collect()
    return out


def _measure(spec: dict) -> dict:
    """Bytes held for the backward at the end of the forward, the forward's peak and the step's peak."""
    import torch

    from components.config import ModelConfig
    from components.model import apply_activation_checkpointing, build_model
    from components.pretrain.runtime import CausalLMLoss

    torch.manual_seed(0)
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[spec["precision"]]
    model = ModelConfig(**spec["model"])
    lm = build_model(model, dtype=dtype)
    apply_activation_checkpointing(lm, spec["mode"])
    net = CausalLMLoss(lm)
    batch = torch.randint(0, model.vocab_size, (spec["micro_batch"], spec["seq_len"] + 1))
    net(batch[:, :-1], batch[:, 1:]).backward()  # allocates the gradients (they stay) and lazy state
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = _status("VmRSS")
    loss = net(batch[:, :-1], batch[:, 1:])
    held, forward_peak = _status("VmRSS") - before, _status("VmHWM") - before
    loss.backward()
    return {"held": held, "forward_peak": forward_peak, "step_peak": _status("VmHWM") - before}


def measure(model: dict, micro_batch: int, seq_len: int, modes: tuple[str, ...] = ("none",),
            precision: str = "bf16", threads: int = 1, timeout: float = 600) -> dict[str, dict]:
    """Run `_measure` per checkpointing mode in a child process (see the module docstring): bytes by mode."""
    spec = {"model": model, "micro_batch": micro_batch, "seq_len": seq_len, "modes": list(modes),
            "precision": precision}
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD), "OMP_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]),
                                                      os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-m", "components.plan.measure", json.dumps(spec)], env=env,
                         capture_output=True, text=True, timeout=timeout)
    if out.returncode:
        raise RuntimeError(f"memory measurement failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    print(json.dumps(_measure_all(json.loads(sys.argv[1]))))
