"""Pairwise judging, MT-Bench style: the judge sees both two-turn conversations twice, once with each
contestant shown first, so a judge that favours a position cancels out.

Per question and order the verdict becomes an outcome for contestant A (win, tie, loss). The two
orders agree: that outcome; they disagree: a tie (the conservative rule of MT-Bench). A question
with an unparseable verdict in either order, or an answer a contestant failed to give, is
quarantined with its reason and counted, not scored. The win rate counts a tie as half a win;
its interval is a percentile bootstrap over questions.
"""

from __future__ import annotations

from collections import Counter
from functools import partial

import numpy as np
from scipy import stats

from components.evaluate.judge.client import Reply
from components.evaluate.judge.prompts import pairwise_messages, parse_verdict

RESAMPLES, SEED = 4000, 20240201  # as the gate's paired bootstrap (components/registry/stats.py, not imported: a cycle)

OUTCOME_OF = ({"A": "win", "B": "loss", "C": "tie"}, {"A": "loss", "B": "win", "C": "tie"})
"""Verdict -> outcome for contestant A: in the order with A shown first, then with B shown first."""
SCORE = {"win": 1.0, "tie": 0.5, "loss": 0.0}


def mean_interval(values: list[float], alpha: float = 0.05) -> tuple[float, float, float]:
    """(mean, low, high): a percentile bootstrap interval of the mean at level 1 - alpha (NaN when empty)."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return float("nan"), float("nan"), float("nan")
    if data.size == 1 or np.all(data == data[0]):
        return float(data.mean()), float(data.mean()), float(data.mean())
    res = stats.bootstrap((data,), np.mean, n_resamples=RESAMPLES, method="percentile", confidence_level=1 - alpha,
                          rng=np.random.default_rng(SEED))
    low, high = res.confidence_interval
    return float(data.mean()), float(low), float(high)


def combine(first: str | None, second: str | None) -> str | None:
    """The question's outcome from the outcomes of its two orders (None when either is missing)."""
    if first is None or second is None:
        return None
    return first if first == second else "tie"


def judge_pairs(judge, questions: list[dict], mine: list[list[Reply]], other: list[list[Reply]],
                max_tokens: int) -> list[dict]:
    """One record per question with both judgements (reply, verdict, outcome), its outcome and its score."""
    ok = [not any(r.error for r in a + b) for a, b in zip(mine, other, strict=True)]
    asks = []
    for q, a, b, fine in zip(questions, mine, other, ok, strict=True):
        texts_a, texts_b = [r.text for r in a], [r.text for r in b]
        asks += [partial(pairwise_messages, q, texts_a, texts_b), partial(pairwise_messages, q, texts_b, texts_a)
                 ] if fine else []
    replies = iter(judge.ask_many(asks, max_tokens))
    return [_record(q, a, b, [next(replies), next(replies)] if fine else [])
            for q, a, b, fine in zip(questions, mine, other, ok, strict=True)]


def _record(question: dict, mine: list[Reply], other: list[Reply], replies: list[Reply]) -> dict:
    judgements = []
    for order, reply in zip(("A shown first", "B shown first"), replies, strict=False):
        verdict = parse_verdict(reply.text) if reply.error is None else None
        outcome = OUTCOME_OF[len(judgements)].get(verdict) if verdict else None
        judgements.append({"order": order, "reply": reply.text, "error": reply.error, "verdict": verdict,
                           "outcome": outcome})
    outcome = combine(*[j["outcome"] for j in judgements]) if len(judgements) == 2 else None
    record = {"id": question["id"], "group": question["category"], "lang": question["lang"],
              "turns": question["turns"], "answers_a": [r.text for r in mine], "answers_b": [r.text for r in other],
              "judgements": judgements, "outcome": outcome}
    if outcome is None:
        return record | {"quarantined": _why(mine + other, judgements)}
    return record | {"score": SCORE[outcome], "consistent": judgements[0]["outcome"] == judgements[1]["outcome"]}


def _why(answers: list[Reply], judgements: list[dict]) -> str:
    if not judgements:
        return "contestant error: " + next(r.error for r in answers if r.error)
    if any(j["error"] for j in judgements):
        return "judge error: " + next(j["error"] for j in judgements if j["error"])
    return "unparseable verdict"


def summarize(records: list[dict]) -> dict:
    """win/tie/loss counts, the win rate (ties half) with its bootstrap interval, per category, quarantined."""
    judged = [r for r in records if "score" in r]
    counts = Counter(r["outcome"] for r in judged)
    rate, low, high = mean_interval([r["score"] for r in judged])
    out = {"win_rate": rate, "win_rate_low": low, "win_rate_high": high, "wins": counts["win"],
           "ties": counts["tie"], "losses": counts["loss"], "n": len(judged),
           "unparsed": len(records) - len(judged), "judge_calls": sum(len(r["judgements"]) for r in records),
           "consistency": float(np.mean([r["consistent"] for r in judged])) if judged else float("nan")}
    for category in sorted({r["group"] for r in judged}):
        out[f"win_rate.{category}"] = float(np.mean([r["score"] for r in judged if r["group"] == category]))
    return out
