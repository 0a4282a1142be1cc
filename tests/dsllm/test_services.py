"""`dsllm up | status | deploy | down` against real Prefect, MLflow and Ray on loopback.

The services start once for the module, in an isolated home on free non-default ports (never a
developer's 4200/5000/6379), and are always stopped in the fixture's finaliser. The tests run in
file order: up, up again, deploy, worker runs, down.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import shutil
import subprocess
import time
import uuid
from datetime import UTC, datetime

import httpx
import psutil
import pytest
from rich.console import Console
from typer.testing import CliRunner

from components import services
from components.services import POOL, REPO, TRAINING_TAG, Settings, procs
from components.services.specs import tool

pytestmark = pytest.mark.integration

RUN_TIMEOUT_S = 240
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _free_ports(n: int) -> list[int]:
    """n distinct free ports between Ray's worker ports (10002-19999) and the ephemeral range (32768+),
    where no outgoing connection will grab one while a slow server is still starting."""
    candidates = random.sample(range(20000, 32000), 200)
    return [port for port in candidates if procs.port_free(port)][:n]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Services up in a fresh home; yields (settings, states after the first `up`); always `down`."""
    patch = pytest.MonkeyPatch()
    prefect, mlflow, ray = _free_ports(3)
    root = tmp_path_factory.mktemp("services")
    for key, value in {"DSLLM_HOME": str(root / "home"), "DSLLM_PREFECT_PORT": str(prefect),
                       "DSLLM_MLFLOW_PORT": str(mlflow), "DSLLM_RAY_PORT": str(ray),
                       "DSLLM_RAY_OBJECT_STORE_MB": "150", "PREFECT_WORKER_QUERY_SECONDS": "2"}.items():
        patch.setenv(key, value)
    # the CLI's export_env() sets these with setdefault: set them here so undo() restores the originals
    patch.setenv("PREFECT_HOME", str(root / "home" / "prefect"))
    patch.setenv("PREFECT_LOCAL_STORAGE_PATH", str(root / "home" / "prefect" / "storage"))
    for key in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "PREFECT_API_URL"):
        patch.delenv(key, raising=False)
    settings, states = Settings.resolve(), []
    try:
        states = services.up(settings, console=Console(file=io.StringIO()))
        yield settings, states
    finally:
        services.down(settings, console=Console(file=io.StringIO()))
        for st in states:  # in case the pid files went (e.g. another pytest run pruned the base temp dir)
            if st.pid and procs.alive(st.pid):
                procs.stop_session(st.pid)
        if settings.ray_temp_dir()[1]:  # the short /tmp fallback is outside the test's tmp dir
            shutil.rmtree(settings.ray_temp_dir()[0], ignore_errors=True)
        patch.undo()


def _cli(*args: str):
    from dsllm.cli import app

    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def test_up_starts_three_healthy_services_and_a_worker(stack):
    settings, states = stack
    assert [(st.name, st.state) for st in states] == [
        ("prefect", "healthy"), ("mlflow", "healthy"), ("ray", "healthy"), ("prefect-worker", "healthy")]
    for name in ("prefect", "mlflow", "ray"):
        assert procs.port_open("127.0.0.1", settings.ports[name])
        assert (settings.home.run / f"{name}.pid").is_file() and (settings.home.logs / f"{name}.log").is_file()
    assert httpx.get(f"{settings.prefect_api}/work_pools/{POOL}").json()["type"] == "process"
    limit = httpx.get(f"{settings.prefect_api}/concurrency_limits/tag/{TRAINING_TAG}").json()
    assert limit["concurrency_limit"] == 1, limit  # two training tasks never run at once
    result = _cli("status")
    assert result.exit_code == 0, result.output
    assert f"Prefect UI  http://127.0.0.1:{settings.ports['prefect']}" in result.output
    assert f"MLflow UI   http://127.0.0.1:{settings.ports['mlflow']}" in result.output


def test_prefect_and_mlflow_keep_their_data_in_the_home(stack):
    settings, _ = stack
    assert (settings.home.prefect / "prefect.db").is_file()
    assert settings.home.mlflow_db.is_file()
    ray_dir, note = settings.ray_temp_dir()
    assert any(ray_dir.glob("session_*")), f"no Ray session under {ray_dir}"
    assert not note or "too long" in note


def test_up_again_is_harmless(stack):
    settings, states = stack
    result = _cli("up")
    assert result.exit_code == 0, result.output
    assert "already running" in result.output
    assert {st.name: st.pid for st in services.status(settings)} == {st.name: st.pid for st in states}


