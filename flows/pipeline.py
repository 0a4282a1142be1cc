"""The parent `pipeline` flow: every stage flow in order, artifact URIs passed along."""

from __future__ import annotations

from prefect import flow, get_run_logger

from components.config import PipelineConfig
from components.presets import DEFAULT_PRESET, load_config
from flows import tracking
from flows.align import dpo, sft
from flows.corpus import corpus
from flows.data import data_prep, pack, tokenizer
from flows.evaluate import evaluate
from flows.pretrain import pretrain


@flow(name="pipeline", log_prints=True)
def pipeline(preset: str = DEFAULT_PRESET, overrides: list[str] | None = None,
             config: PipelineConfig | None = None) -> dict[str, str]:
    """Run the DeepSeek recipe end to end.

    Args:
        preset: tiny, small (default), deepseek_7b or deepseek_67b.
        overrides: `section.field=value` overrides applied on top of the preset.
        config: a complete config; when given, preset and overrides are ignored.
    """
    cfg = config or load_config(preset, None, overrides or [])
    logger = get_run_logger()
    logger.info("pipeline on preset %s", cfg.preset)
    uris: dict[str, str] = {}
    with tracking.pipeline_run(f"pipeline-{cfg.preset}", cfg) as run_id:
        uris["corpus"] = corpus(cfg.sources).uri
        uris["data"] = data_prep(uris["corpus"], cfg.data).uri
        uris["tokenizer"] = tokenizer(uris["data"], cfg.tokenizer).uri
        uris["pack"] = pack(uris["data"], uris["tokenizer"], cfg.pack).uri
        uris["pretrain"] = pretrain(uris["pack"], uris["tokenizer"], config=cfg).uri
        uris["sft"] = sft(uris["pretrain"], cfg.align).uri
        uris["dpo"] = dpo(uris["sft"], cfg.align).uri
        uris["evaluate"] = evaluate(uris["dpo"], uris["pack"], cfg.eval).uri
        logger.info("pipeline done; MLflow run %s; artifacts %s", run_id, uris)
    return uris
