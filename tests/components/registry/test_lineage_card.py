"""Lineage walking, metric naming and direction, and the model card, from artifact manifests (no MLflow)."""

from __future__ import annotations

import shutil

import pytest

from components.artifacts import parse_uri
from components.registry import card, lineage, metrics
from components.registry.register import parameters
from tests.components.registry.fixtures import RESULTS, scorecard

pytestmark = pytest.mark.unit


def test_walk_finds_every_stage_from_the_chat_model(registry):
    found = lineage.walk(registry.uris["dpo"], registry.store)
    stages = {"corpus", "data", "tokenizer", "pack", "pretrain", "sft", "dpo"}
    assert set(found.uris) == stages and found.missing == []
    assert {s: found.uris[s] for s in stages} == {s: registry.uris[s] for s in stages}
    assert found.counts("pretrain")["tokens"] == 59392
    assert len(found.config_hash()) == 16
    assert found.config_hash() != lineage.walk(registry.uris["pretrain"], registry.store).config_hash()


def test_expected_artifacts_must_be_in_the_lineage(registry):
    found = lineage.walk(registry.uris["dpo"], registry.store)
    lineage.expect(found, {"data": registry.uris["data"], "tokenizer": registry.uris["tokenizer"]})
    with pytest.raises(ValueError, match="was not built from dsllm://tokenizer/000"):
        lineage.expect(found, {"tokenizer": "dsllm://tokenizer/000"})


def test_a_garbage_collected_input_is_reported_missing(registry, tmp_path):
    store = registry.store
    corpus = store.path(*parse_uri(registry.uris["corpus"]))
    moved = tmp_path / "corpus"
    shutil.move(corpus, moved)
    try:
        found = lineage.walk(registry.uris["dpo"], store)
        assert found.missing == ["corpus"] and "data" in found.manifests
    finally:
        shutil.move(moved, corpus)


def test_resolve_model_accepts_uri_artifact_dir_and_hf_dir(registry, tmp_path):
    uri = registry.uris["dpo"]
    artifact = registry.store.resolve(uri)
    for given in (uri, artifact, artifact / "hf"):
        hf, found = lineage.resolve_model(given, registry.store)
        assert hf == artifact / "hf" and found.root == uri
    plain = shutil.copytree(artifact / "hf", tmp_path / "plain")
    assert lineage.resolve_model(plain, registry.store) == (plain, None)
    with pytest.raises(FileNotFoundError, match="holds no Hugging Face model"):
        lineage.resolve_model(tmp_path, registry.store)


@pytest.mark.parametrize("name, lower", [("bpb.bpb", True), ("bpb.bpb_en", True), ("train.pretrain.val_loss.en", True),
                                          ("gsm8k.exact_match", False), ("humaneval.pass_at_1", False),
                                          ("mmlu.acc", False), ("train.dpo.reward_accuracy_dpo", False)])
def test_direction_of_metrics(name, lower):
    assert metrics.lower_is_better(name) is lower


def test_metric_names_and_key_metrics():
    flat = metrics.eval_metrics(RESULTS) | metrics.train_metrics({"pretrain": {"val_loss": {"en": 5.6}, "ok": True}})
    assert flat["humaneval.pass_at_1"] == 0.0 and flat["train.pretrain.val_loss.en"] == 5.6
    assert "train.pretrain.ok" not in flat  # booleans are not metrics
    assert metrics.key_metrics(RESULTS, flat) == ["bpb.bpb", "gsm8k.exact_match", "humaneval.pass_at_1", "mmlu.acc"]
    assert metrics.key_metrics({}, flat) == []  # a per-token loss depends on the tokenizer: never a key metric
    assert metrics.key_metrics({}, flat | {"train.pretrain.val_bpb": 4.5}) == ["train.pretrain.val_bpb"]
    chat = flat | {"chat.language_match": 0.75, "chat.stop_rate": 1.0}
    assert metrics.key_metrics(RESULTS, chat)[-2:] == ["chat.language_match", "chat.stop_rate"]


def test_card_has_architecture_data_compute_and_scorecard(registry):
    found = lineage.walk(registry.uris["dpo"], registry.store)
    hf = registry.store.resolve(registry.uris["dpo"]) / "hf"
    params = parameters(hf)
    text = card.model_card("dsllm-chat", "chat", hf, params, found, scorecard(RESULTS), {"dpo": "run123"},
                           registry.store)
    for section in ("## Evaluation", "## Architecture", "## Data", "## Training compute", "## Lineage", "## Use"):
        assert section in text
    assert f"({params['total']:,})" in text and params["total"] > params["non_embedding"] > 0
    assert "| code | 132k | 25.7% | 25.0% | 4.0 |" in text  # the data stage's mixture table
    assert "compute C = M·D = 46.7B FLOPs" in text and "peak LR 0.003" in text
    assert "| gsm8k | exact_match | 4 | 0.25 |" in text
    assert "SFT: 137 conversations" in text and "0.430 (SFT) → 0.520 (DPO)" in text
    assert f"| dpo | `{registry.uris['dpo']}` | run123 |" in text
    assert card.front_matter(text).startswith("---\nlicense: apache-2.0")


def test_base_card_without_evaluation(registry):
    found = lineage.walk(registry.uris["pretrain"], registry.store)
    hf = registry.store.resolve(registry.uris["pretrain"]) / "hf"
    text = card.model_card("dsllm-base", "base", hf, parameters(hf), found, None, {}, registry.store)
    assert "Not evaluated" in text and "pretrained base model" in text
    assert "SFT:" not in text and "Pretraining: D = 59.4k tokens" in text


def test_a_head_to_head_section_goes_into_the_evaluation_and_replaces_an_older_one():
    with_head_to_head = card.with_head_to_head
    text = "# dsllm-chat\n\n## Evaluation\n\n| task |\n\n## Architecture\n\nlayers\n"
    first = with_head_to_head(text, ["", "## Head to head against `models:/dsllm-chat/1`", "", "3 wins"])
    assert first.index("### Head to head against `models:/dsllm-chat/1`") < first.index("## Architecture")
    assert first.index("| task |") < first.index("3 wins")
    second = with_head_to_head(first, ["## Head to head against `models:/dsllm-chat/2`", "5 wins"])
    assert "3 wins" not in second and "models:/dsllm-chat/1" not in second and "5 wins" in second
    assert second.count("## Architecture") == 1 and second.endswith("layers\n")
    assert "### Head to head" in with_head_to_head("", ["## Head to head against x"])
