"""The `dsllm` command line: services, configs, artifacts, sources and pipeline runs."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from components.artifacts import ArtifactDamaged, ArtifactStore
from components.home import Home, export_env
from components.presets import PRESETS, ConfigError, load_config
from dsllm import cli_registry, cli_services, errors
from dsllm.cli_demo import demo_app
from dsllm.cli_scaling import recommended_overrides, scaling_app
from dsllm.cli_sources import sources_app
from flows.stages import PIPELINE_STAGES, check_until

export_env()
app = typer.Typer(help="dsllm: the DeepSeek LLM recipe end to end.", no_args_is_help=True)
config_app = typer.Typer(help="Show and check configurations.", no_args_is_help=True)
artifacts_app = typer.Typer(help="Inspect and clean content-addressed stage outputs.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(artifacts_app, name="artifacts")
app.add_typer(sources_app, name="sources")
app.add_typer(demo_app, name="demo")
app.add_typer(scaling_app, name="scaling")
cli_services.register(app)
cli_registry.register(app)
console = Console()

PresetOpt = Annotated[str | None, typer.Option("--preset", "-p", help=f"One of: {', '.join(PRESETS)}")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML file of config overrides")]
# what a run uses when the matching service is not up
_SHOWN = {"PREFECT_API_URL": "an embedded Prefect server", "MLFLOW_TRACKING_URI": "MLflow's SQLite file in the home",
          "RAY_ADDRESS": "a local Ray"}
SetOpt = Annotated[list[str] | None, typer.Option("--set", "-s", help="Override, e.g. pretrain.lr=3e-4")]


def resolve_config(preset: str | None, config: Path | None, overrides: list[str] | None):
    """Load and validate a config, or exit with the validation message (before any work)."""
    try:
        return load_config(preset, config, overrides or [])
    except (ConfigError, FileNotFoundError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


@config_app.command("show")
def config_show(preset: PresetOpt = None, config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Print the resolved, validated config as YAML."""
    import yaml

    cfg = resolve_config(preset, config, set_)
    typer.echo(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True))


@artifacts_app.command("ls")
def artifacts_ls(stage: Annotated[str | None, typer.Option(help="Only this stage")] = None) -> None:
    """List finished artifacts (damaged ones, e.g. with an unreadable manifest, are marked)."""
    table = Table("uri", "size", "created", "last used", "state")
    for row in ArtifactStore().list():
        if stage and row["stage"] != stage:
            continue
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(row["last_used"]))
        table.add_row(row["uri"], _human(row["bytes"]), row["created"], used,
                      f"[red]DAMAGED: {row['damaged']}[/red]" if row["damaged"] else "ok")
    console.print(table)


@artifacts_app.command("show")
def artifacts_show(uri: str) -> None:
    """Print an artifact's manifest (`dsllm://stage/key` or `stage/key`)."""
    store = ArtifactStore()
    try:
        path = store.resolve(uri if uri.startswith("dsllm://") else f"dsllm://{uri}")
        manifest = store.manifest(path.parent.name, path.name)
    except (ValueError, FileNotFoundError, ArtifactDamaged) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    typer.echo(json.dumps(manifest, indent=2, ensure_ascii=False))


