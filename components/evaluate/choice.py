"""Multiple-choice tasks scored by the log-likelihood of each option: MMLU, C-Eval, CMMLU, HellaSwag, ARC.

MMLU, C-Eval and CMMLU show the lettered options and score the letters (5-shot from each subject's
dev split, the same shots for every question of the subject, so the scorer runs them once).
HellaSwag and ARC score the option texts themselves, zero-shot. Reported as lm-evaluation-harness
defines them (lm_eval/api/task.py, multiple_choice): `acc` the raw argmax, `acc_norm` the argmax of
log-likelihood per CHARACTER of the option without its target delimiter (the leading space), and
`acc_bytes` per UTF-8 byte of the same text. Each record carries the item's `id` and a numeric
`score` (1/0 by the task's headline metric) for paired comparisons across model versions.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable

from components.evaluate import data
from components.evaluate.lm import ChoiceRequest, ChoiceScore
from components.evaluate.task import Item, Style
from components.home import Home

LETTERS = "ABCD"


def lettered(question: str, options: list[str], answer_word: str) -> str:
    lines = [question.strip()] + [f"{letter}. {str(option).strip()}" for letter, option in zip(LETTERS, options,
                                                                                               strict=False)]
    return "\n".join(lines) + f"\n{answer_word}"


def letter_items(subjects: dict[str, list[dict]], shots: dict[str, list[dict]], style: Style, k: int,
                 header: Callable[[str], str], row: Callable[[dict], tuple[str, list[str], int]],
                 answer_word: str, space: str) -> list[Item]:
    """Items for a lettered task: `row(r) -> (question, options, gold index)`; shots end with their letter."""
    sep = "" if style.chat else space
    items = []
    for subject, rows in subjects.items():
        shot_text = tuple(f"{lettered(q, o, answer_word)}{space}{LETTERS[g]}\n\n"
                          for q, o, g in map(row, shots.get(subject, [])[:k]))
        head, _ = style.wrap(header(subject), "")
        for i, r in enumerate(rows):
            question, options, gold = row(r)
            _, context = style.wrap("", lettered(question, options, answer_word))
            choices = tuple(f"{sep}{LETTERS[j]}" for j in range(len(options)))
            items.append(Item(f"{subject}/{i}", ChoiceRequest(head, shot_text, context, choices), gold, subject))
    return items


def build_mmlu(style: Style, k: int, home: Home | None = None) -> list[Item]:
    def header(subject: str) -> str:
        return f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"
    return letter_items(data.mmlu("test", home), data.mmlu("dev", home), style, k, header,
                        lambda r: (r["question"], r["choices"], int(r["answer"])), "Answer:", " ")


def _letter_row(question_key: str, answer_key: str):
    return lambda r: (r[question_key], [r[c] for c in LETTERS], LETTERS.index(r[answer_key].strip()))


def build_ceval(style: Style, k: int, home: Home | None = None) -> list[Item]:
    return letter_items(data.ceval("val"), data.ceval("dev"), style, k,
                        lambda s: f"以下是中国关于{s.replace('_', ' ')}考试的单项选择题，请选出其中的正确答案。\n\n",
                        _letter_row("question", "answer"), "答案：", "")


def build_cmmlu(style: Style, k: int, home: Home | None = None) -> list[Item]:
    return letter_items(data.cmmlu("test"), data.cmmlu("dev"), style, k,
                        lambda s: f"以下是关于{s.replace('_', ' ')}的单项选择题，请直接给出正确答案的选项。\n\n",
                        _letter_row("Question", "Answer"), "答案：", "")


def _hellaswag_clean(text: str) -> str:
    text = text.strip().replace(" [title]", ". ")
    return re.sub(r"\[.*?\]", "", text).replace("  ", " ")


def text_items(rows: list[tuple[str, str, list[str], int]], style: Style) -> list[Item]:
    """Items that score option texts: rows of (id, context, options, gold)."""
    sep = "" if style.chat else " "
    items = []
    for rid, context, options, gold in rows:
        head, ctx = style.wrap("", context)
        request = ChoiceRequest(head, (), ctx, tuple(sep + o.strip() for o in options))
        items.append(Item(str(rid), request, gold))
    return items


def build_hellaswag(style: Style, k: int, home: Home | None = None) -> list[Item]:
    rows = []
    for r in data.hellaswag(home):
        context = _hellaswag_clean(f"{r['activity_label']}: {r['ctx_a']} {r['ctx_b'].capitalize()}")
        rows.append((r["ind"], context, [_hellaswag_clean(e) for e in r["endings"]], int(r["label"])))
    return text_items(rows, style)


def build_arc(which: str):
    def build(style: Style, k: int, home: Home | None = None) -> list[Item]:
        return text_items([(d["id"], d["query"], d["choices"], int(d["gold"])) for d in data.arc(which, home)], style)
    return build


def option_text(choice: str) -> str:
    """The option as lm-eval counts its length: without the target delimiter (" ") the request adds."""
    return choice.removeprefix(" ")


def run_choice(items: list[Item], score: Callable[[list[Item]], list[ChoiceScore]],
               metric: str = "acc") -> tuple[dict, list[dict]]:
    """Accuracy (raw, per character and per byte of the option, as lm-eval) and one record per item."""
    records, by_group = [], defaultdict(list)
    for item, s in zip(items, score(items), strict=True):
        options = [option_text(c) for c in item.request.choices]
        pred = _argmax(s.logprobs)
        pred_norm = _argmax([lp / max(1, len(o)) for lp, o in zip(s.logprobs, options, strict=True)])
        pred_bytes = _argmax([lp / max(1, len(o.encode())) for lp, o in zip(s.logprobs, options, strict=True)])
        request = item.request
        correct = {"acc": pred == item.gold, "acc_norm": pred_norm == item.gold, "acc_bytes": pred_bytes == item.gold}
        records.append({"id": item.id, "group": item.group, "prompt": request.header + request.context,
                        "shots": s.shots_used, "choices": list(request.choices), "logprobs": s.logprobs,
                        "output": request.choices[pred], "extracted": pred, "pred_norm": pred_norm,
                        "pred_bytes": pred_bytes, "gold": item.gold, "correct": correct["acc"],
                        "correct_norm": correct["acc_norm"], "correct_bytes": correct["acc_bytes"],
                        "score": float(correct.get(metric, correct["acc"]))})
        by_group[item.group].append(pred == item.gold)
    n = len(records)
    metrics = {"acc": sum(r["correct"] for r in records) / n, "acc_norm": sum(r["correct_norm"] for r in records) / n,
               "acc_bytes": sum(r["correct_bytes"] for r in records) / n, "n": n}
    if len(by_group) > 1:
        metrics["acc_macro"] = sum(sum(v) / len(v) for v in by_group.values()) / len(by_group)
    return metrics, records


def _argmax(values: list[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)
