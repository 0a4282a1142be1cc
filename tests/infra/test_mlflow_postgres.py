"""MLflow server on a real PostgreSQL (the cluster setup of infra/mlflow), started by the test on loopback.

PostgreSQL comes from Debian's package (`apt-get install postgresql`; `.ci/run` installs it): the test
runs initdb and pg_ctl as an unprivileged user (PostgreSQL refuses to run as root) with a throwaway
data directory on a free port, starts `mlflow server --backend-store-uri postgresql+psycopg2://...`
(SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3), and talks to it only through
MLFLOW_TRACKING_URI, as a flow run on the cluster does.
"""

from __future__ import annotations

import glob
import os
import pwd
import random
import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx
import mlflow
import pytest

from components.services import procs
from components.services.specs import tool

pytestmark = pytest.mark.integration

MODEL = "dsllm-pg-check"


def pg_bin(name: str) -> str | None:
    """A PostgreSQL server binary: on PATH, or where Debian puts it (/usr/lib/postgresql/<version>/bin)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    return next(p for p in random.sample(range(20000, 32000), 200) if procs.port_free(p))


def _server_user() -> str | None:
    """The user PostgreSQL runs as: ourselves unless we are root (then `postgres`, else `nobody`)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name).pw_name
        except KeyError:
            continue
    pytest.skip("running as root and neither a `postgres` nor a `nobody` user exists to run PostgreSQL")


def _as(user: str | None, argv: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, user=user, capture_output=True, text=True, timeout=120, **kw)


@pytest.fixture(scope="module")
def postgres():
    """A running PostgreSQL on 127.0.0.1:<port> with trust auth for user `dsllm`; yields the port."""
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin; "
                    "install them with `apt-get install postgresql` (.ci/run does)")
    user, port = _server_user(), _free_port()
    root = Path(tempfile.mkdtemp(prefix="dsllm-pg-"))  # outside pytest's 0700 root-owned tmp tree
    data, log = root / "data", root / "postgres.log"
    if user:
        shutil.chown(root, user)
    done = _as(user, [initdb, "-D", str(data), "-U", "dsllm", "--auth=trust", "-E", "UTF8", "--no-sync"])
    assert done.returncode == 0, done.stdout + done.stderr
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {data} -c fsync=off -c full_page_writes=off"
    done = _as(user, [pg_ctl, "-D", str(data), "-o", options, "-l", str(log), "-w", "-t", "90", "start"])
    try:
        assert done.returncode == 0, done.stdout + done.stderr + procs.tail(log)
        yield port
    finally:
        _as(user, [pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"])
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def mlflow_server(postgres, tmp_path_factory):
    """`mlflow server` on the PostgreSQL backend (database `mlflow`), artifacts proxied from a local folder."""
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=postgres, user="dsllm", dbname="postgres")
    conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
    conn.cursor().execute("CREATE DATABASE mlflow")
    conn.close()
    root, port = tmp_path_factory.mktemp("mlflow-pg"), _free_port()
    backend = f"postgresql+psycopg2://dsllm@127.0.0.1:{postgres}/mlflow"
    argv = [tool("mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--backend-store-uri", backend, "--serve-artifacts", "--artifacts-destination", str(root / "artifacts")]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    pid = procs.spawn(argv, env, root / "mlflow.log")
    url = f"http://127.0.0.1:{port}"
    try:
        if not procs.wait_until(lambda: _healthy(url) or not procs.alive(pid), 240) or not procs.alive(pid):
            pytest.fail(f"mlflow server on PostgreSQL did not start:\n{procs.tail(root / 'mlflow.log', 40)}")
        yield {"url": url, "backend": backend, "pg_port": postgres, "artifacts": root / "artifacts"}
    finally:
        procs.stop_session(pid)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_runs_and_registry_live_in_postgres(mlflow_server, monkeypatch, tmp_path):
    import psycopg2

    mlflow.set_tracking_uri(None)  # forget any URI set earlier in this process (this also unsets the variable)
    monkeypatch.setattr(mlflow.tracking._model_registry.utils, "_registry_uri", None)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)  # the registry follows the tracking URI
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server["url"])  # resolved from here, as in a flow run
    assert mlflow.get_tracking_uri() == mlflow_server["url"]
    mlflow.set_experiment("dsllm-pg")
    note = tmp_path / "note.md"
    note.write_text("# trained on PostgreSQL-backed MLflow\n")
    with mlflow.start_run(run_name="pg-check") as run:
        mlflow.log_params({"preset": "tiny", "lr": 3e-4})
        for step, loss in enumerate([3.0, 2.5, 2.1]):
            mlflow.log_metric("loss", loss, step=step)
        mlflow.log_artifact(str(note), artifact_path="report")
        mlflow.pyfunc.log_model(name="model", python_model=Echo(), pip_requirements=[],
                                registered_model_name=MODEL)
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(MODEL, "approved", "1")
    client.set_model_version_tag(MODEL, "1", "dsllm.gate", "passed")

    fresh = mlflow.MlflowClient(tracking_uri=mlflow_server["url"])  # read back through the server
    got = fresh.get_run(run.info.run_id)
    assert got.data.params == {"preset": "tiny", "lr": "0.0003"}
    assert [m.value for m in fresh.get_metric_history(run.info.run_id, "loss")] == [3.0, 2.5, 2.1]
    assert [a.path for a in fresh.list_artifacts(run.info.run_id, "report")] == ["report/note.md"]
    local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="report/note.md",
                                                dst_path=str(tmp_path / "dl"))
    assert Path(local).read_text() == note.read_text()
    version = fresh.get_model_version_by_alias(MODEL, "approved")
    assert (version.version, version.run_id, version.tags["dsllm.gate"]) == ("1", run.info.run_id, "passed")
    assert mlflow.pyfunc.load_model(f"models:/{MODEL}@approved").predict(["hi"]) == ["hi"]
    # the rows are in PostgreSQL (not a file store somewhere), the artifacts behind the proxy
    with psycopg2.connect(host="127.0.0.1", port=mlflow_server["pg_port"], user="dsllm", dbname="mlflow") as conn:
        cur = conn.cursor()
        cur.execute("SELECT name FROM runs WHERE run_uuid = %s", (run.info.run_id,))
        assert cur.fetchone() == ("pg-check",)
        cur.execute("SELECT alias, version FROM registered_model_aliases WHERE name = %s", (MODEL,))
        assert cur.fetchall() == [("approved", 1)]
    conn.close()
    assert list(mlflow_server["artifacts"].rglob("report/note.md"))



class Echo(mlflow.pyfunc.PythonModel):
    """A trivial model: the registry is what is tested, not the model."""

    def predict(self, context, model_input: list[str], params=None) -> list[str]:
        return list(model_input)
