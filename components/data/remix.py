"""Remixing: up- and down-sample buckets (en, zh, code) to the target token shares.

Each bucket b holds T_b (estimated) tokens and should make up share w_b of the result. Keeping
the total near the input's while never repeating a document more than `max_upsample` times,
the target total is T = min(sum T_b, min_b max_upsample * T_b / w_b) and bucket b is sampled at
rate r_b = w_b * T / T_b. A document gets floor(r_b) copies plus one more with probability
frac(r_b), decided by a hash of (seed, id): deterministic, no shared random state across workers.
"""

from __future__ import annotations

import numpy as np
from xxhash import xxh3_64_intdigest


def rates(tokens: dict[str, int], weights: dict[str, float], max_upsample: float) -> dict[str, float]:
    """Sampling rate per bucket present in `tokens` (0 for buckets without a weight)."""
    present = {b: weights.get(b, 0.0) for b, t in tokens.items() if t > 0}
    total_w = sum(present.values())
    if total_w <= 0:
        raise ValueError(f"data.mixture {weights} gives no weight to any bucket present ({sorted(tokens)})")
    share = {b: w / total_w for b, w in present.items()}
    target = min([sum(tokens.values())] + [max_upsample * tokens[b] / s for b, s in share.items() if s > 0])
    return {b: (share.get(b, 0.0) * target / tokens[b]) if tokens[b] else 0.0 for b in tokens}


def uniform(seed: int, key: str) -> float:
    """A reproducible number in [0, 1) for `key`."""
    return xxh3_64_intdigest(f"{seed}\0{key}".encode()) / 2.0**64


def copies(ids: list[str], rate: float, seed: int) -> np.ndarray:
    """How many times each document appears after sampling at `rate`."""
    whole, frac = int(np.floor(rate)), rate - np.floor(rate)
    extra = np.fromiter((uniform(seed, i) < frac for i in ids), dtype=bool, count=len(ids))
    return whole + extra.astype(np.int64)


def mixture_table(before: dict[str, int], after: dict[str, int], weights: dict[str, float],
                  rate: dict[str, float]) -> list[dict]:
    total_b, total_a = max(1, sum(before.values())), max(1, sum(after.values()))
    wsum = sum(weights.get(b, 0.0) for b in before) or 1.0
    return [{"bucket": b, "tokens_before": before[b], "share_before": round(before[b] / total_b, 4),
             "target_share": round(weights.get(b, 0.0) / wsum, 4), "rate": round(rate.get(b, 0.0), 4),
             "tokens_after": after.get(b, 0), "share_after": round(after.get(b, 0) / total_a, 4)}
            for b in sorted(before)]
