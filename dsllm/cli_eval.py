"""`dsllm eval`: evaluate any HF causal LM (directory, dsllm:// artifact or models:/NAME@ALIAS)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from components.config import EvalConfig
from components.evaluate.registry import TASKS, parse_tasks
from components.home import Home

console = Console()


def _config(**fields) -> EvalConfig:
    try:
        return EvalConfig(**fields)
    except ValidationError as exc:
        for error in exc.errors():
            console.print(f"[red]--{'-'.join(str(p) for p in error['loc']).replace('_', '-')}: {error['msg']}[/red]")
        raise typer.Exit(2) from None


def eval_command(
    model: Annotated[str, typer.Option("--model", "-m", help="HF model directory, dsllm:// artifact or "
                                       "models:/NAME@ALIAS")],
    tasks: Annotated[str, typer.Option("--tasks", "-t", help=f"Comma-separated, of: {', '.join(TASKS)}")] =
        "gsm8k,humaneval,mmlu",
    limit: Annotated[int | None, typer.Option(help="Samples per task (a fixed random subset)")] = None,
    pack: Annotated[str | None, typer.Option(help="Pack artifact (dsllm://pack/<key> or dir) for bpb")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default <home>/eval/<model>-<time>)")] = None,
    mode: Annotated[str, typer.Option(help="auto (by the model's kind: pretrain/dsllm-base -> base, sft/dpo/"
                                      "dsllm-chat -> chat), chat or base prompting")] = "auto",
    n_samples: Annotated[int, typer.Option(help="Samples per code problem for pass@k")] = 1,
    max_new_tokens: Annotated[int, typer.Option(help="Generation budget")] = 512,
    batch_size: Annotated[int, typer.Option(help="Sequences per forward pass")] = 8,
    sandbox_timeout: Annotated[float, typer.Option(help="Seconds per code sample")] = 10.0,
    cache: Annotated[bool, typer.Option(help="Reuse cached model results")] = True,
    mlflow: Annotated[bool, typer.Option(help="Log metrics and the report to MLflow")] = True,
    judge_url: Annotated[str | None, typer.Option(help="Judge of pairwise/graded/exam: an OpenAI-compatible base "
                                                  "URL, e.g. http://127.0.0.1:7860/v1 (none: they are not run)")] = None,
    judge_model: Annotated[str | None, typer.Option(help="The judge's model name (default: the first it lists)")] = None,
    judge_key_env: Annotated[str | None, typer.Option(help="Environment variable holding the judge's API key")] = None,
    judge_max_tokens: Annotated[int, typer.Option(help="The judge's reply budget")] = 512,
    opponent: Annotated[str | None, typer.Option(help="pairwise: contestant B, a model (models:/NAME/VERSION, "
                                                 "directory, dsllm://) or an endpoint URL#MODEL")] = None,
    opponent_key_env: Annotated[str | None, typer.Option(help="Environment variable with the opponent "
                                                        "endpoint's API key")] = None,
    exam_file: Annotated[list[str] | None, typer.Option(help="exam: a local jsonl file (question, solution, "
                                                        "points); repeatable")] = None,
) -> None:
    """Evaluate a model on registered tasks; print the metrics and write a scorecard."""
    from components.evaluate.runner import evaluate

    try:
        names = [t.name for t in parse_tasks(tasks)]
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    try:
        judged = _judged(judge_url, judge_model, judge_key_env, opponent, opponent_key_env)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    cfg = _config(tasks=names, limit=limit, mode=mode, n_samples=n_samples, max_new_tokens=max_new_tokens,
                  batch_size=batch_size, sandbox_timeout_s=sandbox_timeout, cache=cache,
                  judge_max_tokens=judge_max_tokens, exam_files=exam_file or [], **judged)
    home = Home.resolve()
    slug = re.sub(r"[^\w.-]+", "_", model.rstrip("/").split("/")[-1] or "model")
    out = out or home.root / "eval" / f"{slug}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        results = evaluate(model, cfg=cfg, pack=pack, out_dir=out, home=home)
    except (ValueError, FileNotFoundError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    _print(results)
    console.print(f"scorecard: {out / 'report' / 'scorecard.md'}\nsamples:   {out / 'samples'}")
    if mlflow:
        from components.evaluate.report import log_mlflow

        console.print(f"MLflow run: {log_mlflow(results, out, model, cfg)}")


def _judged(url: str | None, model: str | None, key_env: str | None, opponent: str | None,
            opponent_key_env: str | None) -> dict:
    """The judge and opponent settings of EvalConfig from the flags (the judge's model asked of it when not given)."""
    from components.config import EndpointConfig
    from components.evaluate.judge.client import served_model

    out: dict = {}
    if url:
        out["judge"] = EndpointConfig(url=url, model=model or served_model(url, key_env), api_key_env=key_env)
    if opponent:
        is_url = opponent.startswith(("http://", "https://"))
        out["opponent"] = EndpointConfig.parse(opponent, opponent_key_env) if is_url else opponent
    return out


def _print(results: dict[str, dict]) -> None:
    table = Table("task", "metric", "value")
    for task, metrics in results.items():
        if task == "not_available":
            metrics = {name: reason.split(" (")[0] for name, reason in metrics.items()}
        for name, value in metrics.items():
            table.add_row(task, name, f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)
