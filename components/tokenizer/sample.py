"""Deterministic samples of the mixture with Ray Data: one to train on, one held out to measure.

Every mixture row (remix copies included, so the sample follows the target mixture) gets a
reproducible number in [0, 1) from a hash of (seed, id, copy); rows under the training rate form
the training sample, rows in a thin band above it the held-out sample for compression figures.
The rates come from the mixture's total characters, so about `sample_chars` are drawn at any scale.
When the mixture is smaller than the sample, all of it trains and nothing is held out (compression
is then measured on training text, as the report says).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from components.data.raykit import ensure_ray, parquet_dataset
from components.data.remix import uniform

HELDOUT_CHARS = 300_000


def _pick(batch: dict[str, np.ndarray], seed: int, upto: float) -> dict[str, np.ndarray]:
    keys = [f"{i}#{c}" for i, c in zip(batch["id"], batch["copy"], strict=True)]
    u = np.array([uniform(seed, k) for k in keys])
    sel = u < upto
    return {"text": batch["text"][sel], "bucket": batch["bucket"][sel], "u": u[sel]}


def total_chars(files: list[str]) -> int:
    """Characters in the mixture: from the data stage's counts, else by reading the text column."""
    manifest = Path(files[0]).parent.parent / "manifest.json"
    if manifest.is_file():
        chars = json.loads(manifest.read_text()).get("counts", {}).get("output", {}).get("chars")
        if chars:
            return int(chars)
    import pyarrow.compute as pc
    import pyarrow.dataset as pads

    text = pads.dataset(files, format="parquet").to_table(columns=["text"]).column("text")
    return int(pc.sum(pc.utf8_length(text)).as_py() or 0)


def draw(mixture: Path, sample_chars: int, seed: int = 0) -> tuple[list[str], dict[str, list[str]], bool]:
    """(training texts, texts to measure per bucket, whether those are held out), in one pass."""
    ensure_ray()
    files = sorted(str(p) for p in mixture.resolve().glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"No mixture/*.parquet in {mixture.parent}: is it a data stage artifact?")
    total = max(1, total_chars(files))
    train_rate = min(1.0, sample_chars / total)
    held_rate = min(1.0 - train_rate, HELDOUT_CHARS / total) if train_rate < 1 else 0.0
    train, held, seen = [], {}, {}
    picked = parquet_dataset(files, ["id", "text", "bucket", "copy"]).map_batches(
        _pick, batch_format="numpy", fn_kwargs={"seed": seed, "upto": train_rate + held_rate})
    for batch in picked.iter_batches(batch_format="numpy", batch_size=4096):
        for text, bucket, u in zip(batch["text"], batch["bucket"], batch["u"], strict=True):
            if u < train_rate:
                train.append(text)
                seen.setdefault(str(bucket), []).append(text)
            else:
                held.setdefault(str(bucket), []).append(text)
    return train, (held or seen), bool(held)