@artifacts_app.command("verify")
def artifacts_verify(uri: Annotated[str | None, typer.Argument(help="One artifact (default: all)")] = None) -> None:
    """Check artifacts against their manifests (every file's size and sha256); exit 2 when one is damaged."""
    try:
        found = ArtifactStore().verify(None if uri is None else uri if uri.startswith("dsllm://") else f"dsllm://{uri}")
    except (ValueError, FileNotFoundError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    for checked, problems in found.items():
        typer.echo(f"{checked}: " + ("ok" if not problems else "DAMAGED\n  " + "\n  ".join(problems)))
    if damaged := [checked for checked, problems in found.items() if problems]:
        console.print(f"[red]{len(damaged)} of {len(found)} damaged[/red]: the next run rebuilds them "
                      "(`dsllm artifacts gc` removes them now)")
        raise typer.Exit(2)


@artifacts_app.command("gc")
def artifacts_gc(
    older_than_days: Annotated[float | None, typer.Option(help="Also remove artifacts unused this long")] = None,
    dry_run: Annotated[bool, typer.Option(help="Only list what would go")] = False,
) -> None:
    """Remove unfinished leftovers (and old unused artifacts)."""
    for path in ArtifactStore().gc(older_than_days, dry_run):
        typer.echo(("would remove " if dry_run else "removed ") + str(path))


def _until(value: str | None) -> str | None:
    """--until is checked while the command line is parsed, before anything starts."""
    try:
        return check_until(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command()
def pipeline(preset: PresetOpt = None, config: ConfigOpt = None, set_: SetOpt = None,
             until: Annotated[str | None, typer.Option(help=f"Stop after this stage: {', '.join(PIPELINE_STAGES)}",
                                                       callback=_until)] = None,
             from_scaling_study: Annotated[str | None, typer.Option(
                 help="Model and pretraining from a scaling study's recommendation (dsllm://scaling/<key>, its "
                      "folder or MLflow run id); --set still wins")] = None,
             force_scaling_study: Annotated[bool, typer.Option(
                 help="Apply a --from-scaling-study recommendation even when it extrapolates beyond the "
                      "study's explored lr/batch range")] = False) -> None:
    """Run the whole pipeline (validated config first; finished stages are reused)."""
    cfg = resolve_config(preset, config, set_)
    if from_scaling_study:
        cfg = resolve_config(preset, config, recommended_overrides(from_scaling_study, cfg,
                                                                   force=force_scaling_study) + (set_ or []))
    check_before_run(cfg, until)
    use_services()
    if not sys.stderr.isatty():  # progress bars in a log file: one update every 10 s, not ten a second
        os.environ.setdefault("TQDM_MININTERVAL", "10")
    from flows import summary
    from flows.pipeline import pipeline as pipeline_flow

    summary.PRINTED_BY_CALLER, summary.LAST = True, None
    errors.short_tracebacks_on_console()
    try:
        pipeline_flow(config=cfg, until=until)
    finally:  # one table at the end (also after a failure: what was built, which stage failed)
        if summary.LAST is not None:
            console.print(summary.LAST.table())


def check_before_run(cfg, until: str | None) -> None:
    """Refuse in seconds, before any service or flow starts, what would fail (or hang) later: unknown sources,
    too little disk, training resources that a local Ray cannot provide (a cluster's are checked when training
    starts)."""
    from components import preflight

    preflight.check_sources(cfg.sources)
    trains = until not in preflight.BEFORE_PRETRAIN
    stages = ["corpus", "data"] + (["pretrain"] if trains else [])
    preflight.check_disk(ArtifactStore().root, sum(preflight.estimated_mb(s, cfg) for s in stages), "this run")
    if trains and not os.environ.get("RAY_ADDRESS"):
        local = preflight.local_resources(gpus=cfg.pretrain.use_gpu or cfg.align.use_gpu)
        preflight.check_training(cfg.pretrain, cfg.model, local)
        if until not in ("pretrain",):  # SFT and DPO run too
            preflight.check_training(cfg.align, cfg.model, local, section="align")


def use_services() -> None:
    """Point this process at the running services (before prefect is imported), else say it runs embedded."""
    from components.services import ServiceError, client_env

    try:
        env = client_env()
    except ServiceError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    os.environ.update(env)
    if env:
        console.print(f"using services: {', '.join(f'{k}={env[k]}' for k in _SHOWN if k in env)}")
    if fallback := [what for key, what in _SHOWN.items() if key not in env]:
        console.print(f"not running (`dsllm up` starts them), so this run uses {', '.join(fallback)}")


@app.command()
def home() -> None:
    """Print the home directory (DSLLM_HOME)."""
    typer.echo(Home.resolve().root)


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024:
            return f"{n:.0f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


from dsllm.cli_eval import eval_command  # noqa: E402 - sub-command modules import after the app exists

app.command("eval")(eval_command)

from dsllm.cli_plan import plan_command  # noqa: E402

app.command("plan")(plan_command)


def main() -> None:
    """The `dsllm` command: expected failures print one paragraph and exit 2, tracebacks go to the home's logs."""
    errors.run(app)
