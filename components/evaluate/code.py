"""Code tasks: HumanEval (0-shot) and MBPP (3-shot), pass@k over n samples, run in the sandbox.

Base models continue the HumanEval function signature (stopping at the next top-level statement)
or complete an MBPP `[BEGIN] ... [DONE]` block after three worked examples (MBPP tasks 2-4, the
prompt of Austin et al. 2021 that DeepSeek uses). Chat models are asked for a ```python block.
pass@k uses the unbiased estimator of Chen et al. 2021: 1 - C(n-c, k) / C(n, k). A record's `score`
is its share of passing samples (pass@1's per-problem value). A program passes only when the sandbox
saw it run to its end (see sandbox.py): a completion that exits before the tests fails.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

import numpy as np

from components.evaluate import data
from components.evaluate.lm import GenRequest
from components.evaluate.sandbox import Sandbox
from components.evaluate.task import Item, Style, prompt_text
from components.home import Home

HUMANEVAL_STOP = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
MBPP_SHOTS = [
    {"text": "Write a function to find the similar elements from the given two tuple lists.",
     "code": "def similar_elements(test_tup1, test_tup2):\n  res = tuple(set(test_tup1) & set(test_tup2))\n  return (res) ",
     "test_list": ["assert similar_elements((3, 4, 5, 6),(5, 7, 4, 10)) == (4, 5)",
                   "assert similar_elements((1, 2, 3, 4),(5, 4, 3, 7)) == (3, 4)",
                   "assert similar_elements((11, 12, 14, 13),(17, 15, 14, 13)) == (13, 14)"]},
    {"text": "Write a python function to identify non-prime numbers.",
     "code": "import math\ndef is_not_prime(n):\n    result = False\n    for i in range(2,int(math.sqrt(n)) + 1):\n"
             "        if n % i == 0:\n            result = True\n    return result",
     "test_list": ["assert is_not_prime(2) == False", "assert is_not_prime(10) == True",
                   "assert is_not_prime(35) == True"]},
    {"text": "Write a function to find the largest integers from a given list of numbers using heap queue algorithm.",
     "code": "import heapq as hq\ndef heap_queue_largest(nums,n):\n  largest_nums = hq.nlargest(n, nums)\n"
             "  return largest_nums",
     "test_list": ["assert heap_queue_largest( [25, 35, 22, 85, 14, 65, 75, 22, 58],3)==[85, 75, 65] ",
                   "assert heap_queue_largest( [25, 35, 22, 85, 14, 65, 75, 22, 58],2)==[85, 75] ",
                   "assert heap_queue_largest( [25, 35, 22, 85, 14, 65, 75, 22, 58],5)==[85, 75, 65, 58, 35]"]},
]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for n samples of which c passed."""
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def code_block(text: str) -> str:
    """The first fenced code block of a chat answer (the whole text when there is none)."""
    found = re.search(r"```(?:python|py)?[^\n]*\n(.*?)(?:```|$)", text, re.DOTALL)
    return found.group(1) if found else text


def build_humaneval(style: Style, k: int, home: Home | None = None, max_new_tokens: int = 512,
                    n: int = 1, temperature: float = 0.0) -> list[Item]:
    rows = data.first_available("humaneval", "openai/openai_humaneval", None, "test", lambda: data.humaneval(home))
    items = []
    for row in rows:
        if style.chat:
            head, context = style.wrap("", f"Complete the following Python function:\n```python\n{row['prompt']}```")
            request = GenRequest(head, (), context, (), max_new_tokens, n, temperature)
        else:
            request = GenRequest("", (), row["prompt"], HUMANEVAL_STOP, max_new_tokens, n, temperature)
        gold = {"prompt": row["prompt"], "test": row["test"], "entry_point": row["entry_point"],
                "canonical": row["canonical_solution"], "chat": style.chat}
        items.append(Item(row["task_id"], request, gold))
    return items


def humaneval_program(item: Item, completion: str) -> str:
    gold = item.gold
    body = completion
    if gold["chat"]:
        body = code_block(completion)
        if re.search(rf"def\s+{re.escape(gold['entry_point'])}\s*\(", body):
            body = "\n" + body  # a whole function: it replaces the docstring-only stub
    return f"{gold['prompt']}{body}\n\n{gold['test']}\n\ncheck({gold['entry_point']})\n"


def mbpp_task(text: str, tests: list[str]) -> str:
    joined = "\n".join(tests)
    return f"You are an expert Python programmer, and here is your task: {text} Your code should pass these tests:\n\n{joined}\n"


def build_mbpp(style: Style, k: int, home: Home | None = None, max_new_tokens: int = 512,
               n: int = 1, temperature: float = 0.0) -> list[Item]:
    rows = data.first_available("mbpp", "google-research-datasets/mbpp", "full", "test", lambda: data.mbpp(home))
    shots = tuple(f"{mbpp_task(s['text'], s['test_list'])}[BEGIN]\n{s['code']}\n[DONE]\n\n" for s in MBPP_SHOTS[:k])
    items = []
    for row in rows:
        task = mbpp_task(row["text"], row["test_list"])
        if style.chat:
            head, context = style.wrap("", task + "Write the Python code in a ```python code block.")
            request = GenRequest(head, (), context, (), max_new_tokens, n, temperature)
        else:
            request = GenRequest("", shots, task + "[BEGIN]\n", ("[DONE]",), max_new_tokens, n, temperature)
        gold = {"tests": row["test_list"], "setup": row.get("test_setup_code") or "", "canonical": row["code"],
                "chat": style.chat}
        items.append(Item(str(row["task_id"]), request, gold))
    return items


def mbpp_program(item: Item, completion: str) -> str:
    gold = item.gold
    code = code_block(completion) if gold["chat"] else completion
    # The setup code builds test inputs from the solution's own classes (task 367), so it comes after it.
    return f"{code}\n\n{gold['setup']}\n" + "\n".join(gold["tests"]) + "\n"


def run_code(items: list[Item], generate: Callable[[list[Item]], list[list[str]]],
             program: Callable[[Item, str], str], sandbox: Sandbox, ks: list[int],
             progress: Callable[[], None] | None = None) -> tuple[dict, list[dict]]:
    """pass@k for each k <= samples per problem, and the count of each sandbox verdict."""
    outputs = generate(items)
    flat = [(i, out) for i, outs in enumerate(outputs) for out in outs]
    results = sandbox.run_many([program(items[i], out) for i, out in flat], progress)
    per_item: list[list] = [[] for _ in items]
    for (i, out), res in zip(flat, results, strict=True):
        per_item[i].append((out, res))
    records, statuses = [], Counter(r.status for r in results)
    for item, runs in zip(items, per_item, strict=True):
        passed = sum(r.passed for _, r in runs)
        records.append({"id": item.id, "prompt": prompt_text(item.request), "output": runs[0][0],
                        "extracted": program(item, runs[0][0]), "gold": item.gold["canonical"],
                        "correct": runs[0][1].passed, "outputs": [o for o, _ in runs],
                        "status": [r.status for _, r in runs], "messages": [r.message[-500:] for _, r in runs],
                        "passed": passed, "samples": len(runs), "score": passed / len(runs)})
    n_samples = len(per_item[0]) if per_item else 0
    metrics = {f"pass@{k}": float(np.mean([pass_at_k(len(runs), sum(r.passed for _, r in runs), k)
                                           for runs in per_item])) for k in ks if k <= n_samples}
    metrics.update({"n": len(items), "samples": len(results), **{s: statuses.get(s, 0) for s in
                                                                   ("pass", "fail", "timeout", "error")}})
    return metrics, records
