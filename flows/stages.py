"""The pipeline, declared once: its steps in order, each with its stage and inputs.

Like Marin's executor steps, a step names the earlier steps whose artifacts it reads (`inputs`: input name →
step); the pipeline flow, the CLI's `--until` and the scaling study all read this table, nothing keeps a copy.
Every step's stage is a `StageSpec` that its package exposes from `components/<package>/stage.py`; the spec
says which part of the `PipelineConfig` its stage takes (`StageSpec.of`), so no step repeats it.
No Prefect import here, so the command line can check `--until` before it configures or starts anything.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the CLI imports this module before anything heavy
    from components.artifacts import StageSpec
    from components.config import PipelineConfig


@dataclass(frozen=True)
class Step:
    """One step: `stage` (a StageSpec's name), where its spec lives, its inputs (input name → the step that
    builds it) and its flow's name."""

    stage: str
    spec: str  # "module:ATTRIBUTE" of the StageSpec ("" for register, which builds no artifact)
    inputs: dict[str, str] = field(default_factory=dict)
    flow: str = ""  # the (sub)flow it runs as; default: the stage's name

    def config(self, cfg: PipelineConfig) -> Any:
        """The part of a `PipelineConfig` this step's stage works on (its spec picks it)."""
        return spec(self.stage).of(cfg)

    def input_uris(self, uris: dict[str, str]) -> dict[str, str]:
        """{input name: artifact URI} from the URIs of the steps run so far."""
        return {name: uris[source] for name, source in self.inputs.items()}


PIPELINE: tuple[Step, ...] = (
    Step("corpus", "components.sources.stage:STAGE"),
    Step("data", "components.data.stage:STAGE", {"corpus": "corpus"}, "data_prep"),
    Step("tokenizer", "components.tokenizer.stage:STAGE", {"data": "data"}),
    Step("pack", "components.pack.stage:STAGE", {"data": "data", "tokenizer": "tokenizer"}),
    Step("pretrain", "components.pretrain.stage:STAGE", {"pack": "pack", "tokenizer": "tokenizer"}),
    Step("sft", "components.align.stage:SFT", {"model": "pretrain"}),
    Step("dpo", "components.align.stage:DPO", {"model": "sft"}),
    Step("evaluate", "components.evaluate.stage:STAGE", {"model": "dpo", "pack": "pack"}),
    Step("register", "", {"pretrain": "pretrain", "dpo": "dpo", "evaluate": "evaluate", "data": "data",
                          "tokenizer": "tokenizer"}, "register_and_gate"),
)
"""Every step but the last builds an artifact; `register` registers and gates the models (on `cfg.registry`)."""

SCALING = Step("scaling", "components.scaling.stage:STAGE", {"pack": "pack", "tokenizer": "tokenizer"},
               "scaling_study")
"""The scaling study: runs on the pipeline's pack and tokenizer, outside the pipeline's order."""

PIPELINE_STAGES: tuple[str, ...] = tuple(step.stage for step in PIPELINE)

SPECS: dict[str, str] = {step.stage: step.spec for step in (*PIPELINE, SCALING) if step.spec} | {
    "registered_model": "components.evaluate.stage:REGISTERED_MODEL"}
"""Stage name → "module:ATTRIBUTE" of its StageSpec (registered_model: the nightly evaluation's download)."""


def spec(stage: str) -> StageSpec:
    """The StageSpec called `stage` (imported on first use: a stage's module may import torch)."""
    module, _, attribute = SPECS[stage].partition(":")
    return getattr(importlib.import_module(module), attribute)


def step(stage: str) -> Step:
    return next(s for s in (*PIPELINE, SCALING) if s.stage == stage)


def check_until(until: str | None) -> str | None:
    """`until` itself when it names a stage, else a ValueError listing them."""
    if until is not None and until not in PIPELINE_STAGES:
        from components.names import did_you_mean

        raise ValueError(f"--until must be one of {', '.join(PIPELINE_STAGES)}, not {until!r}."
                         f"{did_you_mean(until, PIPELINE_STAGES)}")
    return until
