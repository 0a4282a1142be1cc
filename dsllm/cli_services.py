"""`dsllm up | down | status | env | deploy`: the local Prefect, MLflow and Ray services."""

from __future__ import annotations

import functools
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from components import services

console = Console()
_STYLE = {"healthy": "green", "external": "green", "stopped": "dim", "unhealthy": "red", "unreachable": "red"}


def _friendly(command: Callable) -> Callable:
    """A ServiceError (taken port, failed start, bad setting) is a message and exit code 1, not a traceback."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (services.ServiceError, FileNotFoundError) as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
    return wrapper


@_friendly
def up(timeout: Annotated[float, typer.Option(help="Seconds to wait for each service to be healthy")]
       = services.control.START_TIMEOUT_S) -> None:
    """Start the Prefect server + worker, MLflow and Ray (what already runs is left alone)."""
    _report(services.up(console=console, timeout_s=timeout))


@_friendly
def down() -> None:
    """Stop the services this home started and free their ports."""
    services.down(console=console)


@_friendly
def status() -> None:
    """Show each service's state, URL and pid; exit code 1 when one is not healthy."""
    _report(services.status())


@_friendly
def env() -> None:
    """Print `export` lines for the running services: `eval "$(dsllm env)"` points a shell at them."""
    for key, value in services.client_env().items():
        typer.echo(f"export {key}={shlex.quote(value)}")


@_friendly
def deploy(prefect_file: Annotated[Path, typer.Option(help="The prefect.yaml to apply")]
           = services.DEFAULT_PREFECT_FILE) -> None:
    """Register prefect.yaml's deployments (e.g. `pipeline`) on the local Prefect server."""
    done = services.deploy(prefect_file=prefect_file)
    console.print(done.stdout.strip()[-3000:])
    console.print(f"deployments registered; Prefect UI: {services.Settings.resolve().url('prefect')}/deployments")


def _report(states: list[services.ServiceState]) -> None:
    """The status table, the UI URLs and the logs folder; exit code 1 when a service is not healthy."""
    notes = any(st.detail for st in states)
    table = Table("service", "state", "URL", "pid", *(["note"] if notes else []))
    table.columns[2].no_wrap = True  # URLs stay whole, so they can be copied
    for st in states:
        style = _STYLE.get(st.state, "")
        table.add_row(st.name, f"[{style}]{st.state}[/{style}]", st.url, str(st.pid or ""),
                      *([st.detail] if notes else []))
    console.print(table)
    ui = {st.name: st.url for st in states if st.ok and st.name in ("prefect", "mlflow")}
    for name, title in (("prefect", "Prefect UI"), ("mlflow", "MLflow UI")):
        if name in ui:
            console.print(f"{title:<11} {ui[name]}")
    console.print(f"logs        {services.Settings.resolve().home.logs}")
    if not all(st.ok for st in states):
        console.print("[yellow]not all services are healthy: `dsllm up` starts them, the logs say why[/yellow]")
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the service commands to the main `dsllm` app."""
    for command in (up, down, status, env, deploy):
        app.command()(command)
