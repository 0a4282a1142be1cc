"""The pipeline declaration (`flows.stages`): every step resolves to its StageSpec and reads only earlier steps."""

from __future__ import annotations

import inspect

import pytest

from components.artifacts import StageSpec
from components.config import PipelineConfig
from flows.stages import PIPELINE, PIPELINE_STAGES, SCALING, SPECS, spec, step

pytestmark = pytest.mark.unit


def test_every_step_reads_only_steps_before_it():
    done: set[str] = set()
    for declared in PIPELINE:
        assert set(declared.inputs.values()) <= done, f"{declared.stage} reads a later or unknown step"
        done.add(declared.stage)
    assert set(SCALING.inputs.values()) <= done


@pytest.mark.parametrize("stage", sorted(SPECS))
def test_every_stage_is_a_stage_spec_exposed_by_its_package_stage_module(stage):
    found = spec(stage)
    assert isinstance(found, StageSpec) and found.name == stage
    assert SPECS[stage].split(":")[0].endswith(".stage")
    assert len(inspect.signature(found.work).parameters) == 3  # work(cfg, inputs, out_dir)


def test_a_step_takes_its_config_section_and_the_uris_of_its_inputs():
    cfg, uris = PipelineConfig(), {"pretrain": "dsllm://pretrain/a", "sft": "dsllm://sft/b", "dpo": "dsllm://dpo/c",
                                   "pack": "dsllm://pack/d"}
    evaluate = step("evaluate")
    assert evaluate.config(cfg) is cfg.eval and step("pretrain").config(cfg) is cfg
    assert evaluate.input_uris(uris) == {"model": "dsllm://dpo/c", "pack": "dsllm://pack/d"}
    assert PIPELINE_STAGES[-1] == "register" and step("register").config(cfg) is cfg.registry


def test_register_takes_one_uri_per_declared_input():
    from flows.registry import register_and_gate

    parameters = inspect.signature(register_and_gate.fn).parameters
    assert {f"{name}_uri" for name in step("register").inputs} <= set(parameters)
