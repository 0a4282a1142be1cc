"""Reports to MLflow, and models taken from the MLflow registry by alias (real MLflow on SQLite)."""

from __future__ import annotations

import pytest

from components.config import EvalConfig
from components.evaluate.report import flat_metrics, log_mlflow
from components.evaluate.runner import evaluate
from components.home import point_mlflow_at

pytestmark = pytest.mark.integration


def test_metrics_and_report_are_logged_per_task(catalog, toy_base, home, tmp_path):
    import mlflow

    cfg = EvalConfig(max_new_tokens=8, tasks=["arc_easy", "humaneval"], limit=2)
    results = evaluate(toy_base, cfg=cfg, out_dir=tmp_path, home=home, show_progress=False)
    run_id = log_mlflow(results, tmp_path, str(toy_base), cfg, tracking_uri=home.mlflow_uri)
    client = mlflow.MlflowClient(home.mlflow_uri)
    run = client.get_run(run_id)
    assert run.data.metrics["arc_easy.acc"] == pytest.approx(results["arc_easy"]["acc"])
    assert run.data.metrics["humaneval.pass_at_1"] == pytest.approx(results["humaneval"]["pass@1"])
    assert run.data.params["limit"] == "2"
    logged = {f.path for f in client.list_artifacts(run_id, "report")} | {f.path for f in client.list_artifacts(
        run_id, "samples")}
    assert {"report/scorecard.md", "report/scorecard.png", "samples/arc_easy.jsonl"} <= logged
    assert flat_metrics({"t": {"pass@10": 0.5, "n": 3, "bad": float("nan")}}) == {"t.pass_at_10": 0.5, "t.n": 3.0}


def test_registered_model_is_evaluated_by_alias(catalog, toy_chat, home, monkeypatch):
    import mlflow
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("MLFLOW_TRACKING_URI", home.mlflow_uri)
    point_mlflow_at(home.mlflow_uri)
    # this home's own experiment (not one a previous test made active), its artifacts in the home, never ./mlruns
    mlflow.set_experiment(experiment_id=mlflow.create_experiment(
        "registry-test", artifact_location=home.mlflow_artifacts.as_uri()))
    with mlflow.start_run():
        mlflow.transformers.log_model(
            transformers_model={"model": AutoModelForCausalLM.from_pretrained(toy_chat),
                                "tokenizer": AutoTokenizer.from_pretrained(toy_chat)},
            name="model", task="text-generation", registered_model_name="toy-eval", pip_requirements=["transformers"])
    mlflow.MlflowClient().set_registered_model_alias("toy-eval", "approved", "1")
    from components.evaluate.model import load_model

    lm = load_model("models:/toy-eval@approved", home=home)
    assert lm.fingerprint.startswith("mlflow:toy-eval/1/") and lm.is_chat  # the chat template came along
    results = evaluate("models:/toy-eval@approved", "arc_easy", 2, cfg=EvalConfig(), lm=lm, home=home,
                       show_progress=False)
    assert results["arc_easy"]["n"] == 2
