"""The judged tasks end to end over real HTTP: the project's own OpenAI-compatible API (the demo app on a
tiny toy chat model with a long context) is the judge, and answers as a contestant too; the contestants
of the acceptance run are two registered versions of `dsllm-chat` generating here.

A random toy judge gives no usable verdict, so the checks are on the path, not the verdicts: every
question is judged in both orders over HTTP, each recorded reply is what the server answers for that
exact judge prompt, unparseable verdicts are quarantined and counted, and results and judgements land
in MLflow. Aggregation with usable verdicts is covered in test_judge.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest

from components.config import EndpointConfig, EvalConfig
from components.evaluate.judge.prompts import load_questions, pairwise_messages
from components.evaluate.report import log_mlflow
from components.evaluate.runner import evaluate
from components.evaluate.toy import toy_model
from components.home import Home
from tests.components.serving import conftest as serving
from tests.ui.conftest import free_port, start_server

# the serving tests' registry of tiny chat models (two versions of dsllm-chat), shared
MODEL = serving.MODEL
_one_torch_thread, chat_dirs, registry, registry_env = (serving._one_torch_thread, serving.chat_dirs,
                                                        serving.registry, serving.registry_env)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def judge_server(tmp_path_factory):
    from components.serving.config import DemoConfig
    from ui.app import Server, open_slot

    directory = toy_model(tmp_path_factory.mktemp("judge") / "toy-judge", chat=True, max_len=4096)
    cfg = DemoConfig(model=str(directory), port=free_port(), poll_s=0, threads=1)
    server = Server(open_slot(cfg), cfg).start()
    yield server
    server.stop()


def judge_of(server) -> EndpointConfig:
    return EndpointConfig(url=f"{server.url}/v1", model="toy-judge")


def settings(server, **more) -> EvalConfig:
    return EvalConfig(tasks=["pairwise"], limit=3, max_new_tokens=12, judge_max_tokens=12, cache=False,
                      judge=judge_of(server), **more)


def read(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_two_registered_versions_judged_by_the_served_model(judge_server, registry_env, tmp_path):
    v1, v2 = (f"models:/{MODEL}/{registry_env.versions[i]}" for i in (1, 2))
    cfg = settings(judge_server, opponent=v2)
    results = evaluate(v1, cfg=cfg, out_dir=tmp_path, home=Home.resolve(), show_progress=False)
    metrics, records = results["pairwise"], read(tmp_path / "samples" / "pairwise.jsonl")
    assert len(records) == 3 and metrics["judge_calls"] == 6
    assert metrics["n"] + metrics["unparsed"] == 3
    for record in records:
        assert [j["order"] for j in record["judgements"]] == ["A shown first", "B shown first"]
        assert all(j["error"] is None and j["reply"] for j in record["judgements"])
        assert record["answers_a"][0] and record["answers_b"][0]  # both versions generated here
    first = records[0]
    question = next(q for q in load_questions() if q["id"] == first["id"])
    again = openai.OpenAI(base_url=f"{judge_server.url}/v1", api_key="unused").chat.completions.create(
        model="toy-judge", messages=pairwise_messages(question, first["answers_a"], first["answers_b"]),
        max_tokens=12, temperature=0)
    assert again.choices[0].message.content == first["judgements"][0]["reply"]  # the judge saw exactly this prompt
    run_id = log_mlflow(results, tmp_path, v1, cfg)
    from mlflow import MlflowClient

    client = MlflowClient()
    assert client.get_run(run_id).data.metrics["pairwise.judge_calls"] == 6
    logged = [f.path for f in client.list_artifacts(run_id, "samples")]
    assert logged == ["samples/pairwise.jsonl"]
    assert "Head to head" in (tmp_path / "report" / "scorecard.md").read_text()


def test_an_endpoint_contestant_and_no_judge(judge_server, registry_env, tmp_path):
    v1 = f"models:/{MODEL}/{registry_env.versions[1]}"
    opponent = EndpointConfig(url=f"{judge_server.url}/v1", model="toy-judge")
    results = evaluate(v1, cfg=settings(judge_server, opponent=opponent), out_dir=tmp_path / "a",
                       home=Home.resolve(), show_progress=False)
    records = read(tmp_path / "a" / "samples" / "pairwise.jsonl")
    assert results["pairwise"]["judge_calls"] == 6
    assert all(len(r["answers_b"]) == 2 and r["answers_b"][0] for r in records)  # the server answered both turns
    idle = EvalConfig(tasks=["pairwise", "graded", "exam"], opponent=opponent)
    results = evaluate("/nonexistent/model", cfg=idle, out_dir=tmp_path / "b", home=Home.resolve())
    assert set(results["not_available"]) == {"pairwise", "graded", "exam"}  # nothing loaded, nothing called
    assert "not run: no judge configured" in (tmp_path / "b" / "report" / "scorecard.md").read_text()


def test_dsllm_eval_pairwise_with_the_served_model_as_judge(registry_env, tmp_path):
    """The acceptance command: two registered versions as contestants, the demo serving dsllm-chat@approved (a
    128-token context) as judge, its model found by listing the endpoint's models; the judge prompts are fitted
    into that context, so every judgement comes back; results and judgements in MLflow."""
    from mlflow import MlflowClient
    from typer.testing import CliRunner

    from dsllm.cli import app

    v1, v2 = (f"models:/{MODEL}/{registry_env.versions[i]}" for i in (1, 2))
    server = start_server(registry_env, poll_s=0)
    try:
        result = CliRunner().invoke(app, ["eval", "--model", v1, "--opponent", v2, "--tasks", "pairwise",
                                          "--judge-url", f"{server.url}/v1", "--limit", "2", "--max-new-tokens", "8",
                                          "--no-cache", "--out", str(tmp_path)])
    finally:
        server.stop()
    assert result.exit_code == 0, result.output
    run_id = result.output.split("MLflow run:")[1].split()[0]
    run = MlflowClient().get_run(run_id)
    assert run.data.metrics["pairwise.judge_calls"] == 4 and f"{MODEL}:v{registry_env.versions[1]}" in \
        run.data.params["judge"]
    local = MlflowClient().download_artifacts(run_id, "samples/pairwise.jsonl", str(tmp_path / "back"))
    judgements = [j for r in read(Path(local)) for j in r["judgements"]]
    assert len(judgements) == 4 and all(j["error"] is None and j["reply"] for j in judgements)
