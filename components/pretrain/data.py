"""The pack artifact as training data: checked shards and a seeded, resumable order of sequences.

`Pack.open(dir, verify=True)` checks pack.json against the files (sizes, and sha256 when asked) and
raises a clear error on any mismatch. A pack on object storage (an s3:// URI) is copied once into a
local cache and memmapped from there (random access to windows needs a file); the first copy is
checked against every sha256 in pack.json. `TrainOrder` cuts every shard into windows of seq_len + 1
tokens (inputs and the next-token targets; stride seq_len) and visits them in a seeded order that
is a pure function of (seed, position): a run resumed from a checkpoint at step s reads exactly the
sequences an uninterrupted run would, for any number of workers. The order shuffles blocks of
windows and the windows inside each block, so memory stays O(block) at any corpus size; a new
epoch (when the run wants more tokens than the pack has) reshuffles.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from components import storage
from components.sources.fetch import sha256_of

BLOCK = 1 << 20  # windows per shuffle block
_REQUIRED = ("dtype", "seq_len", "vocab_size", "eos_id", "train", "val")


class Pack:
    """A pack artifact directory: pack.json, train/*.bin and val/<bucket>.bin (flat token arrays)."""

    def __init__(self, root: Path, manifest: dict):
        self.root, self.manifest = root, manifest
        self.dtype = np.dtype(manifest["dtype"])
        self.seq_len, self.vocab_size = int(manifest["seq_len"]), int(manifest["vocab_size"])
        self.eos_id, self.bos_id, self.pad_id = manifest["eos_id"], manifest.get("bos_id"), manifest.get("pad_id")

    @classmethod
    def open(cls, root: str | Path, verify: bool = False, cache: Path | None = None) -> Pack:
        """Open and check a pack; `verify` also compares every train shard's sha256 with pack.json. A remote
        pack is copied into `cache` (default: the home's cache) first."""
        if storage.is_remote(root):
            root, fresh = _local_copy(str(root), cache)
            verify = verify or fresh
        root = Path(root).resolve()
        if not (root / "pack.json").is_file():
            raise FileNotFoundError(f"{root} has no pack.json: pass the pack stage's artifact directory")
        manifest = json.loads((root / "pack.json").read_text())
        missing = [k for k in _REQUIRED if k not in manifest]
        if missing:
            raise ValueError(f"{root / 'pack.json'} lacks {missing}: rebuild the pack artifact")
        if manifest["dtype"] not in ("uint16", "uint32"):
            raise ValueError(f"pack.json dtype {manifest['dtype']!r} is not uint16 or uint32: rebuild the pack")
        pack = cls(root, manifest)
        if not manifest["train"].get("shards"):
            raise ValueError(f"{root} has no training shards: the pack stage produced no training tokens")
        for entry in manifest["train"]["shards"]:
            pack._check(entry, verify)
        for entry in manifest["val"].values():
            pack._check(entry, False)
        return pack

    def _check(self, entry: dict, verify: bool) -> None:
        path = self.root / entry["file"]
        size = entry["tokens"] * self.dtype.itemsize
        if not path.is_file() or path.stat().st_size != size:
            found = path.stat().st_size if path.is_file() else "no file"
            raise ValueError(f"Shard {path} does not match pack.json ({entry['tokens']} {self.dtype.name} tokens = "
                             f"{size} bytes, found {found}): the pack is damaged; rebuild the pack artifact")
        if verify and "sha256" in entry and sha256_of(path) != entry["sha256"]:
            raise ValueError(f"Shard {path} does not match its sha256 in pack.json: the pack is damaged or was "
                             "modified; rebuild the pack artifact")

    def _map(self, entry: dict) -> np.ndarray:
        return np.memmap(self.root / entry["file"], dtype=self.dtype, mode="r", shape=(entry["tokens"],))

    def train_shards(self) -> list[np.ndarray]:
        return [self._map(s) for s in self.manifest["train"]["shards"]]

    @property
    def train_tokens(self) -> int:
        return sum(s["tokens"] for s in self.manifest["train"]["shards"])

    @property
    def buckets(self) -> list[str]:
        return sorted(self.manifest["val"])

    def val(self, bucket: str) -> np.ndarray:
        return self._map(self.manifest["val"][bucket])


def _local_copy(uri: str, cache: Path | None) -> tuple[Path, bool]:
    """(local copy of the remote pack, whether it was downloaded just now)."""
    if cache is None:
        from components.home import Home

        cache = Home.resolve().cache
    there = storage.cache_path(uri, cache) / "pack.json"
    fresh = not there.is_file()
    return storage.materialize(uri, cache, "pack.json"), fresh


class TrainOrder:
    """Windows of `seq_len + 1` tokens from all shards, in a seeded order addressed by position."""

    def __init__(self, shards: list[np.ndarray], seq_len: int, seed: int):
        self.shards, self.seq_len, self.seed = shards, seq_len, seed
        counts = np.array([max(len(s) - 1, 0) // seq_len for s in shards], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(counts)])
        self.size = int(self.offsets[-1])
        if self.size == 0:
            raise ValueError(f"The training shards hold no sequence of {seq_len + 1} tokens: pack more data "
                             "or use a shorter sequence length")
        self._cache: dict[tuple[int, int], np.ndarray] = {}

    def _block_order(self, epoch: int) -> np.ndarray:
        key = (epoch, -1)
        if key not in self._cache:
            full = self.size // BLOCK
            order = np.random.default_rng([self.seed, epoch]).permutation(full)
            # the partial block (if any) stays last so positions map one-to-one onto windows
            self._cache[key] = np.append(order, full) if self.size % BLOCK else order
        return self._cache[key]

    def _inner(self, epoch: int, block: int) -> np.ndarray:
        key = (epoch, block)
        if key not in self._cache:
            size = min(BLOCK, self.size - block * BLOCK)
            if len(self._cache) > 4:
                self._cache = {k: v for k, v in self._cache.items() if k[1] == -1}
            self._cache[key] = np.random.default_rng([self.seed, epoch, block + 1]).permutation(size)
        return self._cache[key]

    def window(self, position: int) -> int:
        """The window id read at global position `position` (epochs repeat with a new order)."""
        epoch, pos = divmod(position, self.size)
        block = int(self._block_order(epoch)[pos // BLOCK])
        return block * BLOCK + int(self._inner(epoch, block)[pos % BLOCK])

    def batch(self, start: int, count: int) -> np.ndarray:
        """Sequences at positions [start, start+count) as an int64 array [count, seq_len + 1]."""
        out = np.empty((count, self.seq_len + 1), dtype=np.int64)
        for row, position in enumerate(range(start, start + count)):
            win = self.window(position)
            shard = int(np.searchsorted(self.offsets, win, side="right") - 1)
            begin = (win - int(self.offsets[shard])) * self.seq_len
            out[row] = self.shards[shard][begin:begin + self.seq_len + 1]
        return out


def val_windows(tokens: np.ndarray, seq_len: int, limit: int) -> np.ndarray:
    """Up to `limit` consecutive windows of `seq_len + 1` tokens (stride seq_len) from a val split."""
    length = min(seq_len, len(tokens) - 1)
    if length < 1:
        return np.empty((0, 2), dtype=np.int64)
    count = min(limit, max((len(tokens) - 1) // length, 0))
    return np.stack([np.asarray(tokens[i * length:i * length + length + 1], dtype=np.int64)
                     for i in range(count)])
