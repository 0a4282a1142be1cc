"""`dsllm scaling ...`: plan, run and inspect scaling-law studies; turn one into pretraining overrides."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from components.artifacts import ArtifactStore
from components.presets import STUDIES, STUDY_DATA, ConfigError, load_config
from components.scaling.checks import FAILED_CHECK, NOT_BRACKETED, NotBracketedError, describe, describe_clamp

scaling_app = typer.Typer(help="Scaling-law studies: plan, run, show, recommend.", no_args_is_help=True)
console = Console()
PresetOpt = Annotated[str, typer.Option("--preset", "-p", help="Pipeline preset of the study's data and model")]
StudyOpt = Annotated[str, typer.Option("--study", help=f"Named study: {', '.join(STUDIES)}")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", "-s", help="Override, e.g. scaling.budget_max=3e12")]


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[red]{exc}[/red]")
    return typer.Exit(2)


def _config(preset: str, study: str, overrides: list[str] | None):
    """Preset (with the study's data overrides for the default study), then the named study, then --set."""
    if study not in STUDIES:
        raise _fail(ValueError(f"Unknown study {study!r}: use one of {', '.join(STUDIES)}"))
    data = STUDY_DATA.get(preset, []) if study == "default" else []
    named = [f"scaling.{k}={json.dumps(v)}" for k, v in STUDIES[study]().model_dump(mode="json").items()]
    try:
        return load_config(preset, None, data + named + (overrides or []))
    except (ConfigError, ValueError) as exc:
        raise _fail(exc) from None


@scaling_app.command("plan")
def scaling_plan(preset: PresetOpt = "tiny", study: StudyOpt = "default", set_: SetOpt = None) -> None:
    """The trials a study would train and a time estimate (IsoFLOP and validation sized with the paper's laws)."""
    from components.scaling.checks import m_share
    from components.scaling.fit import PAPER, Law
    from components.scaling.plan import estimate_seconds, plan_grid, plan_isoflop, validation_trial

    cfg = _config(preset, study, set_)
    grid, skipped = plan_grid(cfg.scaling, cfg.model, cfg.pretrain, cfg.pack.seq_len)
    paper = {name: Law(*PAPER[name]) for name in PAPER}
    iso, skipped_iso = plan_isoflop(cfg.scaling, cfg.model, cfg.pretrain, cfg.pack.seq_len, paper["eta"],
                                    paper["batch"])
    val = validation_trial(cfg.scaling, cfg.model, cfg.pretrain, cfg.pack.seq_len, paper)
    table = Table("phase", "budget", "trials", "models (n_layer×d_model)", "tokens", "M / real FLOPs", "min")
    concurrent = cfg.scaling.max_concurrent or 2
    for name, trials in (("grid", grid), ("isoflop", iso), ("validation", [val] if val else [])):
        for budget in sorted({t.budget for t in trials}):
            mine = [t for t in trials if t.budget == budget]
            shapes = sorted({(t.model["n_layer"], t.model["d_model"]) for t in mine})
            shares = [m_share(t.m, t.model["d_model"], t.model["vocab_size"]) for t in mine]
            table.add_row(name, f"{budget:.3g}", str(len(mine)), " ".join(f"{a}×{b}" for a, b in shapes),
                          f"{sum(t.tokens for t in mine):,}", f"{min(shares):.0%}–{max(shares):.0%}",
                          f"{estimate_seconds(mine, 1 if name == 'validation' else concurrent) / 60:.1f}")
    console.print(table)
    total = estimate_seconds(grid + iso, concurrent) + (estimate_seconds([val]) if val else 0)
    per_round = estimate_seconds(sorted(grid, key=lambda t: t.compute)[-1:] * 2 * cfg.scaling.hp_budgets,
                                 concurrent)
    console.print(f"skipped (too few steps): {len(skipped) + len(skipped_iso)}; about {total / 60:.0f} min on "
                  f"{concurrent} trial slots, validation included, plus about {per_round / 60:.1f} min per grid "
                  f"extension round (up to {cfg.scaling.bracket_rounds}; two trials per budget assumed). Cost "
                  "model: per-trial start-up + a cost per pass and per token + FLOPs, fitted on the 2-core dev machine; "
                  "a busy machine takes longer")


@scaling_app.command("run")
def scaling_run(preset: PresetOpt = "tiny", study: StudyOpt = "default", set_: SetOpt = None) -> None:
    """Run (or resume) a study through the `scaling_study` flow; prints the laws and the artifact.

    Exit status 3 when the laws failed their 10x check (validation loss outside its predicted interval or
    further than scaling.validation_tolerance from the prediction); 4 when fewer than two grid budgets were
    bracketed (no law fitted; the budgets are named); 2 for usage errors."""
    cfg = _config(preset, study, set_)
    from dsllm.cli import use_services

    use_services()
    from flows.scaling import scaling_study

    try:
        result = scaling_study(config=cfg)
    except NotBracketedError as exc:
        console.print(f"[red]no laws: {exc}[/red]")
        raise typer.Exit(NOT_BRACKETED) from None
    study = json.loads((Path(result.path) / "laws.json").read_text())
    _print_laws(study)
    console.print(f"artifact: {result.uri}\nreport:   {Path(result.path) / 'report' / 'scaling.md'}")
    if study.get("verdict", {}).get("status") == "failed":
        raise typer.Exit(FAILED_CHECK)


@scaling_app.command("show")
def scaling_show(ref: Annotated[str | None, typer.Argument(help="dsllm://scaling/<key>, its folder or an "
                                                           "MLflow run id (default: list studies)")] = None) -> None:
    """List finished studies, or print one's laws, validation and recommendation."""
    from components.scaling.recommend import load

    if ref is None:
        table = Table("uri", "created", "budgets", "trials", "validation error")
        for row in (r for r in ArtifactStore().list() if r["stage"] == "scaling"):
            counts = ArtifactStore().manifest("scaling", row["key"])["counts"]
            cfg = ArtifactStore().manifest("scaling", row["key"])["config"]["scaling"]
            error = counts.get("validation", {}).get("relative_error")
            table.add_row(row["uri"], row["created"], f"{cfg['budget_min']:.3g}–{cfg['budget_max']:.3g}",
                          str(counts["trials"].get("planned")), "—" if error is None else f"{error:+.1%}")
        console.print(table)
        return
    try:
        study = load(ref)
    except (ValueError, FileNotFoundError) as exc:
        raise _fail(exc) from None
    _print_laws(study)


def _print_laws(study: dict) -> None:
    from components.scaling.fit import PAPER

    table = Table("law", "coefficient", "exponent", "95% CI", "DeepSeek", title="fitted laws")
    for name, law in study["laws"].items():
        paper = PAPER.get(name)
        low, high = law["exponent_ci"]
        table.add_row(name, f"{law['coef']:.4g}", f"{law['exponent']:.4f}", f"[{low:.4f}, {high:.4f}]",
                      f"{paper[0]}·C^{paper[1]}" if paper else "—")
    console.print(table)
    val, rec = study["validation"], study["recommendation"]
    for b in study.get("brackets", []):
        if not b["bracketed"]:
            console.print(f"[yellow]grid budget C={b['budget']:.3g} NOT bracketed, no law fitted from it: "
                          f"{b['reason']}[/yellow]")
    if "actual" in val:
        console.print(f"validation at C={val['compute']:.3g}: predicted {val['predicted']:.4f} "
                      f"[{val['predicted_low']:.4f}, {val['predicted_high']:.4f}], measured {val['actual']:.4f}")
    console.print(f"recommendation for C={rec['budget']:.3g}: {rec['n_layer']} layers × d {rec['d_model']}, "
                  f"{rec['tokens']:,} tokens, batch {rec['batch_tokens']}, lr {rec['lr']}")
    if rec.get("clamped"):
        console.print(f"[yellow]held inside scaling.recommend_within={rec['within']}: {describe_clamp(rec)}[/yellow]")
    if rec.get("extrapolation", {}).get("flagged"):
        console.print(f"[yellow]EXTRAPOLATED recommendation: {describe(rec['extrapolation'])}[/yellow]")
    verdict = study.get("verdict")
    if verdict:
        color = {"passed": "green", "failed": "red"}.get(verdict["status"], "yellow")
        console.print(f"[{color}]10x check: {verdict['status']}[/{color}]" + (f": {verdict['reason']}" if
                                                                              verdict["reason"] else ""))


def recommended_overrides(ref: str, cfg, budget: float | None = None, force: bool = False) -> list[str]:
    """`--set` overrides applying study `ref` to `cfg` (the pipeline's seq_len and batch layout); refuses an
    extrapolated recommendation unless `force` or the config's scaling.allow_extrapolation."""
    from components.scaling.recommend import load, overrides

    try:
        return overrides(load(ref), cfg, budget, force or cfg.scaling.allow_extrapolation)
    except (ValueError, FileNotFoundError) as exc:
        raise _fail(exc) from None


@scaling_app.command("recommend")
def scaling_recommend(
    ref: Annotated[str, typer.Argument(help="dsllm://scaling/<key>, its folder or an MLflow run id")],
    budget: Annotated[float | None, typer.Option(help="Compute budget C in FLOPs (default: the study's)")] = None,
    preset: Annotated[str, typer.Option("--preset", "-p", help="Pipeline preset to apply it to")] = "small",
    force: Annotated[bool, typer.Option("--force", help="Print it even when it extrapolates beyond the study's "
                                                        "explored lr/batch range")] = False,
) -> None:
    """Print the model/pretrain overrides for a budget (use them with `dsllm pipeline --set ...`)."""
    try:
        cfg = load_config(preset)
    except ConfigError as exc:
        raise _fail(exc) from None
    typer.echo(" ".join(f"--set {o}" for o in recommended_overrides(ref, cfg, budget, force)))
