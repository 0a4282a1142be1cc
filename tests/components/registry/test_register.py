"""Registration against a real MLflow (SQLite in the test home): card, lineage tags, metrics, artifacts, and the
model loading back through the transformers flavour with its chat template."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.artifacts import parse_uri
from components.home import point_mlflow_at
from components.registry import audit, register
from tests.components.registry.fixtures import evaluation, with_scores

pytestmark = pytest.mark.integration


def _flow_runs(registry) -> dict[str, str]:
    """Runs tagged the way flows/tracking.py tags stage runs: a pipeline run with a dpo and an evaluate stage."""
    mc = audit.client(registry.home)
    exp = mc.create_experiment("dsllm-flows-standin", artifact_location=registry.home.mlflow_artifacts.as_uri())
    parent = mc.create_run(exp, run_name="pipeline-tiny").info.run_id
    runs = {"pipeline": parent}
    for stage in ("dpo", "evaluate"):
        runs[stage] = mc.create_run(exp, run_name=stage, tags={
            "mlflow.parentRunId": parent, "dsllm.artifact_uri": registry.uris[stage], "dsllm.cached": "false"}).info.run_id
    return runs


def test_register_chat_writes_card_tags_metrics_and_loads_back(registry, name):
    import mlflow

    uris, runs = registry.uris, _flow_runs(registry)
    mv = register("chat", uris["dpo"], evaluation=uris["evaluate"], name=name, home=registry.home,
                  expected={"data": uris["data"], "tokenizer": uris["tokenizer"]})
    assert str(mv.version) == "1"
    for section in ("## Evaluation", "## Architecture", "## Data", "## Training compute", "## Lineage"):
        assert section in mv.description
    tags = mv.tags
    assert tags["dsllm.kind"] == "chat" and tags["dsllm.artifact"] == uris["dpo"] and tags["dsllm.gate"] == "pending"
    for stage in ("corpus", "data", "tokenizer", "pack", "pretrain", "sft", "dpo", "evaluate"):
        assert tags[f"dsllm.lineage.{stage}"] == parse_uri(uris[stage])[1]
    assert len(tags["dsllm.config_hash"]) == 16 and tags["dsllm.code_commit"] not in ("", "unknown")
    assert (tags["dsllm.run.dpo"], tags["dsllm.run.evaluate"], tags["dsllm.run.pipeline"]) == \
        (runs["dpo"], runs["evaluate"], runs["pipeline"])
    assert tags["dsllm.key_metrics"] == "bpb.bpb,gsm8k.exact_match,humaneval.pass_at_1,mmlu.acc"
    assert json.loads(tags["dsllm.history"])[0]["action"] == "registered"

    mc = audit.client(registry.home)
    run = mc.get_run(mv.run_id)
    assert run.data.metrics["gsm8k.exact_match"] == 0.25 and run.data.metrics["train.pretrain.final_loss"] == 5.567
    assert run.data.metrics["train.dpo.reward_accuracy_dpo"] == 0.52
    logged = {f.path for f in mc.list_artifacts(mv.run_id, "model_card")}
    assert {"model_card/model_card.md", "model_card/scorecard.png", "model_card/pretrain_loss.png",
            "model_card/sft_curves.png", "model_card/dpo_curves.png"} <= logged

    point_mlflow_at(registry.home.mlflow_uri)
    parts = mlflow.transformers.load_model(f"models:/{name}/{mv.version}", return_type="components")
    saved = registry.store.resolve(uris["dpo"]) / "hf"
    assert type(parts["model"]).__name__ == "LlamaForCausalLM"
    assert parts["tokenizer"].chat_template == (saved / "chat_template.jinja").read_text()
    prompt = parts["tokenizer"].apply_chat_template([{"role": "user", "content": "你好"}], tokenize=False,
                                                    add_generation_prompt=True)
    assert prompt.endswith("<|assistant|>")
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{mv.version}"))
    requirements = (local / "requirements.txt").read_text()
    assert "torch==2.13.0" in requirements and "torchvision" not in requirements
    assert (local / "model_card.md").read_text().startswith(f"# {name}")


def test_same_artifact_again_is_the_same_version_and_new_evaluation_reuses_weights(registry, name):
    uris = registry.uris
    first = register("chat", uris["dpo"], evaluation=uris["evaluate"], name=name, home=registry.home)
    again = register("chat", uris["dpo"], evaluation=uris["evaluate"], name=name, home=registry.home)
    other = register("chat", uris["dpo"], evaluation=evaluation(registry.store, uris, with_scores(gsm8k=0.5)),
                     name=name, home=registry.home)
    assert str(again.version) == str(first.version) and str(other.version) != str(first.version)
    assert other.source == first.source and other.run_id != first.run_id  # weights logged once, metrics per run
    assert audit.client(registry.home).get_run(other.run_id).data.metrics["gsm8k.exact_match"] == 0.5


def test_register_base_without_evaluation(registry, name):
    mv = register("base", registry.uris["pretrain"], name=name, home=registry.home)
    assert mv.tags["dsllm.kind"] == "base" and "dsllm.lineage.sft" not in mv.tags
    # per-token losses depend on the tokenizer: never a key metric (the pack here has no files for a val bpb)
    assert mv.tags["dsllm.key_metrics"] == ""
    assert "Not evaluated" in mv.description


def test_bad_inputs_fail_before_anything_is_written(registry, name, tmp_path):
    uris, home = registry.uris, registry.home
    with pytest.raises(ValueError, match="evaluated .*dpo.*, not .*pretrain"):
        register("base", uris["pretrain"], evaluation=uris["evaluate"], name=name, home=home)
    with pytest.raises(ValueError, match="was not built from"):
        register("chat", uris["dpo"], expected={"tokenizer": "dsllm://tokenizer/0123"}, name=name, home=home)
    with pytest.raises(ValueError, match="needs a chat template"):
        register("chat", uris["pretrain"], name=name, home=home)
    with pytest.raises(ValueError, match="not an evaluate artifact"):
        register("chat", uris["dpo"], evaluation=uris["sft"], name=name, home=home)
    with pytest.raises(FileNotFoundError, match="is not in"):
        register("chat", "dsllm://dpo/000000000000000000000000", name=name, home=home)
    with pytest.raises(ValueError, match="kind must be"):
        register("instruct", uris["dpo"], name=name, home=home)
    assert not audit.client(home).search_registered_models(f"name = '{name}'")