def test_client_env_points_at_the_running_services(stack):
    settings, _ = stack
    env = services.client_env(settings)
    assert env["PREFECT_API_URL"] == f"http://127.0.0.1:{settings.ports['prefect']}/api"
    assert env["MLFLOW_TRACKING_URI"] == f"http://127.0.0.1:{settings.ports['mlflow']}"
    assert env["RAY_ADDRESS"] == f"127.0.0.1:{settings.ports['ray']}"
    assert env["RAY_AUTH_MODE"] == "token" and os.path.isfile(env["RAY_AUTH_TOKEN_PATH"])
    exports = _cli("env").output.splitlines()
    assert f"export MLFLOW_TRACKING_URI={env['MLFLOW_TRACKING_URI']}" in exports and len(exports) == len(env)


def test_deploy_registers_the_pipeline_with_a_parameter_form(stack):
    settings, _ = stack
    result = _cli("deploy")
    assert result.exit_code == 0, result.output
    record = services.deployment(settings, "pipeline", "pipeline")
    assert record["work_pool_name"] == POOL
    assert record["pull_steps"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}]
    schema = record["parameter_openapi_schema"]
    assert list(schema["properties"]) == ["preset", "overrides", "config", "until"]
    assert schema["properties"]["preset"]["default"] == "small"
    assert schema["properties"]["overrides"]["anyOf"][0] == {"items": {"type": "string"}, "type": "array"}
    pipeline = schema["definitions"]["PipelineConfig"]["properties"]
    for section in ("sources", "data", "tokenizer", "pack", "model", "pretrain", "align", "eval"):
        assert section in pipeline, f"{section} missing from the form"
    lr = schema["definitions"]["PretrainConfig"]["properties"]["lr"]
    assert lr["description"] and "exclusiveMinimum" in lr  # docstrings and ranges reach the form


# flow name -> (deployment, the parameters its form must show, the config class behind its `cfg`)
STAGE_DEPLOYMENTS = {
    "corpus": ("corpus", ["cfg"], "SourcesConfig"),
    "data_prep": ("data_prep", ["corpus_uri", "cfg"], "DataConfig"),
    "tokenizer": ("tokenizer", ["data_uri", "cfg"], "TokenizerConfig"),
    "pack": ("pack", ["data_uri", "tokenizer_uri", "cfg"], "PackConfig"),
    "pretrain": ("pretrain", ["pack_uri", "tokenizer_uri", "preset", "overrides", "config"], "PipelineConfig"),
    "align": ("align", ["base_model_uri", "cfg"], "AlignConfig"),
    "evaluate": ("evaluate", ["model_uri", "pack_uri", "cfg"], "EvalConfig"),
    "evaluate_approved": ("evaluate_approved", ["model", "alias", "cfg", "pack_uri", "judge"], "EvalConfig"),
}


def test_every_flow_has_a_deployment_with_a_typed_form(stack):
    settings, _ = stack
    for flow, (name, params, config) in STAGE_DEPLOYMENTS.items():
        record = services.deployment(settings, flow, name)
        schema = record["parameter_openapi_schema"]
        assert list(schema["properties"]) == params, flow
        assert config in schema["definitions"], f"{flow}: {config} is not a form"
        assert record["work_pool_name"] == POOL and "dsllm" in record["tags"]
    required = services.deployment(settings, "data_prep", "data_prep")["parameter_openapi_schema"]["required"]
    assert required == ["corpus_uri"]
    full = services.deployment(settings, "evaluate_approved", "evaluate_approved")["parameter_openapi_schema"]
    assert len(full["properties"]["cfg"]["default"]["tasks"]) > 6  # the full task set by default
    assert "EndpointConfig" in full["definitions"]  # the optional judge is a form too


def _schedules(settings: Settings, flow: str, name: str) -> list[dict]:
    record = services.deployment(settings, flow, name)
    return httpx.get(f"{settings.prefect_api}/deployments/{record['id']}/schedules", timeout=10).json()


