"""The scorecard (markdown + PNG) beside DeepSeek LLM's published numbers, and MLflow logging.

Reference numbers: DeepSeek LLM (arXiv 2401.02954), Table 5 (base models) and Table 6 (base vs
chat). A scorecard sets the model only beside the columns of its own prompting mode: base prompting
beside DeepSeek's Base models, chat prompting beside their Chat models. Tasks whose data was not
available are listed as such, with the reason. Only values copied with confidence are filled in; the others are left blank. Their
C-Eval is the test split (ours is val: test answers are not public), and their evaluation
prompts differ in detail, so the columns are context, not a target to match exactly.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from components.config import EvalConfig
from components.evaluate.registry import TASKS

COLUMNS = ("DeepSeek 7B Base", "DeepSeek 7B Chat", "DeepSeek 67B Base", "DeepSeek 67B Chat")
REFERENCE: dict[str, tuple[float | None, ...]] = {
    "hellaswag": (75.4, 68.5, 84.0, 75.7),
    "mmlu": (48.2, 49.4, 71.3, 71.1),
    "arc_easy": (67.9, None, 76.9, None),
    "arc_challenge": (48.1, None, 59.0, None),
    "gsm8k": (17.4, 63.0, 63.4, 84.1),
    "math": (6.0, 15.8, 18.7, 32.6),
    "humaneval": (26.2, 48.2, 42.7, 73.8),
    "mbpp": (39.0, 35.2, 57.4, 61.4),
    "ceval": (45.0, 47.0, 66.1, 65.2),
    "cmmlu": (47.2, 49.7, 70.8, 67.8),
}


UNSCALED = {"bpb", "rating"}
"""Metrics shown as they are (bits per byte, a judge's 1-10 rating), not in percent."""


def columns_for(mode: str) -> list[int]:
    """Indices of the DeepSeek columns that match a prompting mode ("base" or "chat")."""
    word = "Chat" if mode == "chat" else "Base"
    return [i for i, col in enumerate(COLUMNS) if col.endswith(word)]


def headline(task: str, metrics: dict) -> tuple[str, float | None]:
    """(metric name, value) shown for a task: its primary metric, in percent unless it is bpb."""
    name = TASKS[task].metric if task in TASKS else next(iter(metrics), "")
    value = metrics.get(name)
    if not isinstance(value, int | float) or isinstance(value, bool) or (isinstance(value, float)
                                                                          and math.isnan(value)):
        return name, None
    return name, float(value) if name in UNSCALED else 100.0 * float(value)


def _cell(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def scorecard_markdown(results: dict[str, dict], model: str, mode: str, cfg: EvalConfig | None = None,
                       not_available: dict[str, str] | None = None) -> str:
    limit = f", {cfg.limit} samples per task" if cfg and cfg.limit else ""
    cols = columns_for(mode)
    lines = [f"# Scorecard: `{model}`", "",
             f"Prompting: **{mode}**{limit}; compared with DeepSeek's {'Chat' if mode == 'chat' else 'Base'} models "
             "only. Accuracy and pass@k in %.", "",
             "| task | metric | n | this model | " + " | ".join(COLUMNS[i] for i in cols) + " |",
             "|---|---|---|---|" + "---|" * len(cols)]
    for task, metrics in results.items():
        name, value = headline(task, metrics)
        digits = 3 if name == "bpb" else 2 if name == "rating" else 1
        refs = REFERENCE.get(task, (None,) * len(COLUMNS))
        lines.append(f"| {task} | {name} | {metrics.get('n', '')} | {_cell(value, digits)} | "
                     + " | ".join(_cell(refs[i]) for i in cols) + " |")
    for task, reason in (not_available or {}).items():
        refs = REFERENCE.get(task, (None,) * len(COLUMNS))
        shown = reason.split(" (")[0] if reason.startswith("not run") else "not available"
        lines.append(f"| {task} | | | {shown} | " + " | ".join(_cell(refs[i]) for i in cols) + " |")
    lines += ["", "DeepSeek columns: arXiv 2401.02954, Tables 5 and 6 (blank = not copied). Their C-Eval numbers "
              "are on the test split; ours on val.", "", "## All metrics", ""]
    for task, metrics in results.items():
        shown = ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}" for k, v in metrics.items())
        lines.append(f"- **{task}**: {shown}")
    if "pairwise" in results:
        lines += head_to_head(results["pairwise"], cfg)
    if not_available:
        lines += ["", "## Not available", ""] + [f"- **{task}**: {reason}" for task, reason in not_available.items()]
    return "\n".join(lines) + "\n"


def head_to_head(metrics: dict, cfg: EvalConfig | None = None) -> list[str]:
    """The pairwise result against the opponent: win/tie/loss, the win rate with its interval, per category."""
    opponent = cfg.opponent if cfg is not None else None
    name = getattr(opponent, "model", opponent) or "the opponent"
    lines = ["", f"## Head to head against `{name}`", "",
             f"Judged by `{cfg.judge.model}` at {cfg.judge.url}, both answer orders." if cfg and cfg.judge else "",
             f"{metrics.get('wins', 0)} wins, {metrics.get('ties', 0)} ties, {metrics.get('losses', 0)} losses over "
             f"{metrics.get('n', 0)} questions ({metrics.get('unparsed', 0)} quarantined: no usable verdict); win rate "
             f"(ties half) {_pct(metrics.get('win_rate'))}, 95% bootstrap interval {_pct(metrics.get('win_rate_low'))}"
             f"–{_pct(metrics.get('win_rate_high'))}; the two orders agreed on {_pct(metrics.get('consistency'))}.", ""]
    per = {k.split(".", 1)[1]: v for k, v in metrics.items() if k.startswith("win_rate.")}
    if per:
        lines += ["| category | win rate |", "|---|---|", *[f"| {c} | {_pct(v)} |" for c, v in per.items()]]
    return lines


def _pct(value) -> str:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return f"{100 * value:.1f}%" if ok else "–"


def scorecard_png(results: dict[str, dict], path: Path, model: str, mode: str = "base") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    tasks = [t for t in results if headline(t, results[t])[0] not in UNSCALED]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(tasks) + 2), 4.2))
    if tasks:
        series = [("this model", [headline(t, results[t])[1] for t in tasks])]
        series += [(COLUMNS[i], [REFERENCE.get(t, (None,) * 4)[i] for t in tasks]) for i in columns_for(mode)]
        width, x = 0.8 / len(series), np.arange(len(tasks))
        for i, (label, values) in enumerate(series):
            ax.bar(x + i * width - 0.4 + width / 2, [np.nan if v is None else v for v in values], width, label=label)
        ax.set_xticks(x, tasks, rotation=20)
        ax.legend(fontsize=7, ncol=3)
    ax.set_ylabel("score (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{model} ({mode} prompting)"[-90:])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(results: dict[str, dict], report_dir: Path, model: str, mode: str,
                 cfg: EvalConfig | None = None, not_available: dict[str, str] | None = None) -> None:
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "scorecard.md").write_text(scorecard_markdown(results, model, mode, cfg, not_available),
                                             encoding="utf-8")
    scorecard_png(results, report_dir / "scorecard.png", model, mode)


