"""Paired significance tests for the gate: is a candidate worse than the approved version on the same items?

The level is one-sided: a regression is declared when the test rejects "the candidate is not worse" at
`alpha` (default 0.05). Every comparison reports the effect (candidate − approved, in the metric's units),
a two-sided (1 − 2·alpha) percentile bootstrap interval for it (so with alpha 0.05 a 90% interval, whose
worse end is the one-sided 95% bound), the p-value and the test used:

- 0/1 scores (accuracy, exact match, pass@1 with one sample): McNemar's exact test on the discordant pairs
  (a one-sided binomial test of "approved right, candidate wrong" among all discordant items, p = 1/2).
- other per-item scores (averages, pass@k of several samples): a paired bootstrap over items; p is the share
  of resampled mean differences that are not worse than zero.
- bits per byte: a paired bootstrap over documents of the ratio sum(bits) / sum(bytes) on each side.

Resampling uses a fixed seed, so the same data always give the same verdict. scipy does the resampling
and the binomial tails.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

RESAMPLES = 4000
SEED = 20240201


@dataclass(frozen=True)
class Paired:
    """One paired comparison: effect = candidate − approved; `worse` means significantly worse at alpha."""

    n: int
    candidate: float
    approved: float
    effect: float
    low: float
    high: float
    p_value: float
    test: str
    worse: bool
    better: bool
    p_better: float = 1.0
    """The one-sided p-value of the other direction (candidate better)."""


def _interval(data: tuple[np.ndarray, ...], statistic, alpha: float) -> tuple[float, float, np.ndarray]:
    res = stats.bootstrap(data, statistic, paired=True, vectorized=True, n_resamples=RESAMPLES, method="percentile",
                          confidence_level=1 - 2 * alpha, rng=np.random.default_rng(SEED))
    low, high = res.confidence_interval
    dist = np.asarray(res.bootstrap_distribution)
    return float(np.nan_to_num(low)), float(np.nan_to_num(high)), dist


def _bootstrap_p(dist: np.ndarray, effect: float, lower_is_better: bool) -> tuple[float, float]:
    """One-sided percentile p-values (worse, better): the share of resamples on the other side of zero."""
    if np.allclose(dist, 0.0) and effect == 0.0:
        return 1.0, 1.0
    floor = 1.0 / (len(dist) + 1)
    not_worse = float(np.mean(dist <= 0)) if lower_is_better else float(np.mean(dist >= 0))
    not_better = float(np.mean(dist >= 0)) if lower_is_better else float(np.mean(dist <= 0))
    return max(not_worse, floor), max(not_better, floor)


def _mean_diff(a, b, axis=-1):
    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


def paired_scores(candidate: np.ndarray, approved: np.ndarray, alpha: float = 0.05,
                  lower_is_better: bool = False) -> Paired:
    """Per-item scores of both versions on the same items, in the same order."""
    cand, base = np.asarray(candidate, dtype=float), np.asarray(approved, dtype=float)
    assert cand.shape == base.shape and cand.ndim == 1 and len(cand) > 1, "paired scores need >= 2 shared items"
    effect = float(cand.mean() - base.mean())
    low, high, dist = _interval((cand, base), _mean_diff, alpha)
    binary = bool(np.isin(cand, (0.0, 1.0)).all() and np.isin(base, (0.0, 1.0)).all())
    if binary and not lower_is_better:
        lost, won = int(np.sum((base == 1) & (cand == 0))), int(np.sum((base == 0) & (cand == 1)))
        p_worse = stats.binomtest(lost, lost + won, 0.5, alternative="greater").pvalue if lost + won else 1.0
        p_better = stats.binomtest(won, lost + won, 0.5, alternative="greater").pvalue if lost + won else 1.0
        test = f"McNemar exact ({lost} lost, {won} won)"
    else:
        p_worse, p_better = _bootstrap_p(dist, effect, lower_is_better)
        test = "paired bootstrap over items"
    return Paired(len(cand), float(cand.mean()), float(base.mean()), effect, low, high, float(p_worse), test,
                  bool(p_worse < alpha), bool(p_better < alpha), float(p_better))


def _ratio_diff(nll_a, bytes_a, nll_b, bytes_b, axis=-1):
    return np.sum(nll_a, axis=axis) / np.sum(bytes_a, axis=axis) - np.sum(nll_b, axis=axis) / np.sum(bytes_b, axis=axis)


def paired_bpb(candidate: tuple[np.ndarray, np.ndarray], approved: tuple[np.ndarray, np.ndarray],
               alpha: float = 0.05) -> Paired:
    """(bits, bytes) per document of both versions on the same documents, same order; lower is better."""
    (bits_c, bytes_c), (bits_a, bytes_a) = ((np.asarray(x, dtype=float) for x in side) for side in (candidate, approved))
    assert len(bits_c) == len(bits_a) > 1, "paired bits per byte needs >= 2 shared documents"
    bpb_c, bpb_a = bits_c.sum() / bytes_c.sum(), bits_a.sum() / bytes_a.sum()
    low, high, dist = _interval((bits_c, bytes_c, bits_a, bytes_a), _ratio_diff, alpha)
    p_worse, p_better = _bootstrap_p(dist, float(bpb_c - bpb_a), lower_is_better=True)
    return Paired(len(bits_c), float(bpb_c), float(bpb_a), float(bpb_c - bpb_a), low, high, p_worse,
                  "paired bootstrap over documents", bool(p_worse < alpha), bool(p_better < alpha), p_better)


def below_chance(correct: int, n: int, chance: float) -> float:
    """One-sided exact binomial p-value of `correct` of `n` under guessing with success probability `chance`."""
    assert 0 < chance < 1 and 0 <= correct <= n
    return float(stats.binomtest(correct, n, chance, alternative="less").pvalue) if n else 1.0
