"""Packing: mixture → token ids (Ray Data) → flat binary shards, eos after every document.

A document goes to validation when a hash of its id falls under `val_fraction`, and each bucket
(en, zh, code) has at least its lowest-hash document there, so every bucket has held-out text,
chosen before any training. Every remix copy of a document goes the same way, so validation never
shares a document with training, and validation keeps one copy. Training documents are ordered by a hash of (id, copy), which interleaves the buckets,
and their tokens are written in that order into shards of whole `seq_len` sequences.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa

from components.config import PackConfig
from components.data.raykit import ensure_ray, parquet_dataset
from components.data.remix import uniform

VAL_SALT = 7919  # the split hash differs from the remix and shuffle hashes


def dtype_for(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


@functools.lru_cache(maxsize=2)
def _sp(model_file: str):
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=model_file)


def val_ids(files: list[str], val_fraction: float) -> set[str]:
    """Ids held out for validation: hash under `val_fraction`, plus the lowest hash of each bucket."""
    import pyarrow.dataset as pads

    table = pads.dataset(files, format="parquet").to_table(columns=["id", "bucket"])
    chosen, lowest = set(), {}
    for rid, bucket in zip(table.column("id").to_pylist(), table.column("bucket").to_pylist(), strict=True):
        u = uniform(VAL_SALT, rid)
        if u < val_fraction:
            chosen.add(rid)
        if u < lowest.get(bucket, (2.0, ""))[0]:
            lowest[bucket] = (u, rid)
    return chosen | {rid for _, rid in lowest.values()}


def tokenize_batch(batch: pa.Table, model_file: str, val_ref) -> pa.Table:
    """Adds split, order, tokens (ids + eos) and bytes; drops the extra copies of validation docs."""
    import ray

    sp, held_out = _sp(model_file), ray.get(val_ref)
    ids, copies = batch.column("id").to_pylist(), batch.column("copy").to_pylist()
    texts = batch.column("text").to_pylist()
    val = np.array([i in held_out for i in ids], dtype=bool)
    keep = ~val | (np.array(copies) == 0)
    eos = sp.eos_id()
    toks = [t + [eos] for t in sp.encode([t for t, k in zip(texts, keep, strict=True) if k])]
    sel = np.nonzero(keep)[0]
    return pa.table({
        "bucket": batch.column("bucket").take(sel), "split": pa.array(np.where(val[sel], "val", "train")),
        "order": pa.array([uniform(0, f"{ids[i]}#{copies[i]}") for i in sel]),
        "bytes": pa.array([len(texts[i].encode("utf-8")) for i in sel], pa.int64()),
        "tokens": pa.array(toks, pa.list_(pa.int32())), "id": pa.array([ids[i] for i in sel])})


class ShardWriter:
    """Writes a token stream into files of `per_shard` tokens (a multiple of seq_len)."""

    def __init__(self, folder: Path, per_shard: int, dtype: np.dtype):
        self.folder, self.per_shard, self.dtype = folder, per_shard, dtype
        self.shards: list[dict] = []
        self.buffer: list[np.ndarray] = []
        self.buffered = 0
        folder.mkdir(parents=True, exist_ok=True)

    def add(self, tokens: np.ndarray) -> None:
        self.buffer.append(tokens)
        self.buffered += len(tokens)
        while self.buffered >= self.per_shard:
            flat = np.concatenate(self.buffer)
            self._flush(flat[:self.per_shard])
            self.buffer, self.buffered = [flat[self.per_shard:]], len(flat) - self.per_shard

    def close(self, seq_len: int) -> int:
        """Write the last shard (whole sequences only); returns the tail tokens left out."""
        flat = np.concatenate(self.buffer) if self.buffer else np.empty(0, self.dtype)
        whole = len(flat) // seq_len * seq_len
        if whole:
            self._flush(flat[:whole])
        return len(flat) - whole

    def _flush(self, tokens: np.ndarray) -> None:
        name = f"train_{len(self.shards):05d}.bin"
        data = tokens.astype(self.dtype).tobytes()
        (self.folder / name).write_bytes(data)
        self.shards.append({"file": f"train/{name}", "tokens": len(tokens), "sha256": hashlib.sha256(data).hexdigest()})


def pack(cfg: PackConfig, mixture: Path, tokenizer_dir: Path, out: Path) -> dict:
    """Write out/train/*.bin, out/val/<bucket>.bin and out/pack.json; returns pack.json's content."""
    ensure_ray()
    sp = _sp(str((tokenizer_dir / "tokenizer.model").resolve()))
    dtype = dtype_for(sp.get_piece_size())
    files = sorted(str(p) for p in mixture.resolve().glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"No mixture/*.parquet in {mixture.parent}: is it a data stage artifact?")
    import ray

    val_ref = ray.put(val_ids(files, cfg.val_fraction))
    ds = parquet_dataset(files, ["id", "text", "bucket", "copy"]).map_batches(
        tokenize_batch, batch_format="pyarrow",
        fn_kwargs={"model_file": str((tokenizer_dir / "tokenizer.model").resolve()), "val_ref": val_ref})
    train, val = _write(ds.sort("order"), cfg, out, dtype)
    manifest = {"dtype": dtype.name, "seq_len": cfg.seq_len, "vocab_size": sp.get_piece_size(),
                "eos_id": sp.eos_id(), "bos_id": sp.bos_id(), "pad_id": sp.pad_id(), "train": train, "val": val}
    (out / "pack.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def _write(ds, cfg: PackConfig, out: Path, dtype: np.dtype) -> tuple[dict, dict]:
    """One ordered pass: training documents into shards, validation documents into one file per bucket."""
    per_shard = max(cfg.seq_len, cfg.shard_tokens // cfg.seq_len * cfg.seq_len)
    writer, per_bucket, docs = ShardWriter(out / "train", per_shard, dtype), Counter(), 0
    val_parts: dict[str, list[np.ndarray]] = {}
    val_stats: dict[str, Counter] = {}
    for batch in ds.iter_batches(batch_format="pyarrow", batch_size=1024):
        cols = [batch.column(c).to_pylist() for c in ("bucket", "split", "bytes")]
        for bucket, split, nbytes, toks in zip(*cols, batch.column("tokens").to_numpy(False), strict=True):
            toks = np.asarray(toks, dtype=dtype)
            if split == "val":
                val_parts.setdefault(bucket, []).append(toks)
                val_stats.setdefault(bucket, Counter()).update({"bytes": nbytes, "docs": 1})
                continue
            writer.add(toks)
            per_bucket[bucket] += len(toks)
            docs += 1
    tail = writer.close(cfg.seq_len)
    train = {"shards": writer.shards, "tokens": sum(s["tokens"] for s in writer.shards), "docs": docs,
             "tokens_per_bucket": dict(sorted(per_bucket.items())), "dropped_tail_tokens": tail}
    return train, _write_val(val_parts, val_stats, out, dtype)


def _write_val(parts: dict[str, list[np.ndarray]], stats: dict[str, Counter], out: Path, dtype: np.dtype) -> dict:
    (out / "val").mkdir(parents=True, exist_ok=True)
    val = {}
    for bucket in sorted(parts):
        flat = np.concatenate(parts[bucket]).astype(dtype)
        flat.tofile(out / "val" / f"{bucket}.bin")
        val[bucket] = {"file": f"val/{bucket}.bin", "tokens": len(flat), "bytes": stats[bucket]["bytes"],
                       "docs": stats[bucket]["docs"]}
    return val