def flat_metrics(results: dict[str, dict]) -> dict[str, float]:
    """{"gsm8k.exact_match": 0.1, "humaneval.pass_at_1": ...} with names MLflow accepts."""
    flat = {}
    for task, metrics in results.items():
        if task == "not_available" or not isinstance(metrics, dict):
            continue
        for name, value in metrics.items():
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                flat[re.sub(r"[^\w./ -]", "_", f"{task}.{name}".replace("@", "_at_"))] = float(value)
    return flat


def log_mlflow(results: dict[str, dict], out_dir: Path | None, model: str, cfg: EvalConfig,
               experiment: str = "dsllm-eval", tracking_uri: str | None = None) -> str:
    """Log metrics per task, the config and the report + samples folders to a new MLflow run; its id."""
    import mlflow

    from components.home import use_mlflow_experiment

    use_mlflow_experiment(experiment, tracking_uri=tracking_uri)
    with mlflow.start_run(run_name=f"eval {Path(model).name or model}") as run:
        mlflow.log_params({"model": model, **{k: str(v) for k, v in cfg.model_dump().items()}})
        mlflow.log_metrics(flat_metrics(results))
        for sub in ("report", "samples"):
            if out_dir is not None and (out_dir / sub).is_dir():
                mlflow.log_artifacts(str(out_dir / sub), sub)
        return run.info.run_id
