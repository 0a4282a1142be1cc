"""The question set, the judge's instructions, and robust parsers of its verdicts.

Questions (`data/questions.jsonl`, written for this project): two turns each, English and Chinese, in
eight categories; math, reasoning, coding and extraction carry a reference answer per turn that the
judge sees (a judge checks correctness badly without one). Verdicts: `[[A]]`, `[[B]]`, `[[C]]` (tie;
`[[tie]]` is read too), a score as `Rating: [[7]]` or `Points: [[3]]`. A reply with no verdict, or with
two different ones, parses to None: the caller quarantines and counts it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

QUESTIONS = Path(__file__).parent / "data" / "questions.jsonl"
CATEGORIES = ("writing", "roleplay", "reasoning", "math", "coding", "extraction", "knowledge", "chinese")
MAX_ANSWER_CHARS = 3000  # a rambling answer must not push the verdict out of the judge's context

PAIR_SYSTEM = (
    "You are a fair and careful judge. Two AI assistants, A and B, answered the same user in a two-turn "
    "conversation. Decide which assistant answered better, weighing correctness first, then helpfulness, "
    "relevance, depth and clarity; judge the second answer in the light of the first turn. When reference "
    "answers are given, use them to check correctness. The order of the assistants, the length of their answers "
    "and their names must not sway you. Explain your decision in a few sentences, then end with exactly one "
    "verdict on its own line: [[A]] if A is better, [[B]] if B is better, [[C]] for a tie.")
GRADE_SYSTEM = (
    "You are a strict grader. Rate the AI assistant's answers in the two-turn conversation below on a scale of "
    "1 to 10: 1-2 wrong, harmful or off-topic; 3-4 partly relevant with serious errors; 5-6 relevant but with "
    "mistakes or gaps; 7-8 correct and helpful with minor flaws; 9-10 correct, complete, clear and well "
    "written. When reference answers are given, an answer that contradicts them cannot score above 4. Explain "
    "briefly, then end with your score on its own line as: Rating: [[N]]")
COMPACT = {"pair": "Better: [[A]], [[B]] or [[C]]?", "grade": "Rating 1-10: [[N]]?",
           "exam": "Points vs reference: [[N]]?"}
"""Instructions for a judge whose context cannot hold the full ones (`client.Endpoint.fit` falls back to them)."""
EXAM_SYSTEM = (
    "You are grading a written mathematics exam. Compare the student's solution with the reference solution. "
    "Award points for correct reasoning steps and for the correct final result as the reference does; a correct "
    "answer without justification earns at most half of the points; an unfinished or wrong solution earns partial "
    "credit only for correct steps. Explain briefly, then end with the points on its own line as: Points: [[N]]")


def load_questions(path: Path = QUESTIONS) -> list[dict]:
    """The question records: id, category, lang, turns (2), and reference (one per turn) where needed."""
    with path.open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    for row in rows:
        assert len(row["turns"]) == 2 and row["category"] in CATEGORIES, row.get("id")
    return rows


def clip(text: str, limit: int = MAX_ANSWER_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _dialogue(question: dict, answers: list[str], who: str) -> str:
    lines = [f"## {who}"]
    for i, (turn, answer) in enumerate(zip(question["turns"], answers, strict=True), 1):
        lines += [f"User (turn {i}): {turn}", f"{who} (turn {i}): {clip(answer)}", ""]
    return "\n".join(lines)


def _references(question: dict) -> str:
    refs = question.get("reference") or []
    return "".join(f"Reference answer (turn {i}): {ref}\n" for i, ref in enumerate(refs, 1)) + ("\n" if refs else "")


def _short(instruction: str, rows: list[tuple[str, list[str]]], limit: int) -> list[dict]:
    """One user message: the compact instruction, then a line per row of texts clipped to `limit` characters (no
    system prompt: some small models' templates take none, and every token counts)."""
    lines = [f"{label}: {' | '.join(clip(t, limit) for t in texts)}" for label, texts in rows]
    return [{"role": "user", "content": "\n".join([instruction, *lines])}]


def pairwise_messages(question: dict, first: list[str], second: list[str], limit: int = MAX_ANSWER_CHARS,
                      short: bool = False) -> list[dict]:
    """The judge's conversation with `first` shown as Assistant A and `second` as Assistant B; `short`: compact
    instructions and texts clipped to `limit` characters, for a judge with a small context."""
    if short:
        return _short(COMPACT["pair"], [("Q", question["turns"]), ("A", first), ("B", second)], limit)
    body = _references(question) + _dialogue(question, first, "Assistant A") + "\n" + _dialogue(
        question, second, "Assistant B")
    return [{"role": "system", "content": PAIR_SYSTEM}, {"role": "user", "content": body}]


def graded_messages(question: dict, answers: list[str], limit: int = MAX_ANSWER_CHARS,
                    short: bool = False) -> list[dict]:
    if short:
        return _short(COMPACT["grade"], [("Q", question["turns"]), ("Answer", answers)], limit)
    body = _references(question) + _dialogue(question, answers, "Assistant")
    return [{"role": "system", "content": GRADE_SYSTEM}, {"role": "user", "content": body}]


def exam_messages(problem: dict, answer: str, limit: int = MAX_ANSWER_CHARS, short: bool = False) -> list[dict]:
    if short:
        return _short(f"{COMPACT['exam']} (0 to {problem['points']:g})", [
            ("Problem", [problem["question"]]), ("Reference", [problem["solution"]]), ("Solution", [answer])], limit)
    body = (f"Problem ({problem['points']} points):\n{problem['question']}\n\nReference solution:\n"
            f"{problem['solution']}\n\nStudent's solution:\n{clip(answer)}\n\nThe score must be between 0 and "
            f"{problem['points']}.")
    return [{"role": "system", "content": EXAM_SYSTEM}, {"role": "user", "content": body}]


_VERDICT = re.compile(r"\[\[\s*(A|B|C|tie)\s*\]\]", re.IGNORECASE)
_NUMBER = r"(\d+(?:\.\d+)?)"


def parse_verdict(text: str) -> str | None:
    """"A", "B" or "C" (tie) when the reply holds exactly one distinct verdict; else None."""
    found = {m.upper().replace("TIE", "C") for m in _VERDICT.findall(text or "")}
    return found.pop() if len(found) == 1 else None


def parse_score(text: str, label: str, low: float, high: float) -> float | None:
    """The last `<label>: [[N]]` (else the last `[[N]]`, else `<label>: N`) within [low, high]; else None."""
    for pattern in (rf"{label}\s*[:：]\s*\[\[\s*{_NUMBER}\s*\]\]", rf"\[\[\s*{_NUMBER}\s*\]\]",
                    rf"{label}\s*[:：]\s*{_NUMBER}\b"):
        found = re.findall(pattern, text or "", flags=re.IGNORECASE)
        if found:
            value = float(found[-1])
            return value if low <= value <= high else None
    return None
