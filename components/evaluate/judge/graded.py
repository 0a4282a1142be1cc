"""Single-answer grading, AlignBench style: the judge rates each two-turn conversation from 1 to 10
with a rubric (reference answers shown where the question has them). Unparseable ratings and failed
answers are quarantined with their reason and counted; the mean rating gets a bootstrap interval.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from components.evaluate.judge.client import Reply
from components.evaluate.judge.pairwise import mean_interval
from components.evaluate.judge.prompts import graded_messages, parse_score


def grade(judge, questions: list[dict], answers: list[list[Reply]], max_tokens: int) -> list[dict]:
    ok = [not any(r.error for r in a) for a in answers]
    asks = [partial(graded_messages, q, [r.text for r in a])
            for q, a, fine in zip(questions, answers, ok, strict=True) if fine]
    replies = iter(judge.ask_many(asks, max_tokens))
    return [_record(q, a, next(replies) if fine else None) for q, a, fine in zip(questions, answers, ok, strict=True)]


def _record(question: dict, answers: list[Reply], reply: Reply | None) -> dict:
    record = {"id": question["id"], "group": question["category"], "lang": question["lang"],
              "turns": question["turns"], "answers": [r.text for r in answers],
              "judgement": None if reply is None else {"reply": reply.text, "error": reply.error}}
    if reply is None:
        return record | {"quarantined": "contestant error: " + next(r.error for r in answers if r.error)}
    if reply.error:
        return record | {"quarantined": f"judge error: {reply.error}"}
    rating = parse_score(reply.text, "Rating", 1, 10)
    if rating is None:
        return record | {"quarantined": "unparseable rating"}
    return record | {"rating": rating, "score": (rating - 1) / 9}


def summarize(records: list[dict]) -> dict:
    rated = [r for r in records if "rating" in r]
    mean, low, high = mean_interval([r["rating"] for r in rated])
    out = {"rating": mean, "rating_low": low, "rating_high": high, "n": len(rated),
           "unparsed": len(records) - len(rated)}
    for category in sorted({r["group"] for r in rated}):
        out[f"rating.{category}"] = float(np.mean([r["rating"] for r in rated if r["group"] == category]))
    return out
