"""The nightly `evaluate_approved` flow against a real MLflow registry (SQLite) and a temporary Prefect server."""

from __future__ import annotations

import pytest
import torch

from components.artifacts import ArtifactStore
from components.config import EvalConfig
from components.evaluate import data
from components.evaluate.toy import toy_model
from flows import tracking
from flows.evaluate import evaluate_approved
from tests.components.evaluate.fixtures import write_catalog

pytestmark = pytest.mark.integration

CFG = EvalConfig(tasks=["gsm8k", "bpb"], limit=2, max_new_tokens=8, batch_size=2)


@pytest.fixture
def registry(home, monkeypatch, tmp_path, prefect_server):
    """A SQLite MLflow in the test's home, the miniature benchmark catalog, and a way to register a version."""
    import mlflow
    from transformers import AutoModelForCausalLM, AutoTokenizer

    catalog = write_catalog(tmp_path / "catalog")
    monkeypatch.setattr(data, "package_dir", lambda name, home=None: catalog[name])
    monkeypatch.setenv("DSLLM_BENCHMARKS", str(catalog["benchmarks"]))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a d_model 64 model: threads only add contention on a shared machine
    chat_dir = toy_model(tmp_path / "toy", chat=True)
    tracking.configure(home, "registry-test")  # artifacts in the home, never ./mlruns
    client = mlflow.MlflowClient(home.mlflow_uri)

    def register(alias: str = "approved", tags: dict | None = None) -> str:
        with mlflow.start_run():
            info = mlflow.transformers.log_model(
                transformers_model={"model": AutoModelForCausalLM.from_pretrained(chat_dir),
                                    "tokenizer": AutoTokenizer.from_pretrained(chat_dir)},
                name="model", task="text-generation", registered_model_name="dsllm-chat",
                pip_requirements=["transformers"])
        version = str(info.registered_model_version)
        client.set_registered_model_alias("dsllm-chat", alias, version)
        for key, value in (tags or {}).items():
            client.set_model_version_tag("dsllm-chat", version, key, value)
        return version

    yield register
    torch.set_num_threads(threads)


def test_nothing_to_evaluate_before_a_version_is_approved(registry):
    assert evaluate_approved(cfg=CFG) is None
    registry(alias="candidate")
    assert evaluate_approved(cfg=CFG) is None  # registered, but no version has the alias yet


def test_the_approved_version_is_downloaded_once_and_evaluated(registry, home):
    import mlflow

    first = registry(tags={"dsllm.lineage.pack": "dsllm://pack/000000000000000000000000"})  # not on this machine
    result = evaluate_approved(cfg=CFG)
    assert result["version"] == first and result["scores"]["gsm8k"]["n"] == 2
    assert "bpb" not in result["scores"], "bpb needs a pack artifact, and none is on this machine"
    hf = ArtifactStore(home).resolve(result["model_uri"]) / "hf"
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= {p.name for p in hf.iterdir()}

    again = evaluate_approved(cfg=CFG)
    assert again["evaluate_uri"] == result["evaluate_uri"]
    stage_runs = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                    filter_string="tags.`dsllm.stage` = 'evaluate'")
    assert sorted(r.data.tags["dsllm.cached"] for r in stage_runs) == ["false", "true"], "an unmoved alias is a no-op"

    second = registry()  # the gate moved `approved` to a new version
    moved = evaluate_approved(cfg=CFG)
    assert moved["version"] == second != first and moved["model_uri"] != result["model_uri"]
    parent = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                filter_string=f"tags.`dsllm.model_version` = '{second}'")
    assert [r.data.tags["dsllm.alias"] for r in parent] == ["approved"]


def test_with_a_judge_the_approved_version_meets_the_previous_one(registry, home, tmp_path):
    """The project's own API (a toy model with a long context) judges approved against previous; the result
    lands in the scorecard, the approved version's model card and a tag."""
    import json

    import mlflow

    from components.config import EndpointConfig
    from components.serving.config import DemoConfig
    from tests.ui.conftest import free_port
    from ui.app import Server, open_slot

    judge_dir = toy_model(tmp_path / "toy-judge", chat=True, max_len=4096)
    server_cfg = DemoConfig(model=str(judge_dir), port=free_port(), poll_s=0, threads=1)
    server = Server(open_slot(server_cfg), server_cfg).start()
    try:
        judge = EndpointConfig(url=f"{server.url}/v1", model="toy-judge")
        alone = registry()
        assert "pairwise" not in evaluate_approved(cfg=CFG, judge=judge)["scores"], "no previous version yet"
        previous = registry(alias="previous")
        approved = registry()
        result = evaluate_approved(cfg=CFG.model_copy(update={"judge_max_tokens": 8}), judge=judge)
    finally:
        server.stop()
    assert result["version"] == approved and previous != alone
    assert result["scores"]["pairwise"]["judge_calls"] == 4  # two questions (limit 2), both orders
    version = mlflow.MlflowClient(home.mlflow_uri).get_model_version("dsllm-chat", approved)
    assert f"### Head to head against `models:/dsllm-chat/{previous}`" in version.description
    assert json.loads(version.tags["dsllm.head_to_head"])["opponent"] == f"models:/dsllm-chat/{previous}"
    scorecard = ArtifactStore(home).resolve(result["evaluate_uri"]) / "report" / "scorecard.md"
    assert "## Head to head" in scorecard.read_text()
