"""The parent `pipeline` flow: every stage flow in order, artifact URIs passed along."""

from __future__ import annotations

import time
from typing import Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from components.config import PipelineConfig
from components.presets import DEFAULT_PRESET, load_config
from flows import lineage, summary, tracking
from flows.common import run_step
from flows.registry import register_and_gate
from flows.stages import PIPELINE, PIPELINE_STAGES, Step, check_until

Stage = Literal[PIPELINE_STAGES]  # the Prefect form's choices: the same list the CLI's --until offers
BUILDS, REGISTER = PIPELINE[:-1], PIPELINE[-1]  # the steps that build artifacts, then register


def register(step: Step, cfg: PipelineConfig, uris: dict[str, str]) -> dict[str, dict]:
    """Register base and chat models and gate them; {name: the gate's summary} (the demo serves @approved)."""
    inputs = {f"{name}_uri": uri for name, uri in step.input_uris(uris).items()}
    return {name: d["summary"] for name, d in register_and_gate(**inputs, cfg=cfg.registry).items()}


@flow(name="pipeline", log_prints=True)
def pipeline(preset: str = DEFAULT_PRESET, overrides: list[str] | None = None,
             config: PipelineConfig | None = None, until: Stage | None = None) -> dict[str, str]:
    """Run the DeepSeek recipe end to end.

    Args:
        preset: tiny, small (default), deepseek_7b or deepseek_67b.
        overrides: `section.field=value` overrides applied on top of the preset.
        config: a complete config; when given, preset and overrides are ignored.
        until: stop after this stage (default: run every stage, then register and gate the models).
    """
    check_until(until)
    cfg = config or load_config(preset, None, overrides or [])
    logger = get_run_logger()
    logger.info("pipeline on preset %s%s", cfg.preset, f", until {until}" if until else "")
    uris: dict[str, str] = {}
    gated: dict[str, dict] = {}  # registered model name → the gate's summary
    report = summary.RunSummary(cfg.preset)
    summary.LAST = report
    with tracking.pipeline_run(f"pipeline-{cfg.preset}", cfg) as run_id:
        for number, step in enumerate(BUILDS, 1):
            logger.info("[%d/%d] %s", number, len(PIPELINE), step.stage)
            started = time.perf_counter()
            try:
                result = run_step(step, cfg, uris)
            except Exception:
                report.stage(step.stage, False, time.perf_counter() - started, "(see the error above)", "failed")
                raise
            report.stage(step.stage, result.cached, time.perf_counter() - started, result.uri)
            uris[step.stage] = result.uri
            if step.stage == until:
                break
        else:
            logger.info("[%d/%d] register and gate", len(PIPELINE), len(PIPELINE))
            started = time.perf_counter()
            gated = register(REGISTER, cfg, uris)
            registered = {name: f"models:/{name}/{gate['version']}" for name, gate in gated.items()}
            report.stage("register", False, time.perf_counter() - started, ", ".join(registered.values()), "done")
            uris.update(registered)
        logger.info("pipeline done; MLflow run %s; artifacts %s", run_id, uris)
    lineage.record_pipeline("pipeline", f"pipeline-{cfg.preset}", uris, run_id)
    _summarise(report, gated)
    return uris


def _summarise(report: summary.RunSummary, gated: dict[str, dict]) -> None:
    """Log the end-of-run summary and keep it as the run's Prefect artifact; never fails the finished run."""
    logger = get_run_logger()
    try:
        report.finish(gated)
    except Exception as exc:  # noqa: BLE001 - the work is done; a registry or demo hiccup only shortens the summary
        logger.warning("summary incomplete: %s", exc)
    if summary.PRINTED_BY_CALLER:
        logger.info("summary: the table below, and the Prefect artifact 'pipeline-summary'")
    else:
        logger.info("summary\n%s", report.markdown())
    create_markdown_artifact(markdown=report.markdown(), key="pipeline-summary",
                             description=f"pipeline ({report.preset}): stages, gate verdicts, demo")
