"""The bars a model must clear to be better than trivial, and the chat-reply rates, measured at registration.

- `unigram_bpb(pack_dir)`: bits per byte of the best model that knows only token frequencies, on the
  validation text of the pack the model was trained and scored on: the empirical entropy of the pooled
  validation tokens (bits per token) × tokens / bytes. A model that is not below it learned nothing beyond
  unigram statistics. (Document-end tokens count as tokens with no bytes, as in the pack's own token stream.)
- `val_bpb(val_loss, pack_val)`: the base model's validation loss (nats per token, from pretraining) as bits
  per byte of the same buckets, so it can be held against the same bar whatever the tokenizer.
- `reply_rates(rows)`: over the chat model's greedy replies to held-out prompts (the DPO stage's
  `report/samples_before_after.json`): the share in the prompt's language and the share that end with the
  end-of-turn token.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np


def _entropy_bits(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def unigram_bpb(pack_dir: Path, meta: dict | None = None) -> dict[str, float]:
    """{"all": pooled unigram bpb, <bucket>: that bucket's own unigram bpb} of a pack's validation split (`meta`:
    its pack.json when the caller has read it already)."""
    meta = meta or json.loads((Path(pack_dir) / "pack.json").read_text())
    val, dtype = meta.get("val") or {}, np.dtype(meta["dtype"])
    pooled, tokens, nbytes, out = None, 0, 0, {}
    for bucket, info in sorted(val.items()):
        ids = np.fromfile(Path(pack_dir) / info["file"], dtype=dtype)
        if not len(ids) or not info.get("bytes"):
            continue
        counts = np.bincount(ids.astype(np.int64))
        out[bucket] = _entropy_bits(counts) * len(ids) / info["bytes"]
        pooled = counts if pooled is None else _add(pooled, counts)
        tokens, nbytes = tokens + len(ids), nbytes + info["bytes"]
    if pooled is not None:
        out["all"] = _entropy_bits(pooled) * tokens / nbytes
    return out


def _add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    size = max(len(a), len(b))
    return np.pad(a, (0, size - len(a))) + np.pad(b, (0, size - len(b)))


def val_bpb(val_loss: dict, pack_val: dict) -> float | None:
    """Validation loss in nats/token per bucket → bits per byte over the buckets with both numbers."""
    bits = nbytes = 0.0
    for bucket, loss in (val_loss or {}).items():
        info = (pack_val or {}).get(bucket) or {}
        if isinstance(loss, int | float) and math.isfinite(loss) and info.get("tokens") and info.get("bytes"):
            bits += loss / math.log(2) * info["tokens"]
            nbytes += info["bytes"]
    return bits / nbytes if nbytes else None


def reply_rates(rows: list[dict], reply: str = "after") -> dict[str, float]:
    """{"language_match", "stop_rate", "replies"} of the replies in `rows` (prompt, <reply>, <reply>_stopped_at_eos).
    An empty reply is in no language."""
    from components.align.report import language

    rows = [r for r in rows if isinstance(r, dict) and isinstance(r.get(reply), str) and isinstance(r.get("prompt"), str)]
    if not rows:
        return {}
    match = sum(bool(r[reply].strip()) and language(r[reply]) == language(r["prompt"]) for r in rows)
    stopped = sum(bool(r.get(f"{reply}_stopped_at_eos")) for r in rows)
    return {"language_match": match / len(rows), "stop_rate": stopped / len(rows), "replies": float(len(rows))}


def chat_replies(stage_dir: Path) -> dict[str, float]:
    """reply_rates of an sft/dpo artifact's held-out samples ({} when it has none)."""
    path = Path(stage_dir) / "report" / "samples_before_after.json"
    if not path.is_file():
        return {}
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return {}
    return reply_rates(rows if isinstance(rows, list) else [])
