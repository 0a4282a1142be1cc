"""Bits per byte and perplexity of a model on the held-out validation shards of a `pack` artifact.

`pack.json` lists `val: {bucket: {file, tokens, bytes}}` (one bucket per domain), the token
`dtype` and `seq_len`; each `val/<bucket>.bin` is a flat token array. Windows of the model's
length overlap by one token, so every token but the first of a bucket is predicted exactly once.
bpb = total negative log-likelihood in nats / (ln 2 · bytes); with `limit` windows per bucket the
bytes are taken in proportion to the tokens scored.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from components.evaluate.lm import HFLM


def read_pack(pack_dir: Path) -> dict:
    path = Path(pack_dir) / "pack.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: bits-per-byte needs a pack artifact (dsllm://pack/<key> or its "
                                "directory) with pack.json and val/<bucket>.bin")
    meta = json.loads(path.read_text())
    if not meta.get("val"):
        raise ValueError(f"{path} lists no validation buckets ('val'); re-run the pack stage with val_fraction > 0")
    return meta


def windows(tokens: np.ndarray, length: int, limit: int | None) -> list[np.ndarray]:
    starts = list(range(0, max(len(tokens) - 1, 0), length - 1))[:limit]
    return [np.asarray(tokens[s:s + length], dtype=np.int64) for s in starts]


@torch.inference_mode()
def window_nll(lm: HFLM, batch: list[np.ndarray]) -> tuple[float, int]:
    """Summed NLL (nats) of tokens 1.. of each window, and how many tokens that covers."""
    width = max(len(w) for w in batch)
    ids = torch.full((len(batch), width), lm.pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for j, w in enumerate(batch):
        ids[j, :len(w)] = torch.from_numpy(w)
        mask[j, :len(w)] = 1
    hidden = lm._decoder(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device)).last_hidden_state
    total, count = 0.0, 0
    for j, w in enumerate(batch):  # one row at a time keeps the vocabulary-sized logits small
        logits = lm._head(hidden[j, :len(w) - 1]).float()
        total += float(torch.nn.functional.cross_entropy(logits, ids[j, 1:len(w)].to(lm.device), reduction="sum"))
        count += len(w) - 1
    return total, count


def bucket_nll(lm: HFLM, tokens: np.ndarray, limit: int | None) -> tuple[float, int]:
    vocab = lm._head.out_features if hasattr(lm._head, "out_features") else None
    if vocab is not None and len(tokens) and int(tokens.max()) >= vocab:
        raise ValueError(f"The pack holds token id {int(tokens.max())} but the model's vocabulary has {vocab}: "
                         "evaluate bits-per-byte with the tokenizer the pack was made with")
    chunks = windows(tokens, lm.max_length, limit)
    nll, count = 0.0, 0
    for start in range(0, len(chunks), lm.batch_size):
        a, b = window_nll(lm, chunks[start:start + lm.batch_size])
        nll, count = nll + a, count + b
    return nll, count


def run_bpb(lm: HFLM, pack_dir: Path, limit: int | None = None) -> tuple[dict, list[dict]]:
    """{bpb, bpb_<bucket>, ppl_<bucket>} and one record per bucket."""
    meta = read_pack(pack_dir)
    metrics, records, total_nll, total_bytes = {}, [], 0.0, 0.0
    for bucket, info in sorted(meta["val"].items()):
        path = Path(pack_dir) / info["file"]
        tokens = np.memmap(path, dtype=np.dtype(meta["dtype"]), mode="r")
        nll, count = bucket_nll(lm, tokens, limit)
        used_bytes = info["bytes"] * count / max(len(tokens) - 1, 1)
        bpb = nll / (math.log(2) * used_bytes) if used_bytes else float("nan")
        metrics[f"bpb_{bucket}"], metrics[f"ppl_{bucket}"] = bpb, math.exp(nll / count) if count else float("nan")
        records.append({"id": bucket, "tokens": count, "bytes": used_bytes, "nll": nll, "bpb": bpb})
        total_nll, total_bytes = total_nll + nll, total_bytes + used_bytes
    metrics["bpb"] = total_nll / (math.log(2) * total_bytes) if total_bytes else float("nan")
    metrics["n"] = sum(r["tokens"] for r in records)
    return metrics, records
