"""Training checkpoints that survive a killed worker or a killed process.

`<root>/step_<n>/` holds the model and optimizer (fp32 master weights and AdamW state), the
scheduler, the training state (step, tokens, data position) and every rank's RNG state. It is
written into `step_<n>.tmp` and renamed when complete, so a crash mid-save leaves the previous
checkpoint as the latest. DDP and local runs save one file from rank 0; FSDP runs save sharded with
torch.distributed.checkpoint (every rank writes its own part). The last `keep` checkpoints stay.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

PREFIX = "step_"


def latest(root: Path) -> Path | None:
    """The newest complete checkpoint under `root`, or None."""
    done = sorted(p for p in root.glob(f"{PREFIX}*") if p.is_dir() and not p.name.endswith(".tmp")
                  and (p / "state.json").is_file())
    return done[-1] if done else None


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(root: Path, step: int, state: dict, rank: int, model_state, optim_state, sharded: bool,
         keep: int = 2) -> Path:
    """Write checkpoint `step` (every rank calls this); returns its directory. A full disk raises an OSError
    naming the checkpoint directory (torch reports it as a bare "file write failed")."""
    from components import faults

    try:
        return _save(root, step, state, rank, model_state, optim_state, sharded, keep)
    except (OSError, RuntimeError) as exc:
        if faults.is_disk_full(exc) or faults.free_mb(root) < 1:
            raise faults.disk_full(exc, root) from exc
        raise


def _save(root: Path, step: int, state: dict, rank: int, model_state, optim_state, sharded: bool,
          keep: int = 2) -> Path:
    final = root / f"{PREFIX}{step:08d}"
    tmp = final.with_name(final.name + ".tmp")
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    _barrier()
    if sharded:
        import torch.distributed.checkpoint as dcp

        dcp.save({"model": model_state(), "optim": optim_state()}, checkpoint_id=str(tmp / "dcp"))
    elif rank == 0:
        torch.save({"model": model_state(), "optim": optim_state()}, tmp / "train.pt")
    torch.save(rng_state(), tmp / f"rng_{rank}.pt")
    _barrier()
    if rank == 0:
        (tmp / "state.json").write_text(json.dumps(state, indent=2))
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        others = sorted(p for p in root.glob(f"{PREFIX}*") if p.is_dir() and p != final)
        for old in others[:max(len(others) - (keep - 1), 0)]:
            shutil.rmtree(old, ignore_errors=True)
    _barrier()
    return final


def load(path: Path, rank: int, sharded: bool, template=None) -> tuple[dict, dict]:
    """(training state, {"model", "optim"}) from checkpoint `path`; restores this rank's RNG.

    Sharded checkpoints load in place into `template()` (the current sharded state dicts).
    """
    state = json.loads((path / "state.json").read_text())
    if sharded:
        import torch.distributed.checkpoint as dcp

        tensors = template()
        dcp.load(tensors, checkpoint_id=str(path / "dcp"))
    else:
        tensors = torch.load(path / "train.pt", map_location="cpu", weights_only=False)
    rng = path / f"rng_{rank}.pt"
    if rng.is_file():  # a resumed run with more workers than saved leaves new ranks to their seed
        set_rng_state(torch.load(rng, weights_only=False))
    return state, tensors


def heartbeat(root: Path, rank: int, step: int) -> None:
    """Record which process is rank `rank` and how far it got (for operators and failure tests)."""
    folder = root / "workers"
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".rank{rank}.json.{os.getpid()}"
    tmp.write_text(json.dumps({"rank": rank, "pid": os.getpid(), "host": socket.gethostname(), "node": _node_id(),
                               "step": step, "time": time.time()}))
    tmp.replace(folder / f"rank{rank}.json")


def _node_id() -> str | None:
    try:
        import ray

        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    except Exception:
        return None
