"""What the gate compares, per item: built at registration from the evaluate artifact's `samples/<task>.jsonl`
and logged on the registration run as `gate/evidence.json`, so a later gate can pair two versions' items.

    {"tasks": {task: {"kind", "metric", "settings": {...}, "scores": {id: score}, "choices": {id: k}}},
     "bpb": {"settings": {...}, "docs": {id: [bits, bytes]}},
     "not_available": [task, ...], "no_samples": [task, ...], "quarantined": {task: {reason: count}},
     "trivial": {"unigram_bpb": {...}}}

Only settings that change a task's scores are kept (limit, prompting, few-shot counts, generation budget,
samples per problem, ...): two versions' scores on a task are compared only when these are equal.
Malformed sample lines are skipped and counted by reason, never fatal.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

EVIDENCE_FILE = "gate/evidence.json"
COMMON = ("limit", "mode", "max_length", "dtype")
BY_KIND = {"bpb": (), "choice": (), "generate": ("max_new_tokens",),
           "code": ("max_new_tokens", "n_samples", "temperature", "seed")}
"""Evaluation settings that change a task's per-item scores, beyond its few-shot counts."""


def _prompting(report: Path) -> str | None:
    card = report / "scorecard.md"
    found = re.search(r"Prompting:\s*(\w+)", card.read_text(encoding="utf-8")) if card.is_file() else None
    return found.group(1) if found else None


def settings(task: str, cfg: dict, prompting: str | None) -> dict:
    """The settings a task's scores depend on (the registry's few-shot counts included)."""
    from components.evaluate.registry import TASKS

    spec = TASKS.get(task)
    kind = spec.kind if spec else "unknown"
    chosen = {k: cfg.get(k) for k in (*COMMON, *BY_KIND.get(kind, ())) if k in cfg}
    if kind == "code" and cfg.get("n_samples", 1) == 1:
        chosen.pop("temperature", None), chosen.pop("seed", None)  # greedy: neither matters
    if spec is not None and kind != "bpb":
        chosen |= {"fewshot": spec.fewshot, "chat_fewshot": spec.chat_fewshot}
    return chosen | {"kind": kind, "prompting": prompting}


def _score(record: dict, metric: str) -> float | None:
    """The item's score: `score` as the harness writes it; records of older harnesses: their correctness flag."""
    value = record.get("score")
    if value is None:
        value = record.get("correct_norm" if metric == "acc_norm" else "correct")
    if isinstance(value, bool):
        return float(value)
    return float(value) if isinstance(value, int | float) and value == value else None


def read_samples(path: Path, bad: Counter) -> list[dict]:
    """The records of one samples file; unreadable lines counted in `bad` by reason."""
    records = []
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                bad["unparseable_line"] += 1
                continue
            if not isinstance(record, dict) or record.get("id") in (None, ""):
                bad["no_id"] += 1
            else:
                records.append(record)
    return records


def _task_items(records: list[dict], metric: str, bad: Counter) -> tuple[dict, dict]:
    scores, choices = {}, {}
    for r in records:
        key, value = str(r["id"]), _score(r, metric)
        if value is None:
            bad["no_score"] += 1
        elif key in scores:
            bad["duplicate_id"] += 1
        else:
            scores[key] = value
            k = len(r["choices"]) if isinstance(r.get("choices"), list) else r.get("num_choices")
            if isinstance(k, int) and k >= 2:
                choices[key] = k
    return scores, choices


def _bpb_docs(records: list[dict], bad: Counter) -> dict:
    docs = {}
    for r in records:
        bits, nbytes = r.get("nll_bits"), r.get("bytes")
        if not (isinstance(bits, int | float) and isinstance(nbytes, int | float) and nbytes > 0 and bits >= 0):
            bad["no_nll_bits_or_bytes"] += 1
        elif str(r["id"]) in docs:
            bad["duplicate_id"] += 1
        else:
            docs[str(r["id"])] = [float(bits), float(nbytes)]
    return docs


def available(task: str, metrics) -> bool:
    """A task's results count as measured when they hold its headline metric as a number ('not available', or a
    dict with a status and n = 0, does not): the value the scorecard shows."""
    from components.evaluate.report import headline

    return isinstance(metrics, dict) and headline(task, metrics)[1] is not None


def from_evaluation(eval_dir: Path, manifest: dict) -> dict:
    """The evidence of one evaluate artifact (its directory and manifest)."""
    from components.evaluate.registry import TASKS

    cfg, results = manifest.get("config") or {}, manifest.get("counts") or {}
    # `not_available` is the runner's {task: reason} beside the per-task results, not a task of its own
    names = [t for t in dict.fromkeys([*(cfg.get("tasks") or []), *results]) if t != "not_available"]
    prompting = _prompting(eval_dir / "report") or cfg.get("mode")
    out: dict = {"tasks": {}, "not_available": [], "no_samples": [], "quarantined": {}}
    for task in names:
        path = eval_dir / "samples" / f"{task}.jsonl"
        if not available(task, results.get(task)) or not path.is_file():
            out["not_available" if not available(task, results.get(task)) else "no_samples"].append(task)
            continue
        bad: Counter = Counter()
        records = read_samples(path, bad)
        task_settings = settings(task, cfg, prompting)
        if task_settings["kind"] == "bpb":
            out["bpb"] = {"settings": task_settings, "docs": _bpb_docs(records, bad)}
        else:
            metric = TASKS[task].metric if task in TASKS else "score"
            scores, choices = _task_items(records, metric, bad)
            out["tasks"][task] = {"kind": task_settings["kind"], "metric": metric, "settings": task_settings,
                                  "scores": scores, "choices": choices}
        if bad:
            out["quarantined"][task] = dict(bad)
    return out