def test_schedules_nightly_evaluation_and_an_inactive_weekly_retrain(stack):
    settings, _ = stack
    (nightly,) = _schedules(settings, "evaluate_approved", "evaluate_approved")
    assert (nightly["schedule"]["cron"], nightly["schedule"]["timezone"], nightly["active"]) == ("0 2 * * *", "UTC", True)
    (weekly,) = _schedules(settings, "pipeline", "pipeline")
    assert (weekly["schedule"]["cron"], weekly["active"], weekly["parameters"]) == ("0 3 * * 6", False, {"preset": "small"})
    env = {**os.environ, **services.client_env(settings), "COLUMNS": "200"}
    listed = subprocess.run([tool("prefect"), "deployment", "schedule", "ls", "evaluate_approved/evaluate_approved"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0 and "cron: 0 2 * * *" in listed.stdout, listed.stdout + listed.stderr


def _run_deployment(settings: Settings, flow: str, name: str, parameters: dict) -> dict:
    """Create a flow run through the API and wait for the worker to finish it."""
    record = services.deployment(settings, flow, name)
    for _ in range(10):  # a server busy with the worker's polling may answer 503 for a moment on 2 cores
        resp = httpx.post(f"{settings.prefect_api}/deployments/{record['id']}/create_flow_run",
                          json={"parameters": parameters}, timeout=30)
        if resp.status_code != 503:
            break
        time.sleep(3)
    resp.raise_for_status()
    return _wait_final(settings, resp.json())


def _wait_final(settings: Settings, run: dict) -> dict:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        resp = httpx.get(f"{settings.prefect_api}/flow_runs/{run['id']}", timeout=30)
        if resp.status_code == 503:  # busy for a moment: ask again
            time.sleep(1)
            continue
        run = resp.json()
        if run["state"]["type"] in FINAL:
            return run
        time.sleep(1)
    pytest.fail(f"flow run still {run['state']['type']} after {RUN_TIMEOUT_S} s; worker log:\n"
                f"{procs.tail(settings.home.logs / 'prefect-worker.log', 40)}")


def test_worker_runs_a_deployment_against_all_services(stack, tmp_path):
    settings, _ = stack
    result = _cli("deploy", "--prefect-file", str(REPO / "tests/dsllm/prefect-worker-check.yaml"))
    assert result.exit_code == 0, result.output
    out = tmp_path / "seen.json"
    run = _run_deployment(settings, "worker-check", "worker-check", {"out": str(out)})
    assert run["state"]["type"] == "COMPLETED", procs.tail(settings.home.logs / "prefect-worker.log", 40)
    seen = json.loads(out.read_text())
    assert seen["cwd"] == str(REPO) and seen["components"] == str(REPO / "components")
    assert seen["MLFLOW_TRACKING_URI"] == settings.url("mlflow")
    assert seen["DSLLM_HOME"] == str(settings.home.root)
    assert (seen["ray_result"], seen["ray_cpus"]) == (42, float(os.cpu_count()))
    # the artifact landed in the home's artifact store, under a file:// root that works with the server down too
    assert seen["artifact_uri"].startswith(settings.home.mlflow_artifacts.as_uri() + "/")
    assert list(settings.home.mlflow_artifacts.rglob(f"{seen['mlflow_run']}/artifacts/note.txt"))


def _alias_event(model: str, alias: str, version: str) -> dict:
    """The event flows and the CLI publish when an alias moves (CONTRACT-S2)."""
    return {"id": str(uuid.uuid4()), "occurred": datetime.now(UTC).isoformat(), "event": "dsllm.model.alias.moved",
            "resource": {"prefect.resource.id": f"mlflow.model.{model}", "dsllm.model": model, "dsllm.alias": alias,
                         "dsllm.version": version}}


def test_an_approved_alias_event_triggers_its_deployment(stack):
    """The trigger block of tests/dsllm/prefect-worker-check.yaml (deploy_demo's, on a stand-in flow)."""
    settings, _ = stack
    record = services.deployment(settings, "alias-check", "alias-check")  # deployed by the test above
    automations = httpx.post(f"{settings.prefect_api}/automations/filter", json={}, timeout=10).json()
    assert any(a["actions"][0].get("deployment_id") == record["id"] for a in automations)
    events = [_alias_event("dsllm-chat", "previous", "2"), _alias_event("dsllm-chat", "approved", "3")]
    assert httpx.post(f"{settings.prefect_api}/events", json=events, timeout=10).status_code == 204
    runs = _wait_for_runs(settings, record["id"], 1)
    assert runs[0]["parameters"] == {"model": "dsllm-chat", "alias": "approved", "version": "3"}
    run = _wait_final(settings, runs[0])
    assert run["state"]["type"] == "COMPLETED", procs.tail(settings.home.logs / "prefect-worker.log", 40)
    assert json.loads((settings.home.root / "alias-moved.json").read_text())["version"] == "3"
    # both events were handled in order before the approved run finished: `previous` started nothing
    assert len(_wait_for_runs(settings, record["id"], 1)) == 1


def _wait_for_runs(settings: Settings, deployment_id: str, n: int, timeout_s: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        runs = httpx.post(f"{settings.prefect_api}/flow_runs/filter", timeout=10,
                          json={"deployments": {"id": {"any_": [deployment_id]}}}).json()
        if len(runs) >= n or time.monotonic() > deadline:
            assert len(runs) >= n, f"no flow run of the triggered deployment after {timeout_s} s"
            return runs
        time.sleep(1)


def test_worker_runs_the_pipeline_deployment_on_tiny(stack, tmp_path):
    settings, _ = stack
    text = tmp_path / "tiny.txt"
    text.write_text("\n\n".join(f"Paragraph {i}: the quick brown fox jumps over the lazy dog." * 3
                                for i in range(50)))
    overrides = ["sources.names=[]", f"sources.local_paths=['{text}']"]
    # The worker path is what is tested here (the whole tiny pipeline is the e2e tier's job).
    run = _run_deployment(settings, "pipeline", "pipeline", {"preset": "tiny", "overrides": overrides,
                                                              "until": "corpus"})
    assert run["state"]["type"] == "COMPLETED", procs.tail(settings.home.logs / "prefect-worker.log", 60)
    runs = httpx.post(f"{settings.url('mlflow')}/api/2.0/mlflow/runs/search",
                      json={"experiment_ids": [_experiment_id(settings, "dsllm")]}, timeout=10).json()
    assert any(r["info"]["run_name"] == "pipeline-tiny" for r in runs.get("runs", []))
    _check_lineage_links(settings, runs["runs"])


def _check_lineage_links(settings: Settings, runs: list[dict]) -> None:
    """The corpus stage's Prefect link artifact opens its run in the MLflow UI; the pipeline table lists it."""
    artifacts = httpx.post(f"{settings.prefect_api}/artifacts/filter", timeout=10,
                           json={"artifacts": {"key": {"any_": ["dsllm-corpus-mlflow", "dsllm-pipeline-lineage"]}}}).json()
    by_key = {a["key"]: a["data"] for a in artifacts}
    link = re.search(r"\]\((http://[^)]+)\)", by_key["dsllm-corpus-mlflow"]).group(1)
    experiment, run_id = re.fullmatch(rf"{settings.url('mlflow')}/#/experiments/(\w+)/runs/(\w+)", link).groups()
    corpus = next(r for r in runs if r["info"]["run_id"] == run_id)
    assert corpus["info"]["run_name"] == "corpus" and corpus["info"]["experiment_id"] == experiment
    uri = next(t["value"] for t in corpus["data"]["tags"] if t["key"] == "dsllm.artifact_uri")
    assert httpx.get(link.split("#")[0], timeout=10).status_code == 200  # the MLflow UI page itself
    assert f"| corpus | `{uri}` |" in by_key["dsllm-pipeline-lineage"]


def _experiment_id(settings: Settings, name: str) -> str:
    resp = httpx.get(f"{settings.url('mlflow')}/api/2.0/mlflow/experiments/get-by-name",
                     params={"experiment_name": name}, timeout=10)
    return resp.json()["experiment"]["experiment_id"]


def test_the_kubernetes_pool_template_is_accepted_by_the_server(stack):
    """infra/prefect/base-job-template.json, as `prefect work-pool create --base-job-template` sends it."""
    settings, _ = stack
    template = json.loads((REPO / "infra/prefect/base-job-template.json").read_text())
    created = httpx.post(f"{settings.prefect_api}/work_pools/", timeout=10, json={
        "name": "dsllm-k8s-check", "type": "kubernetes", "base_job_template": template})
    assert created.status_code == 201, created.text
    stored = httpx.get(f"{settings.prefect_api}/work_pools/dsllm-k8s-check", timeout=10).json()
    assert stored["base_job_template"]["variables"]["properties"]["shared_pvc"]["default"] == "dsllm-shared"
    broken = {**template, "job_configuration": {**template["job_configuration"], "extra": "{{ undeclared }}"}}
    rejected = httpx.post(f"{settings.prefect_api}/work_pools/", timeout=10, json={
        "name": "dsllm-k8s-broken", "type": "kubernetes", "base_job_template": broken})
    assert rejected.status_code == 422, "the server checks placeholders against the variables"
    httpx.delete(f"{settings.prefect_api}/work_pools/dsllm-k8s-check", timeout=10)


def test_down_stops_everything_and_frees_the_ports(stack):
    settings, states = stack
    members = {p.pid for st in states for p in procs.session_members(st.pid)}
    assert len(members) > 4  # Ray's daemons, MLflow's uvicorn... all in the services' sessions
    result = _cli("down")
    assert result.exit_code == 0, result.output
    assert not [pid for pid in members if procs.alive(pid)]
    for name in ("prefect", "mlflow", "ray"):
        assert procs.port_free(settings.ports[name]), f"{name} port {settings.ports[name]} still taken"
    assert list(settings.home.run.glob("*.pid")) == []
    assert [st.state for st in services.status(settings)] == ["stopped"] * 4
    assert _cli("status").exit_code == 1
    assert not any(p.info["name"] == "raylet" and str(settings.ray_temp_dir()[0]) in " ".join(p.info["cmdline"])
                   for p in psutil.process_iter(["name", "cmdline"]))
