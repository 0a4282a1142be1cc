"""Training checkpoints that survive a killed worker or a killed process.

`<root>/step_<n>/` holds the model and optimizer (fp32 master weights and AdamW state), the
scheduler, the training state (step, tokens, data position) and every rank's RNG state. It is
written into `step_<n>.tmp` and renamed when complete, so a crash mid-save leaves the previous
checkpoint as the latest. DDP and local runs save one file from rank 0; FSDP runs save sharded with
torch.distributed.checkpoint (every rank writes its own part). The last `keep` checkpoints stay.

`root` may be an object-storage URI (`s3://...`, components.storage): object stores have no rename,
so there every file goes straight into `step_<n>/` and `state.json` is written last as the commit
mark; a step without it is not a checkpoint. DCP writes through fsspec (`FsspecWriter`).
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

from components import storage

PREFIX = "step_"
STATE = "state.json"
Location = Path | str
"""A local directory or an object-storage URI."""


def latest(root: Location) -> Location | None:
    """The newest complete checkpoint under `root`, or None."""
    if storage.is_remote(root):
        names = [n for n in storage.listdir(str(root)) if n.startswith(PREFIX)]
        done = [n for n in names if storage.exists(storage.join(str(root), n, STATE))]
        return storage.join(str(root), done[-1]) if done else None
    root = Path(root)
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


def _open(folder: Location, name: str, mode: str):
    if storage.is_remote(folder):
        fs, path = storage.filesystem(str(folder))
        return fs.open(f"{path}/{name}", mode)
    return (Path(folder) / name).open(mode)


def _dcp_io(folder: Location, write: bool) -> dict:
    """checkpoint_id of the DCP part of `folder`, or for object storage the fsspec writer/reader (with the
    storage options) alone: DCP re-opens the filesystem of a checkpoint_id without them (`reset`)."""
    if not storage.is_remote(folder):
        return {"checkpoint_id": str(Path(folder) / "dcp")}
    from torch.distributed.checkpoint._fsspec_filesystem import FsspecReader, FsspecWriter

    uri = storage.join(str(folder), "dcp")
    opts = storage.options(uri)
    if write:
        return {"storage_writer": FsspecWriter(uri, sync_files=False, **opts)}
    return {"storage_reader": FsspecReader(uri, **opts)}


def _write_tensors(folder: Location, rank: int, model_state, optim_state, sharded: bool) -> None:
    if sharded:
        import torch.distributed.checkpoint as dcp

        dcp.save({"model": model_state(), "optim": optim_state()}, **_dcp_io(folder, write=True))
    elif rank == 0:
        with _open(folder, "train.pt", "wb") as fh:
            torch.save({"model": model_state(), "optim": optim_state()}, fh)
    with _open(folder, f"rng_{rank}.pt", "wb") as fh:
        torch.save(rng_state(), fh)


def save(root: Location, step: int, state: dict, rank: int, model_state, optim_state, sharded: bool,
         keep: int = 2) -> Location:
    """Write checkpoint `step` (every rank calls this); returns its directory (or URI). A full disk raises an OSError
    naming the checkpoint directory (torch reports it as a bare "file write failed")."""
    from components import faults

    if storage.is_remote(root):
        return _save_remote(str(root), step, state, rank, model_state, optim_state, sharded, keep)
    try:
        return _save(Path(root), step, state, rank, model_state, optim_state, sharded, keep)
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
    _write_tensors(tmp, rank, model_state, optim_state, sharded)
    _barrier()
    if rank == 0:
        (tmp / STATE).write_text(json.dumps(state, indent=2))
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        others = sorted(p for p in root.glob(f"{PREFIX}*") if p.is_dir() and p != final)
        for old in others[:max(len(others) - (keep - 1), 0)]:
            shutil.rmtree(old, ignore_errors=True)
    _barrier()
    return final


def _save_remote(root: str, step: int, state: dict, rank: int, model_state, optim_state, sharded: bool,
                 keep: int) -> str:
    final = storage.join(root, f"{PREFIX}{step:08d}")
    if rank == 0:
        storage.remove(final)  # what a killed save left (no state.json, so never read as a checkpoint)
    _barrier()
    _write_tensors(final, rank, model_state, optim_state, sharded)
    _barrier()
    if rank == 0:
        storage.write_text(storage.join(final, STATE), json.dumps(state, indent=2))  # the commit mark, last
        others = [n for n in storage.listdir(root) if n.startswith(PREFIX) and storage.join(root, n) != final]
        for old in others[:max(len(others) - (keep - 1), 0)]:
            storage.remove(storage.join(root, old))
    _barrier()
    return final


def load(path: Location, rank: int, sharded: bool, template=None) -> tuple[dict, dict]:
    """(training state, {"model", "optim"}) from checkpoint `path`; restores this rank's RNG.

    Sharded checkpoints load in place into `template()` (the current sharded state dicts).
    """
    with _open(path, STATE, "r") as fh:
        state = json.load(fh)
    if sharded:
        import torch.distributed.checkpoint as dcp

        tensors = template()
        dcp.load(tensors, **_dcp_io(path, write=False))
    else:
        with _open(path, "train.pt", "rb") as fh:
            tensors = torch.load(fh, map_location="cpu", weights_only=False)
    rng = f"rng_{rank}.pt"
    if storage.exists(storage.join(str(path), rng)) if storage.is_remote(path) else (Path(path) / rng).is_file():
        with _open(path, rng, "rb") as fh:  # a resumed run with more workers than saved leaves new ranks to their seed
            set_rng_state(torch.load(fh, weights_only=False))
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
