"""Metric names on a registry run, which way is better, and which metrics the gate compares.

Eval metrics keep the names `dsllm eval` gives them (`task.metric`, e.g. gsm8k.exact_match,
humaneval.pass_at_1, bpb.bpb_en); training counts of the lineage are logged as
`train.<stage>.<count>` (train.pretrain.val_loss.en, train.dpo.reward_accuracy_dpo). The key
metrics of a version (shown by `dsllm models ls`) are each eval task's headline metric, the chat
replies' language-match and stop rates, and, for a base model without an evaluation, its validation
bits per byte. The gate compares versions on per-item evidence (compare.py), never on per-token
losses, which depend on the tokenizer.
"""

from __future__ import annotations

import math
import re

from components.evaluate.report import flat_metrics, headline

LOWER_IS_BETTER = {"bpb", "loss", "ppl", "perplexity"}
"""Name parts of metrics where smaller is better (bits per byte, losses, perplexities)."""


def metric_name(name: str) -> str:
    """A name as MLflow stores it (the same rule as components.evaluate.report.flat_metrics)."""
    return re.sub(r"[^\w./ -]", "_", name.replace("@", "_at_"))


def lower_is_better(name: str) -> bool:
    return bool(LOWER_IS_BETTER & set(re.split(r"[._]", name.lower())))


def eval_metrics(results: dict[str, dict]) -> dict[str, float]:
    """The evaluate artifact's counts ({task: {metric: value}}) as flat, finite run metrics."""
    return flat_metrics({task: m for task, m in results.items() if isinstance(m, dict)})


def train_metrics(counts_by_stage: dict[str, dict]) -> dict[str, float]:
    """Numeric, finite training counts as `train.<stage>.<path>` metrics."""
    flat: dict[str, float] = {}

    def visit(node, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                visit(value, f"{prefix}.{key}")
        elif isinstance(node, int | float) and not isinstance(node, bool) and math.isfinite(node):
            flat[metric_name(prefix)] = float(node)

    for stage, counts in counts_by_stage.items():
        visit(counts, f"train.{stage}")
    return flat


def key_metrics(results: dict[str, dict] | None, metrics: dict[str, float]) -> list[str]:
    """The metrics that sum a version up: each task's headline metric and the chat rates, else the base model's
    validation bits per byte."""
    names = [metric_name(f"{task}.{headline(task, m)[0]}") for task, m in (results or {}).items()
             if isinstance(m, dict)] + ["chat.language_match", "chat.stop_rate"]
    if not results:
        names.insert(0, "train.pretrain.val_bpb")
    return [n for n in names if n in metrics]
