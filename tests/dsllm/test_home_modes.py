"""One home, either mode: the same home used with the MLflow server `dsllm up` starts, then without it (the
SQLite file), then with it again. Each phase does what the pipeline, `dsllm eval`, the scaling study and the
registry do (runs with artifacts, a registered version) and reads back every version registered so far, whichever
mode registered it. A second test starts the server as older homes had it (artifacts only behind the server,
`mlflow-artifacts:` roots) and checks the embedded mode can still write and read those experiments.
"""

from __future__ import annotations

import time
from pathlib import Path

import mlflow
import pytest

from components.artifacts import ArtifactStore
from components.config import EvalConfig
from components.evaluate.report import log_mlflow
from components.home import Home, mlflow_client, point_mlflow_at
from components.registry import register
from components.scaling.tracking import TrialRuns
from components.services import Settings, procs
from components.services.specs import argv_for, env_for, healthy
from flows import tracking
from tests.components.registry.fixtures import build_lineage, evaluation, with_scores
from tests.ui.conftest import free_port

pytestmark = pytest.mark.integration

CHAT = "dsllm-chat"


class MlflowServer:
    """The home's MLflow server, started exactly as `dsllm up` starts it (or with older arguments)."""

    def __init__(self, legacy: bool = False):
        self.legacy, self.pid = legacy, None

    def up(self, mp: pytest.MonkeyPatch) -> None:
        mp.setenv("DSLLM_MLFLOW_PORT", str(free_port()))
        s = Settings.resolve()
        argv = argv_for("mlflow", s)
        if self.legacy:  # before this home fix: no file:// default root, so new experiments got mlflow-artifacts:/
            argv = argv[:argv.index("--default-artifact-root")]
        self.pid = procs.spawn(argv, env_for("mlflow", s), s.home.logs / "mlflow.log", cwd=s.home.root)
        deadline = time.monotonic() + 180
        while not healthy("mlflow", s, self.pid):
            assert procs.alive(self.pid) and time.monotonic() < deadline, procs.tail(s.home.logs / "mlflow.log")
            time.sleep(0.5)
        mp.setenv("MLFLOW_TRACKING_URI", s.url("mlflow"))

    def down(self, mp: pytest.MonkeyPatch) -> None:
        procs.stop_session(self.pid)
        self.pid = None
        mp.delenv("MLFLOW_TRACKING_URI")


@pytest.fixture
def server(home, monkeypatch):
    servers: list[MlflowServer] = []

    def start(legacy: bool = False) -> MlflowServer:
        servers.append(MlflowServer(legacy))
        servers[-1].up(monkeypatch)
        return servers[-1]

    yield start
    for srv in servers:
        if srv.pid and procs.alive(srv.pid):
            procs.stop_session(srv.pid)


def _work(home: Home, tmp: Path, phase: int) -> str:
    """What the commands write in one phase; returns the chat version it registered."""
    store = ArtifactStore(home)
    uris = build_lineage(store, tmp / f"models-{phase}", seed=10 * phase)
    with tracking.pipeline_run(f"pipeline-phase{phase}", {"phase": phase}) as parent:  # the pipeline
        with tracking.stage_run("data", {"phase": phase}):
            mlflow.log_text(f"phase {phase}", "report/phase.txt")
        TrialRuns(home.mlflow_uri, parent).trial(  # the scaling study's trial runs
            {"id": f"trial{phase}", "kind": "grid", "budget": 1e10, "m": 1e5, "tokens": 1e5, "status": "ok",
             "loss": 3.0, "model": {"n_layer": 2, "d_model": 64, "n_head": 2},
             "pretrain": {"batch_tokens": 2048, "lr": 1e-3}})
        scored = evaluation(store, uris, with_scores(gsm8k=0.1 * phase))
        version = register("chat", uris["dpo"], evaluation=scored, name=CHAT, parent_run_id=parent).version
    out = tmp / f"eval-{phase}"
    (out / "report").mkdir(parents=True)
    (out / "report" / "scorecard.md").write_text(f"phase {phase}")
    log_mlflow({"gsm8k": {"exact_match": 0.5}}, out, "models:/x/1", EvalConfig(limit=1))  # `dsllm eval`
    return str(version)


def _read_back(home: Home, versions: list[str], tmp: Path) -> None:
    """Every registered version's weights and card, and every run's artifacts, can be read in this mode."""
    point_mlflow_at(home.mlflow_uri)  # as a new command does: whatever this mode's store is
    client = mlflow_client(home)
    for version in versions:
        files = mlflow.artifacts.download_artifacts(f"models:/{CHAT}/{version}", dst_path=str(tmp / f"v{version}"))
        assert any(Path(files).rglob("config.json")), f"v{version}: no model files in {files}"
    for exp in client.search_experiments():
        for run in client.search_runs([exp.experiment_id]):
            client.list_artifacts(run.info.run_id)


def _phase(home: Home, tmp: Path, phase: int, versions: list[str]) -> None:
    versions.append(_work(home, tmp, phase))
    _read_back(home, versions, tmp / f"read-{phase}")


def test_one_home_switches_modes_in_both_directions(home, server, monkeypatch, tmp_path):
    versions: list[str] = []
    srv = server()
    _phase(home, tmp_path, 1, versions)  # services up
    roots = {e.name: e.artifact_location for e in mlflow_client(home).search_experiments()}
    assert all(r.startswith("file://") for r in roots.values()), f"experiments the server created: {roots}"
    srv.down(monkeypatch)
    _phase(home, tmp_path, 2, versions)  # services down: the SQLite file
    srv = server()
    _phase(home, tmp_path, 3, versions)  # up again
    assert versions == ["1", "2", "3"]
    srv.down(monkeypatch)
    _read_back(home, versions, tmp_path / "read-final")


def test_a_home_from_an_older_server_works_without_it(home, server, monkeypatch, tmp_path):
    versions: list[str] = []
    srv = server(legacy=True)
    _phase(home, tmp_path, 1, versions)
    roots = {e.name: e.artifact_location for e in mlflow_client(home).search_experiments()}
    assert any(r.startswith("mlflow-artifacts:") for r in roots.values()), roots  # what older homes hold
    srv.down(monkeypatch)
    _phase(home, tmp_path, 2, versions)
    client = mlflow_client(home)
    run = client.search_runs([e.experiment_id for e in client.search_experiments()],
                             "attributes.run_name = 'data'", order_by=["attributes.start_time DESC"])[0]
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # written without the server, where it keeps them
    written = home.mlflow_artifacts / run.info.artifact_uri.split(":", 1)[1].lstrip("/") / "report" / "phase.txt"
    assert written.read_text() == "phase 2"
