"""`dsllm promote`, `dsllm rollback` and `dsllm models ls`: manual alias moves through the registry's audit trail
(approver, time, comment, history on the version), each announced as the Prefect event the deploy_demo
deployment listens to, when a Prefect API is reachable."""

from __future__ import annotations

import getpass
import json
import os
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()
models_app = typer.Typer(help="The model registry in MLflow: versions, aliases, gate decisions.", no_args_is_help=True)

ByOpt = Annotated[str | None, typer.Option("--by", help="Who decides (default: your user name)")]
CommentOpt = Annotated[str, typer.Option("--comment", "-m", help="Why (recorded on the version)")]


def register(app: typer.Typer) -> None:
    """Add `promote`, `rollback` and `models` to the main app."""
    app.command("promote")(promote)
    app.command("rollback")(rollback)
    app.add_typer(models_app, name="models")


def _connect() -> str | None:
    """Use the running services (MLflow server, Prefect API) when `dsllm up` started them; the Prefect API URL
    when one answers, else None."""
    from components.services import ServiceError, client_env
    from components.services.specs import http_ok

    try:
        env = client_env()
    except ServiceError:
        env = {}
    for key, value in env.items():
        os.environ.setdefault(key, value)
    api = os.environ.get("PREFECT_API_URL")
    return api if api and http_ok(f"{api.rstrip('/')}/health") else None


def _announce(moves, api: str | None) -> None:
    """Emit one event per alias move; warn (never fail) when no Prefect API is reachable."""
    if not moves:
        return
    if api is None:
        console.print("[yellow]No Prefect API reachable (`dsllm up` starts one): no alias event sent. The "
                      "deploy_demo deployment's polling schedule picks the move up.[/yellow]")
        return
    from prefect.events.worker import EventsWorker

    from flows.registry import announce_alias_move

    for move in moves:
        announce_alias_move(move)
    EventsWorker.drain_all(timeout=15)  # a short-lived process: deliver before exiting
    console.print(f"announced {len(moves)} alias move(s) to {api}")


def _moved(moves) -> None:
    for m in moves:
        console.print(f"{m.name}@{m.alias} → v{m.version} (was {m.from_version or 'unset'})")


def promote(name: Annotated[str, typer.Argument(help="Registered model, e.g. dsllm-chat")],
            version: Annotated[str, typer.Argument(help="Version number to approve")],
            by: ByOpt = None, comment: CommentOpt = "") -> None:
    """Make VERSION the `approved` one (the former one becomes `previous`), recording who, when and why."""
    from components import registry

    api = _connect()
    try:
        moves = registry.promote(name, version, by=by or getpass.getuser(), comment=comment)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    _moved(moves)
    _announce(moves, api)


def rollback(name: Annotated[str, typer.Argument(help="Registered model, e.g. dsllm-chat")],
             by: ByOpt = None, comment: CommentOpt = "") -> None:
    """Point `approved` back at the `previous` version, recording who, when and why."""
    from components import registry

    api = _connect()
    try:
        moves = registry.rollback(name, by=by or getpass.getuser(), comment=comment)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    _moved(moves)
    _announce(moves, api)


@models_app.command("ls")
def models_ls(name: Annotated[str | None, typer.Argument(help="Only this registered model")] = None,
              as_json: Annotated[bool, typer.Option("--json", help="Every field of every version as JSON")] = False
              ) -> None:
    """Versions with their aliases, gate verdicts (and why a version was rejected) and key metrics; fits 80
    columns. --json adds approver, times, artifact, run, baseline and the thresholds met."""
    from components.registry.listing import versions

    _connect()
    try:
        rows = versions(name)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    console.print(versions_table(rows) if rows else
                  "No registered models yet (the pipeline's register_and_gate step adds them).")


GATE_STYLE = {"passed": "green", "rejected": "red"}


def _metrics_cell(row: dict) -> str:
    # name=value without a space: the cell wraps between metrics, never between a name and its value
    shown = "  ".join(f"{'bpb' if k == 'bpb.bpb' else k}={v:.4g}" for k, v in row["metrics"].items())
    if row["gate"] == "rejected" and row["reason"]:
        reason = row["reason"] if len(row["reason"]) <= 160 else row["reason"][:159] + "…"
        shown += f"\n[dim]{escape(reason)}[/dim]"
    return shown or "–"


def versions_table(rows: list[dict]) -> Table:
    """One line (two for a rejection's reason) per version; long cells wrap inside their column."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, expand=False)
    table.add_column("model", no_wrap=True)
    table.add_column("v", justify="right", no_wrap=True)
    table.add_column("aliases", no_wrap=True)
    table.add_column("gate", no_wrap=True)
    table.add_column("key metrics / why rejected", overflow="fold", ratio=1)
    previous = None
    for r in rows:
        style = GATE_STYLE.get(r["gate"])
        gate = f"[{style}]{r['gate']}[/{style}]" if style else r["gate"] or "–"
        table.add_row(r["name"] if r["name"] != previous else "", r["version"], ",".join(r["aliases"]), gate,
                      _metrics_cell(r))
        previous = r["name"]
    return table
