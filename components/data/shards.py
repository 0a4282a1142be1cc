"""Reader of the pack stage's output: memmapped token shards checked against pack.json.

    data = PackedData.open(pack_dir)             # sizes checked; verify=True also checks sha256
    data.train_tokens                            # total training tokens
    for shard in data.train_shards(): ...        # 1-D np.memmap each, eos between documents
    data.sequences()                             # list of (n, seq_len) views, one per shard
    data.val("zh"), data.val_bytes("zh")         # held-out tokens and their UTF-8 bytes (bits per byte)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np


class PackedData:
    def __init__(self, root: Path, manifest: dict):
        self.root, self.manifest = root, manifest
        self.dtype = np.dtype(manifest["dtype"])
        self.seq_len, self.vocab_size = manifest["seq_len"], manifest["vocab_size"]
        self.eos_id, self.bos_id, self.pad_id = manifest["eos_id"], manifest["bos_id"], manifest["pad_id"]

    @classmethod
    def open(cls, root: str | Path, verify: bool = False) -> PackedData:
        """Open a pack directory; every file must exist with the size pack.json gives."""
        root = Path(root)
        if not (root / "pack.json").is_file():
            raise FileNotFoundError(f"{root} has no pack.json: pass the pack stage's artifact directory")
        data = cls(root, json.loads((root / "pack.json").read_text()))
        for entry in [*data.manifest["train"]["shards"], *data.manifest["val"].values()]:
            data._check(entry, verify)
        return data

    def _check(self, entry: dict, verify: bool) -> None:
        path = self.root / entry["file"]
        if not path.is_file() or path.stat().st_size != entry["tokens"] * self.dtype.itemsize:
            raise ValueError(f"{path} is missing or not {entry['tokens']} {self.dtype.name} tokens as pack.json says; "
                             "rebuild the pack artifact")
        if verify and "sha256" in entry and hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]:
            raise ValueError(f"{path} does not match its sha256 in pack.json; rebuild the pack artifact")

    def _map(self, entry: dict) -> np.ndarray:
        return np.memmap(self.root / entry["file"], dtype=self.dtype, mode="r", shape=(entry["tokens"],))

    @property
    def train_tokens(self) -> int:
        return self.manifest["train"]["tokens"]

    def train_shards(self) -> list[np.ndarray]:
        return [self._map(s) for s in self.manifest["train"]["shards"]]

    def sequences(self, seq_len: int | None = None) -> list[np.ndarray]:
        """Each shard as an (n, seq_len) view of whole sequences."""
        n = seq_len or self.seq_len
        return [s[: len(s) // n * n].reshape(-1, n) for s in self.train_shards()]

    @property
    def buckets(self) -> list[str]:
        return sorted(self.manifest["val"])

    def val(self, bucket: str) -> np.ndarray:
        if bucket not in self.manifest["val"]:
            raise ValueError(f"No validation split for {bucket!r}; have {self.buckets}")
        return self._map(self.manifest["val"][bucket])

    def val_bytes(self, bucket: str) -> int:
        """UTF-8 bytes of the validation texts of `bucket` (eos tokens stand for no bytes)."""
        return self.manifest["val"][bucket]["bytes"]
