"""A judge-graded exam: free-form problems answered by the model and graded in points against reference
solutions (DeepSeek LLM graded the 2023 Hungarian national high-school mathematics finals by hand).

Problems come from local jsonl files (`EvalConfig.exam_files`), one per line: `question`, `solution` and
`points` (`id` optional; the Hugging Face set's column names `Question`, `Answer`/`Solution`, `Points`
are read too). With no file given and the hub reachable, the Hugging Face dataset
keirp/hungarian_national_hs_finals_exam is read instead (an optional online branch). Neither: the task is
"not available". A row without a question or a reference solution is quarantined with its reason.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from components.evaluate import data
from components.evaluate.judge.client import Reply
from components.evaluate.judge.prompts import exam_messages, parse_score

HF_ID = "keirp/hungarian_national_hs_finals_exam"
DEFAULT_POINTS = 10.0
_KEYS = {"question": ("question", "Question", "problem", "Problem"),
         "solution": ("solution", "Solution", "answer", "Answer", "reference")}


def _field(row: dict, name: str) -> str:
    return next((str(row[k]).strip() for k in _KEYS[name] if row.get(k) not in (None, "")), "")


def normalize(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """(problems, quarantined rows with their reason)."""
    problems, bad = [], []
    for i, row in enumerate(rows):
        problem = {"id": str(row.get("id", i)), "question": _field(row, "question"),
                   "solution": _field(row, "solution"), "points": float(row.get("points", row.get("Points"))
                                                                        or DEFAULT_POINTS)}
        missing = [k for k in ("question", "solution") if not problem[k]]
        (bad if missing else problems).append(problem | ({"quarantined": f"no {' or '.join(missing)}"}
                                                         if missing else {}))
    return problems, bad


def load_rows(files: list[str]) -> list[dict]:
    """Rows of the local files; else, online only, the Hugging Face set; else MissingDataset."""
    if files:
        return [row for name in files for row in data.read_jsonl(Path(name).expanduser())]
    rows = data.hub_rows(HF_ID, None, "test")
    if rows is None:
        raise data.MissingDataset(f"no exam files given (--exam-file / EvalConfig.exam_files: jsonl with question, "
                                  f"solution, points) and the Hugging Face hub is not reachable for {HF_ID!r}")
    return rows


def grade(judge, problems: list[dict], answers: list[Reply], max_tokens: int) -> list[dict]:
    asks = [partial(exam_messages, p, a.text) for p, a in zip(problems, answers, strict=True) if not a.error]
    replies = iter(judge.ask_many(asks, max_tokens))
    return [_record(p, a, None if a.error else next(replies)) for p, a in zip(problems, answers, strict=True)]


def _record(problem: dict, answer: Reply, reply: Reply | None) -> dict:
    record = problem | {"answer": answer.text, "judgement": None if reply is None else
                        {"reply": reply.text, "error": reply.error}}
    if reply is None or reply.error:
        return record | {"quarantined": f"{'contestant' if reply is None else 'judge'} error: "
                                        f"{answer.error if reply is None else reply.error}"}
    earned = parse_score(reply.text, "Points", 0, problem["points"])
    if earned is None:
        return record | {"quarantined": "unparseable points"}
    return record | {"earned": earned, "score": earned / problem["points"]}


def summarize(records: list[dict], bad_rows: int) -> dict:
    graded = [r for r in records if "earned" in r]
    earned, possible = sum(r["earned"] for r in graded), sum(r["points"] for r in graded)
    return {"score": earned / possible if possible else float("nan"), "points": earned, "max_points": possible,
            "n": len(graded), "unparsed": len(records) - len(graded), "bad_rows": bad_rows,
            "mean_item_score": float(np.mean([r["score"] for r in graded])) if graded else float("nan")}
