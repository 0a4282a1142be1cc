"""The `scaling_study` flow: build (or reuse) corpus → pack, then the scaling stage, logged to MLflow.

The study's MLflow run (the scaling stage's run, under a `scaling-<preset>` parent) holds the counts and
report/ (scaling.md, laws.json, PNGs); every trial is a child run of it.
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from components.artifacts import StageResult
from components.config import PipelineConfig, StudyConfig
from components.presets import STUDY_DATA, load_config
from flows import tracking
from flows.common import run_stage
from flows.pipeline import pipeline
from flows.stages import SCALING


@flow(name="scaling_study", log_prints=True)
def scaling_study(preset: str = "tiny", study: StudyConfig | None = None, overrides: list[str] | None = None,
                  config: PipelineConfig | None = None) -> StageResult:
    """Fit the batch-size/LR and model/data scaling laws on the project's pretraining; recommend a config.

    Args:
        preset: the pipeline preset whose data, tokenizer and model family the study uses.
        study: the study (default: the config's `scaling` section).
        overrides: `section.field=value` overrides (None = STUDY_DATA for the preset).
        config: a complete config; when given, preset and overrides are ignored.
    """
    cfg = config or load_config(preset, None, STUDY_DATA.get(preset, []) if overrides is None else overrides)
    if study is not None:
        cfg = cfg.model_copy(update={"scaling": study})
    uris = pipeline(config=cfg, until="pack")
    with tracking.pipeline_run(f"scaling-{cfg.preset}", cfg) as run_id:
        result = run_stage(SCALING.stage, SCALING.config(cfg), SCALING.input_uris(uris))
    get_run_logger().info("scaling study %s (MLflow run %s): %s", result.uri, run_id, result.counts.get("laws"))
    return result
