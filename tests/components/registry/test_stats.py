"""The gate's statistics and row logic on hand-checkable data: McNemar's exact tail, the bootstrap over documents,
the binomial test against chance, and which comparisons block (significant), wait (inconclusive) or are refused
(different settings)."""

from __future__ import annotations

import numpy as np
import pytest

from components.registry import compare, stats

pytestmark = pytest.mark.unit


def test_mcnemar_uses_only_the_discordant_items():
    base = np.array([1.0] * 8 + [0.0] * 22 + [1.0] * 10)
    cand = np.array([0.0] * 8 + [0.0] * 22 + [1.0] * 10)  # 8 lost, 0 won, 32 ties
    worse = stats.paired_scores(cand, base)
    assert worse.p_value == pytest.approx(0.5 ** 8) and worse.worse and not worse.better
    assert worse.effect == pytest.approx(-8 / 40) and worse.low <= worse.effect <= worse.high < 0
    assert "8 lost, 0 won" in worse.test
    few = stats.paired_scores(np.r_[cand[3:], base[:3]], np.r_[base[3:], base[:3]])  # 5 lost of 5 discordant
    assert few.p_value == pytest.approx(0.5 ** 5) and few.worse
    tie = stats.paired_scores(base, base)
    assert tie.p_value == 1.0 and not tie.worse and not tie.better and tie.effect == 0


def test_averaged_scores_use_the_paired_bootstrap():
    rng = np.random.default_rng(1)
    base = rng.random(60)
    assert stats.paired_scores(base - 0.2, base).worse
    noisy = stats.paired_scores(base + rng.normal(0, 0.05, 60), base)
    assert not noisy.worse and noisy.low < 0 < noisy.high and noisy.test == "paired bootstrap over items"


def test_bpb_bootstrap_over_documents_is_a_ratio_of_sums():
    rng = np.random.default_rng(2)
    nbytes = rng.integers(100, 2000, 50).astype(float)
    bits = nbytes * rng.uniform(2, 5, 50)
    worse = stats.paired_bpb((bits * 1.1, nbytes), (bits, nbytes))
    assert worse.approved == pytest.approx(bits.sum() / nbytes.sum())
    assert worse.effect == pytest.approx(0.1 * worse.approved) and worse.worse and worse.low > 0
    better = stats.paired_bpb((bits * 0.9, nbytes), (bits, nbytes))
    assert better.better and not better.worse and better.high < 0
    again = stats.paired_bpb((bits * 1.1, nbytes), (bits, nbytes))
    assert (again.low, again.high, again.p_value) == (worse.low, worse.high, worse.p_value)  # seeded


def test_below_chance_is_an_exact_binomial_tail():
    assert stats.below_chance(0, 40, 0.25) == pytest.approx(0.75 ** 40)
    assert stats.below_chance(10, 40, 0.25) > 0.5


def _task(scores: dict, **settings) -> dict:
    return {"kind": "choice", "metric": "acc", "settings": {"limit": 200, "fewshot": 5} | settings, "scores": scores,
            "choices": {i: 4 for i in scores}}


def test_rows_block_only_on_significant_worsening_of_like_items():
    policy = compare.Policy(min_items=20)
    base = {str(i): 1.0 for i in range(30)}
    worse = compare.compare_task("mmlu", _task({str(i): float(i >= 10) for i in range(30)}), _task(base), policy)
    assert not worse.ok and worse.verdict == "worse" and worse.metric == "mmlu.acc" and worse.n == 30
    tolerated = compare.compare_task("mmlu", _task({str(i): float(i >= 10) for i in range(30)}), _task(base),
                                     compare.Policy(tolerance=0.5))
    assert tolerated.ok and tolerated.verdict == "worse, within tolerance"
    unlike = compare.compare_task("mmlu", _task({"0": 0.0}, limit=4), _task(base), policy)
    assert unlike.ok and unlike.verdict == "not comparable: settings differ (limit 200 → 4)"
    few = compare.compare_task("mmlu", _task({str(i): 0.0 for i in range(5)}), _task(base), policy)
    assert few.ok and few.verdict.startswith("inconclusive: 5 shared items")
    assert compare.regressions(None, {"tasks": {}}, policy)[0].verdict.startswith("not comparable: this version")


def test_trivial_bars():
    policy = compare.Policy()
    rows = compare.trivial_checks({"bpb.bpb": 5.2, "trivial.unigram_bpb": 4.87},
                                  {"tasks": {"mmlu": _task({str(i): 0.0 for i in range(40)})}}, policy)
    assert [(r.metric, r.ok) for r in rows] == [("bpb.bpb", False), ("mmlu.acc", False)]
    assert rows[1].threshold == 0.25 and rows[1].p_value == pytest.approx(0.75 ** 40)
    base = compare.trivial_checks({"train.pretrain.val_bpb": 4.55, "trivial.unigram_bpb": 4.87}, None, policy)
    assert [(r.metric, r.ok) for r in base] == [("train.pretrain.val_bpb", True)]
    assert compare.trivial_checks({"bpb.bpb": 5.2, "trivial.unigram_bpb": 4.87}, None,
                                  compare.Policy(bpb_bar=False)) == []
