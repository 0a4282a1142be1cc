"""What a person looks at after SFT or DPO: sample replies before and after, curves, live MLflow values.

Files go to `out_dir/report/` (the flow logs that folder to the stage's MLflow run);
`log_samples_table` adds the samples as an MLflow table when the stage runs inside an MLflow run
(`components.home.stage_mlflow_run`), and does nothing otherwise.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

# mlflow_target() -> (run id, tracking URI) of the stage's MLflow run, or (None, None) outside one
from components.home import stage_mlflow_run as mlflow_target

_CJK = re.compile(r"[\u3400-\u9fff]")


def language(text: str) -> str:
    return "zh" if _CJK.search(text) else "en"


def sample_rows(before: list[dict], after: list[dict]) -> list[dict]:
    """One row per prompt: the reply before and after the stage, and whether each stopped at eos."""
    return [{"prompt": b["prompt"], "lang": language(b["prompt"]), "before": b["reply"], "after": a["reply"],
             "before_stopped_at_eos": b["stopped_at_eos"], "after_stopped_at_eos": a["stopped_at_eos"],
             "before_repetitive": b["repetitive"], "after_repetitive": a["repetitive"]}
            for b, a in zip(before, after, strict=True)]


def _cell(text: str, limit: int = 300) -> str:
    text = text if len(text) <= limit else text[:limit] + "…"
    return text.replace("|", "\\|").replace("\n", "<br>") or "∅"


def write_samples(rows: list[dict], report: Path, stage: str, before: str, after: str) -> None:
    """samples_before_after.json and .md (a table; ✓ = the reply stopped at eos)."""
    report.mkdir(parents=True, exist_ok=True)
    (report / "samples_before_after.json").write_text(json.dumps(rows, ensure_ascii=False, indent=2))
    lines = [f"# {stage}: replies before ({before}) and after ({after})", "",
             "Greedy decoding; ✓ = stopped at eos, ↻ = ends in a loop.", "",
             f"| lang | prompt | {before} | {after} |", "|---|---|---|---|"]
    for r in rows:
        mark_b = ("✓ " if r["before_stopped_at_eos"] else "") + ("↻ " if r["before_repetitive"] else "")
        mark_a = ("✓ " if r["after_stopped_at_eos"] else "") + ("↻ " if r["after_repetitive"] else "")
        lines.append(f"| {r['lang']} | {_cell(r['prompt'])} | {mark_b}{_cell(r['before'])} | "
                     f"{mark_a}{_cell(r['after'])} |")
    (report / "samples_before_after.md").write_text("\n".join(lines) + "\n")


def plot_curves(log_history: list[dict], panels: dict[str, list[str]], path: Path, title: str) -> None:
    """One panel per entry of `panels` (panel title → metric names), each metric against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (panel, names) in zip(axes[0], panels.items(), strict=True):
        for name in names:
            points = [(h["step"], h[name]) for h in log_history if name in h and "step" in h]
            if points:
                ax.plot(*zip(*points, strict=True), marker="o" if len(points) < 30 else None, ms=3, label=name)
        ax.set_title(panel)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def log_samples_table(stage: str, rows: list[dict]) -> bool:
    """The samples as an MLflow table on the stage's run (the flow logs the counts); False when there is no run."""
    run_id, uri = mlflow_target()
    if run_id is None:
        return False
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    client.log_table(run_id, {k: [r[k] for r in rows] for k in rows[0]} if rows else {"prompt": []},
                     artifact_file=f"{stage}_samples.json")
    return True
