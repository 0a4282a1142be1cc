"""`dsllm demo up | down | status | reload`: the Gradio chat demo as a background process of the home."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from components.home import Home
from components.services import ServiceError
from components.services import demo as demo_proc
from components.serving.config import DemoConfig

demo_app = typer.Typer(help="The chat demo: start, stop, status, reload (serves models:/dsllm-chat@approved).",
                       no_args_is_help=True)
console = Console()

ModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="models:/NAME@ALIAS (default "
                                              "models:/dsllm-chat@approved), models:/NAME/VERSION or a directory")]
PortOpt = Annotated[int | None, typer.Option("--port", help="HTTP port (default $DSLLM_DEMO_PORT or 7860)")]
PollOpt = Annotated[float | None, typer.Option("--poll-s", help="seconds between alias checks (0 = off)")]


def _config(model: str | None = None, port: int | None = None, poll_s: float | None = None) -> DemoConfig:
    try:
        return DemoConfig.resolve(model=model, port=port, poll_s=poll_s)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


@demo_app.command("up")
def up(model: ModelOpt = None, port: PortOpt = None, poll_s: PollOpt = None) -> None:
    """Start the demo in the background (or leave a running one alone) and wait until it serves."""
    cfg = _config(model, port, poll_s)
    try:
        with console.status(f"starting the demo on {cfg.url} ({cfg.model})"):
            state = demo_proc.up(cfg=cfg)
    except ServiceError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"demo: serving {state['label']} at {cfg.url} (pid {demo_proc.running_pid()})")


@demo_app.command("down")
def down(port: PortOpt = None) -> None:
    """Stop the demo this home started."""
    pid = demo_proc.down(cfg=_config(port=port))
    console.print("demo: not running" if pid is None else f"demo: stopped (pid {pid})")


@demo_app.command("status")
def status(port: PortOpt = None) -> None:
    """What the demo serves; exits 1 when it is not running."""
    cfg, pid = _config(port=port), demo_proc.running_pid()
    state = demo_proc.served(cfg)
    if state is None:
        console.print(f"demo: {'not answering' if pid else 'stopped'} on {cfg.url}"
                      f"{f' (pid {pid}); see the log ' + str(demo_proc.log_path(Home.resolve())) if pid else ''}")
        raise typer.Exit(1)
    table = Table("demo", "value")
    loaded = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(state["loaded_at"])) if state.get("loaded_at") else "-"
    for key, value in [("url", cfg.url), ("OpenAI API", f"{cfg.url}/v1"),
                       ("pid", str(pid or "- (not started by this home)")),
                       ("serving", state["label"]), ("reference", state["ref"]), ("loaded", loaded),
                       ("swaps", str(state["swaps"])), ("replies", str(state["replies"])),
                       ("in flight", str(state.get("active", 0))),
                       ("last error", state["last_error"] or "-")]:
        table.add_row(key, value)
    console.print(table)


@demo_app.command("deploy")
def deploy(model: Annotated[str, typer.Option(help="registered model name")] = "dsllm-chat",
           alias: Annotated[str, typer.Option(help="the alias to serve")] = "approved") -> None:
    """Serve models:/MODEL@ALIAS now (the deploy_demo flow): start the demo when down, else swap, and wait."""
    from dsllm.cli import use_services

    use_services()  # the flow run shows in the Prefect UI when `dsllm up` runs
    from flows.demo import deploy_demo

    if alias == "approved" and (why := _nothing_approved(model)):
        console.print(f"[red]The demo has nothing to serve: {why}.[/red]\nThe pipeline's summary above holds the "
                      f"gate's decision table. `dsllm promote {model} N` approves version N by hand; "
                      f"`dsllm demo up --model models:/{model}/N` serves it without approval.")
        raise typer.Exit(1)
    try:
        version = deploy_demo(model=model, alias=alias)
    except (ServiceError, ValueError, LookupError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(_last_screen(model, alias, version))


def _nothing_approved(model: str) -> str | None:
    """Why no version of `model` is approved (the gate's reasons), or None when one is (or the registry cannot
    tell: the flow then reports what it finds)."""
    from components.home import mlflow_client
    from components.registry.audit import alias_version
    from flows.summary import serving_reason

    try:
        client = mlflow_client(Home.resolve())
        if alias_version(client, model, "approved") is not None:
            return None
        return serving_reason(client, model).removeprefix("nothing: ")
    except Exception:  # noqa: BLE001 - a registry that does not answer is the flow's to report
        return None


def _last_screen(model: str, alias: str, version: str | None) -> Table:
    """What `make pipeline` ends on: the version served and why (the gate's reason when a newer one was refused),
    and where to look."""
    from components.home import mlflow_client
    from flows.summary import serving_reason, ui_urls

    home = Home.resolve()
    why = serving_reason(mlflow_client(home), model, version) if alias == "approved" else f"v{version}"
    table = Table("demo", "", title=f"demo serves {model} v{version} (@{alias})", title_justify="left",
                  show_header=False)
    table.add_row("serving", why)
    for name, url in ui_urls(home).items():
        table.add_row(name, url)
    return table


@demo_app.command("reload")
def reload(port: PortOpt = None) -> None:
    """Make the running demo check its reference now and swap to what it points at."""
    try:
        state = demo_proc.reload(_config(port=port))
    except ServiceError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"demo: serving {state['label']}")
