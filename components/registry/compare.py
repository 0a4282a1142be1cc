"""The gate's checks as rows of the decision table: thresholds, "better than trivial", and paired regressions.

Regressions compare only like with like: a task's per-item scores (or bpb's per-document bits and bytes)
of two versions, on the items both scored, and only when the settings that change the scores are equal.
Per-token losses are never compared (they depend on the tokenizer). A row blocks the gate only when it is
`ok=False`: a threshold missed, a bar of triviality not cleared, or a *significant* worsening (one-sided
`alpha`) larger than the tolerance. Fewer than `min_items` shared items → "inconclusive", which does not block.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from components.registry import stats
from components.registry.metrics import lower_is_better, metric_name


@dataclass
class MetricCheck:
    """One row of the decision table (value: this version; baseline: the approved version's, or the bar's)."""

    metric: str
    value: float | None
    threshold: float | None = None
    baseline: float | None = None
    lower_is_better: bool = False
    ok: bool = True
    check: str = "regression"
    """threshold | trivial | regression"""
    verdict: str = ""
    n: int | None = None
    effect: float | None = None
    low: float | None = None
    high: float | None = None
    p_value: float | None = None
    test: str = ""


@dataclass(frozen=True)
class Policy:
    """How the gate judges: one-sided level, fewest shared items for a verdict, the smallest worsening that
    blocks (in the metric's units), and whether the better-than-trivial bars apply."""

    alpha: float = 0.05
    min_items: int = 20
    tolerance: float = 0.0
    trivial: bool = True
    bpb_bar: bool = True


def _settings_diff(a: dict, b: dict) -> str:
    keys = sorted(set(a) | set(b))
    return ", ".join(f"{k} {b.get(k)!r} → {a.get(k)!r}" for k in keys if a.get(k) != b.get(k))


def _row(metric: str, lower: bool, paired: stats.Paired, policy: Policy) -> MetricCheck:
    worse = paired.worse and abs(paired.effect) > policy.tolerance
    verdict = ("worse" if worse else "worse, within tolerance" if paired.worse else
               "better" if paired.better else "no significant difference")
    p = paired.p_better if verdict == "better" else paired.p_value  # one-sided, in the verdict's direction
    return MetricCheck(metric, paired.candidate, None, paired.approved, lower, not worse, "regression", verdict,
                       paired.n, paired.effect, paired.low, paired.high, p, paired.test)


def _unpaired(metric: str, lower: bool, verdict: str, n: int | None = None) -> MetricCheck:
    return MetricCheck(metric, None, lower_is_better=lower, check="regression", verdict=verdict, n=n)


def _shared(metric: str, lower: bool, cand: dict, base: dict, field: str, what: str,
            policy: Policy) -> tuple[list, MetricCheck | None]:
    """The items (`field`: scores or docs) both versions measured with equal settings, or the row that says why
    there is nothing to pair."""
    if diff := _settings_diff(cand["settings"], base["settings"]):
        return [], _unpaired(metric, lower, f"not comparable: settings differ ({diff})")
    shared = sorted(set(cand[field]) & set(base[field]))
    if len(shared) < max(policy.min_items, 2):
        return shared, _unpaired(metric, lower, f"inconclusive: {len(shared)} shared {what} (< {policy.min_items})",
                                 len(shared))
    return shared, None


def compare_task(task: str, cand: dict, base: dict, policy: Policy) -> MetricCheck:
    metric = metric_name(f"{task}.{cand['metric']}")
    lower = lower_is_better(metric)
    shared, refused = _shared(metric, lower, cand, base, "scores", "items", policy)
    if refused:
        return refused
    paired = stats.paired_scores(np.array([cand["scores"][i] for i in shared]),
                                 np.array([base["scores"][i] for i in shared]), policy.alpha, lower)
    return _row(metric, lower, paired, policy)


def compare_bpb(cand: dict, base: dict, policy: Policy) -> MetricCheck:
    shared, refused = _shared("bpb.bpb", True, cand, base, "docs", "documents", policy)
    if refused:
        return refused
    side = [np.array([ev["docs"][d] for d in shared]).T for ev in (cand, base)]
    return _row("bpb.bpb", True, stats.paired_bpb((side[0][0], side[0][1]), (side[1][0], side[1][1]), policy.alpha),
                policy)


def regressions(cand: dict | None, base: dict | None, policy: Policy) -> list[MetricCheck]:
    """One row per task either version measured (bpb first)."""
    if not cand or not base:
        which = "this version" if not cand else "the approved version"
        return [_unpaired("*", False, f"not comparable: {which} has no per-item evaluation (per-token losses are "
                                      "never compared: they depend on the tokenizer)")]
    rows = []
    if "bpb" in cand or "bpb" in base:
        rows.append(compare_bpb(cand["bpb"], base["bpb"], policy) if "bpb" in cand and "bpb" in base else
                    _unpaired("bpb.bpb", True, "not comparable: measured on one version only"))
    for task in sorted(set(cand["tasks"]) | set(base["tasks"])):
        if task in cand["tasks"] and task in base["tasks"]:
            rows.append(compare_task(task, cand["tasks"][task], base["tasks"][task], policy))
        else:
            spec = (cand["tasks"].get(task) or base["tasks"][task])
            rows.append(_unpaired(metric_name(f"{task}.{spec['metric']}"), False,
                                  "not comparable: measured on one version only"))
    return rows


def trivial_bpb(metric: str, value: float | None, unigram: float | None) -> MetricCheck | None:
    """bpb (or the base model's validation bpb) strictly below the unigram entropy of the validation text."""
    if value is None or unigram is None:
        return None
    ok = value < unigram
    return MetricCheck(metric, value, unigram, lower_is_better=True, ok=ok, check="trivial",
                       verdict=("below" if ok else "NOT below") + " the unigram entropy of the validation text")


def trivial_choice(task: str, ev: dict, alpha: float) -> MetricCheck | None:
    """Multiple-choice accuracy not significantly below guessing (exact binomial test, one-sided alpha)."""
    scores = [ev["scores"][i] for i in ev["scores"] if i in ev["choices"]]
    if not scores or not set(scores) <= {0.0, 1.0}:
        return None
    chance = float(np.mean([1.0 / ev["choices"][i] for i in ev["scores"] if i in ev["choices"]]))
    correct, n = int(sum(scores)), len(scores)
    p = stats.below_chance(correct, n, chance)
    ok = p >= alpha
    return MetricCheck(metric_name(f"{task}.{ev['metric']}"), correct / n, chance, ok=ok, check="trivial", n=n,
                       p_value=p, test="exact binomial vs chance",
                       verdict="not significantly below chance" if ok else "significantly below chance")


def trivial_checks(metrics: dict[str, float], ev: dict | None, policy: Policy) -> list[MetricCheck]:
    if not policy.trivial:
        return []
    unigram = metrics.get("trivial.unigram_bpb")
    bpb = "bpb.bpb" if "bpb.bpb" in metrics else "train.pretrain.val_bpb"  # the base model's own, when not evaluated
    rows = [trivial_bpb(bpb, metrics.get(bpb), unigram)] if policy.bpb_bar else []
    rows += [trivial_choice(t, e, policy.alpha) for t, e in sorted((ev or {}).get("tasks", {}).items())
             if e["kind"] == "choice"]
    return [r for r in rows if r is not None]
