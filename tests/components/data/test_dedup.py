"""Exact and MinHash near-duplicates: planted duplicates are found, distinct documents kept, rates add up."""

import random

import numpy as np
import pytest

from components.data.dedup import deduplicate, exact_key, rate_table
from components.data.minhash import MinHasher, band_keys, candidate_pairs, estimated_jaccard
from components.data.units import units

pytestmark = pytest.mark.unit

WORDS = ("river valley farm town market church school railway mill bridge harvest winter summer village road "
         "hill forest lake field garden house street window door table chair book letter morning evening night "
         "story song child mother father friend teacher doctor city country north south east west water fire").split()


def _docs(n: int, length: int = 120, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) + str(rng.randrange(50)) for _ in range(length)) for _ in range(n)]


def _near_copy(text: str, changes: int, seed: int) -> str:
    rng = random.Random(seed)
    words = text.split()
    for _ in range(changes):
        words[rng.randrange(len(words))] = "edited"
    return " ".join(words)


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    sa, sb = set(a.tolist()), set(b.tolist())
    return len(sa & sb) / len(sa | sb)


def test_signature_estimates_jaccard():
    mh = MinHasher(256, 5)
    docs = _docs(30)
    pairs = [(d, _near_copy(d, k, k)) for k, d in enumerate(docs)]
    sh = [(mh.shingles(a), mh.shingles(b)) for a, b in pairs]
    sig = mh.signatures([s for p in sh for s in p])
    est = estimated_jaccard(sig, np.arange(60).reshape(30, 2))
    true = np.array([_jaccard(a, b) for a, b in sh])
    assert np.abs(est - true).mean() < 0.05
    assert np.corrcoef(est, true)[0, 1] > 0.9


def test_signatures_do_not_depend_on_batching():
    mh = MinHasher(64, 3)
    docs = _docs(20)
    sh = [mh.shingles(d) for d in docs]
    assert (mh.signatures(sh) == np.concatenate([mh.signatures(sh[:7]), mh.signatures(sh[7:])])).all()


def test_planted_near_duplicates_are_found_and_distinct_documents_kept():
    base = _docs(200, length=300)
    planted = [_near_copy(base[i], 3, i) for i in range(0, 200, 10)]  # 20 near copies, J ≈ 0.9
    exact = [base[5].upper(), "  " + base[7]]  # differs only in case and whitespace
    docs = base + planted + exact
    mh = MinHasher(128, 5)
    shingles = [mh.shingles(d) for d in docs]
    assert min(_jaccard(shingles[i * 10], shingles[200 + i]) for i in range(20)) > 0.85
    sig = mh.signatures(shingles)
    keys = np.array([exact_key(d) for d in docs], dtype=np.uint64)
    d = deduplicate(keys, sig, 16, 0.8)
    assert d.keep[:200].all()  # the originals come first in corpus order and are kept
    assert not d.keep[200:220].any() and set(d.kind[200:220]) == {"near"}
    assert list(d.kind[220:]) == ["exact", "exact"]


def test_candidate_pairs_are_unique_and_ordered():
    keys = np.array([[1, 5], [1, 6], [2, 5], [1, 5]], dtype=np.uint64)
    pairs = candidate_pairs(keys)
    assert pairs.tolist() == [[0, 1], [0, 2], [0, 3], [1, 3], [2, 3]]
    assert band_keys(np.zeros((2, 8), np.uint32), 4).shape == (2, 4)


def test_global_rate_is_at_least_each_source_rate():
    rng = random.Random(1)
    base = _docs(120, seed=2)
    sources, docs = [], []
    for name in ("cc-2019", "cc-2020", "cc-2021"):
        for i in rng.sample(range(120), 60):  # the dumps overlap: the same pages crawled again
            docs.append(_near_copy(base[i], rng.randrange(3), rng.randrange(10**6)))
            sources.append(name)
    mh = MinHasher(128, 5)
    sig = mh.signatures([mh.shingles(t) for t in docs])
    d = deduplicate(np.array([exact_key(t) for t in docs], dtype=np.uint64), sig, 16, 0.8)
    table = rate_table(np.array(sources), d)
    alone = [r["rate"] for r in table if r["scope"].endswith("alone")]
    together = [r["rate"] for r in table if not r["scope"].endswith("alone")]
    assert together == sorted(together) and together[-1] >= max(alone)
    assert together[-1] > 0.3 and max(alone) < 0.05
    assert table[-1]["removed"] == int((~d.keep).sum())


def test_units_split_chinese_into_characters():
    assert units("Hello 世界, x2!") == ["hello", "世", "界", "x2"]
