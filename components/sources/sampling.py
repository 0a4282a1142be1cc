"""Deterministic caps that sample across a whole source, not its first files.

Every document gets a priority from a hash of (seed, its id). Documents are taken in priority
order while they fit `max_docs` and `max_chars` (one that would overshoot the character cap is
skipped and smaller ones after it may still fit), and written in source order. The choice of a
document depends only on the seed, its id and the sizes of documents ranked before it, so the
same config always gives the same corpus, and a small cap still sees many plays, poets or modules.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np


def priority(seed: int, doc_id: str) -> int:
    """A uniform 63-bit number for (seed, id); lower is taken first."""
    digest = hashlib.blake2b(f"{seed}\0{doc_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def select(priorities: Sequence[int], sizes: Sequence[int], max_docs: int | None,
           max_chars: int | None) -> np.ndarray:
    """Sorted stream positions of the documents kept under the caps (all when there are none)."""
    n = len(priorities)
    if max_docs is None and max_chars is None:
        return np.arange(n)
    order = np.argsort(np.asarray(priorities, dtype=np.int64), kind="stable")
    sizes_arr = np.asarray(sizes, dtype=np.int64)
    if max_chars is None:
        return np.sort(order[:max_docs])
    kept: list[int] = []
    budget, limit = max_chars, max_docs if max_docs is not None else n
    smallest = int(sizes_arr.min()) if n else 0
    for pos in order:
        size = int(sizes_arr[pos])
        if size <= budget:
            kept.append(int(pos))
            budget -= size
            if len(kept) >= limit or budget < smallest:
                break
    return np.sort(np.asarray(kept, dtype=np.int64))


def sample_records(src, n: int, seed: int = 0, home=None) -> list:
    """`n` records of `src` (a catalog `Source`) spread over the whole source, as the corpus
    stage would pick them with `max_docs_per_source=n`."""
    from components.sources.catalog import file_of, iter_records

    ids = [r.id for r in iter_records(src, home)]
    kept = {ids[i] for i in select([priority(seed, i) for i in ids], [1] * len(ids), n, None).tolist()}
    return [r for r in iter_records(src, home, only={file_of(src, i) for i in kept}) if r.id in kept]
