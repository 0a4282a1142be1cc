"""Near-dedup: dsllm's vectorised MinHash + LSH against datasketch's MinHash + MinHashLSH.

Same corpus (real documents plus planted near-copies at several edit rates), same shingles
(5-unit shingles from `components.data.units`), same 128 permutations and threshold 0.8. Truth is
the exact Jaccard similarity of every pair that shares a shingle (a sparse doc × shingle product),
so recall covers all true pairs. dsllm's output is clusters (connected components of verified LSH
pairs: what dedup removes), so a true pair counts as found when both documents share a cluster, and
precision is measured on a sample of the pairs the clusters declare; datasketch's output is the
pairs its LSH queries return, all of them checked. Timing covers text → duplicates for both,
interleaved, median of repeats. Headline: speed ratio (datasketch time / ours) and recall.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import args, corpus_texts, emit, interleaved, machine, summary  # noqa: E402
from components.data.dedup import components, near_pairs  # noqa: E402
from components.data.minhash import MinHasher  # noqa: E402
from components.data.units import units  # noqa: E402

NUM_PERM, NGRAM, BANDS, THRESHOLD = 128, 5, 16, 0.8


def planted(texts: list[str], share: float, seed: int = 0) -> list[str]:
    """The texts plus near-copies of a share of them with 1-15% of words replaced (J from ~0.4 to ~0.95)."""
    rng = random.Random(seed)
    out = list(texts)
    for text in rng.sample(texts, int(len(texts) * share)):
        words = text.split(" ")
        for _ in range(max(1, int(len(words) * rng.uniform(0.01, 0.15)))):
            words[rng.randrange(len(words))] = "edited"
        out.append(" ".join(words))
    return out


def ours(texts: list[str]) -> np.ndarray:
    """Cluster label per document: documents with the same label are treated as duplicates."""
    mh = MinHasher(NUM_PERM, NGRAM)
    sig = mh.signatures([mh.shingles(t) for t in texts])
    pairs, _ = near_pairs(sig, BANDS, THRESHOLD)
    return components(len(texts), pairs)


def shingle_strings(text: str) -> list[bytes]:
    u = units(text)
    return [" ".join(u[i:i + NGRAM]).encode() for i in range(max(1, len(u) - NGRAM + 1))]


def baseline(texts: list[str]) -> set[tuple[int, int]]:
    from datasketch import MinHash, MinHashLSH

    lsh, hashes = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM), []
    for i, text in enumerate(texts):
        m = MinHash(num_perm=NUM_PERM)
        m.update_batch(shingle_strings(text))
        lsh.insert(i, m)
        hashes.append(m)
    return {(min(i, j), max(i, j)) for i, m in enumerate(hashes) for j in lsh.query(m) if j != i}


def shingle_sets(texts: list[str]) -> list[np.ndarray]:
    mh = MinHasher(NUM_PERM, NGRAM)
    return [np.unique(mh.shingles(t)) for t in texts]


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


def truth(sets: list[np.ndarray]) -> set[tuple[int, int]]:
    """Every pair with exact Jaccard >= THRESHOLD over the same (hashed) shingle sets."""
    from scipy.sparse import csr_matrix

    vocab, cols = np.unique(np.concatenate(sets), return_inverse=True)
    rows = np.repeat(np.arange(len(sets)), [len(s) for s in sets])
    a = csr_matrix((np.ones(len(cols), np.float32), (rows, cols)), shape=(len(sets), len(vocab)))
    inter = (a @ a.T).tocoo()
    sizes = np.array([len(s) for s in sets])
    keep = inter.row < inter.col
    i, j, n = inter.row[keep], inter.col[keep], inter.data[keep]
    jac = n / (sizes[i] + sizes[j] - n)
    return {(int(x), int(y)) for x, y in zip(i[jac >= THRESHOLD], j[jac >= THRESHOLD], strict=True)}


def quality(found: set, true: set) -> dict:
    tp = len(found & true)
    return {"pairs": len(found), "precision": round(tp / max(1, len(found)), 4), "recall": round(tp / max(1, len(true)), 4)}


def cluster_quality(labels: np.ndarray, true: set, sets: list[np.ndarray], samples: int = 20_000) -> dict:
    """Recall: true pairs put in one cluster. Precision: exact Jaccard of a uniform sample of the pairs
    the clusters declare duplicates (all pairs inside each cluster, the unit dedup acts on)."""
    t = np.array(sorted(true)) if true else np.empty((0, 2), int)
    recall = float((labels[t[:, 0]] == labels[t[:, 1]]).mean()) if len(t) else 1.0
    ids, sizes = np.unique(labels, return_counts=True)
    pair_counts = sizes * (sizes - 1) / 2
    declared = int(pair_counts.sum())
    if declared == 0:
        return {"pairs": 0, "precision": 1.0, "recall": round(recall, 4)}
    rng = np.random.default_rng(0)
    members = {c: np.nonzero(labels == c)[0] for c in ids[sizes > 1]}
    picks = rng.choice(ids, size=min(samples, declared), p=pair_counts / declared)
    good = 0
    for c in picks:
        i, j = rng.choice(members[c], 2, replace=False)
        good += (min(i, j), max(i, j)) in true or jaccard(sets[i], sets[j]) >= THRESHOLD
    return {"pairs": declared, "precision": round(good / len(picks), 4), "recall": round(recall, 4),
            "precision_sampled_pairs": len(picks)}


def main() -> None:
    a = args(__doc__.splitlines()[0])
    chars = 60_000 if a.quick else 1_500_000
    texts = [t for _, _, t in corpus_texts(chars, ["wiki", "c4", "peoples_daily", "reviews", "shakespeare", "stdlib"])]
    texts = planted(texts, 0.3)
    repeats = a.repeats or (2 if a.quick else 5)
    times = interleaved({"dsllm": lambda: ours(texts), "datasketch": lambda: baseline(texts)}, repeats)
    sets = shingle_sets(texts)
    true = truth(sets)
    q_ours, q_base = cluster_quality(ours(texts), true, sets), quality(baseline(texts), true)
    speed = summary(times["datasketch"])["median"] / summary(times["dsllm"])["median"]
    result = {"benchmark": "near_dedup", "machine": machine(),
              "config": {"docs": len(texts), "chars": sum(map(len, texts)), "num_perm": NUM_PERM, "ngram": NGRAM,
                         "bands": BANDS, "threshold": THRESHOLD, "repeats": repeats},
              "seconds": {k: summary(v) for k, v in times.items()}, "true_pairs": len(true),
              "quality": {"dsllm": q_ours, "datasketch": q_base},
              "ratios": {"speed_vs_datasketch": round(speed, 2),
                         "recall_delta": round(q_ours["recall"] - q_base["recall"], 4)}}
    rows = [[name, f"{summary(times[name])['median']:.3f}", q["pairs"], q["precision"], q["recall"]]
            for name, q in (("dsllm", q_ours), ("datasketch", q_base))]
    rows.append(["speed ratio", f"{speed:.2f}x", "", "", ""])
    emit("near_dedup", result, rows, ["method", "median s", "pairs", "precision", "recall"], a.out)


if __name__ == "__main__":
    main()
