"""Metric names on a registry run, which way is better, and which metrics the gate compares.

Eval metrics keep the names `dsllm eval` gives them (`task.metric`, e.g. gsm8k.exact_match,
humaneval.pass_at_1, bpb.bpb_en); training counts of the lineage are logged as
`train.<stage>.<count>` (train.pretrain.val_loss.en, train.dpo.reward_accuracy_dpo). The key
metrics of a version are each eval task's headline metric, or, for a base model without an
evaluation, its per-domain validation loss: those are compared against the `approved` version.
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
    """The metrics the gate compares: each task's headline metric, else the base model's validation losses."""
    if results:
        names = [metric_name(f"{task}.{headline(task, m)[0]}") for task, m in results.items() if isinstance(m, dict)]
        return [n for n in names if n in metrics]
    return sorted(n for n in metrics if n.startswith("train.pretrain.val_loss"))
