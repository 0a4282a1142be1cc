"""The one home directory that holds everything dsllm writes.

`DSLLM_HOME` (default `~/.dsllm`) contains artifacts/, mlflow/ (SQLite database and artifact
store), prefect/, ray/, cache/ (downloads), logs/ and run/ (pid files). Every path returned here
is absolute, so it can be handed to Ray workers whose working directory differs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = "~/.dsllm"
SUBDIRS = ("artifacts", "mlflow", "prefect", "ray", "cache", "logs", "run")


@dataclass(frozen=True)
class Home:
    root: Path

    @classmethod
    def resolve(cls, root: str | Path | None = None) -> Home:
        """`root`, else `$DSLLM_HOME`, else ~/.dsllm; made absolute and created."""
        path = Path(root or os.environ.get("DSLLM_HOME") or DEFAULT_HOME).expanduser().resolve()
        for sub in SUBDIRS:
            (path / sub).mkdir(parents=True, exist_ok=True)
        return cls(path)

    def sub(self, name: str) -> Path:
        return self.root / name

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def ray(self) -> Path:
        return self.root / "ray"

    @property
    def prefect(self) -> Path:
        return self.root / "prefect"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow" / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root / "mlflow" / "artifacts"

    @property
    def mlflow_uri(self) -> str:
        """The tracking URI: `$MLFLOW_TRACKING_URI` when set (a server), else the local SQLite file."""
        return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.mlflow_db}"


STAGE_RUN_ENV = "DSLLM_MLFLOW_RUN_ID"
"""The one path from the flow to a building stage's MLflow run: `flows.tracking.stage_run` sets it while the stage
builds; components read it through `stage_mlflow_run()` only (Ray workers get the id and URI passed on)."""


def stage_mlflow_run(home: Home | None = None) -> tuple[str | None, str | None]:
    """(run id, tracking URI) of the MLflow run of the stage being built, or (None, None) outside one."""
    run_id = os.environ.get(STAGE_RUN_ENV) or None
    return (run_id, (home or Home.resolve()).mlflow_uri) if run_id else (None, None)


def mlflow_client(home: Home | None = None, tracking_uri: str | None = None):
    """An MlflowClient whose registry is the tracking store too: left unset, MLflow takes the registry from a
    process-wide setting (`mlflow.set_registry_uri`, `$MLFLOW_REGISTRY_URI`), which may name another store."""
    from mlflow import MlflowClient

    from components import mlflow_artifacts

    mlflow_artifacts.install()
    uri = tracking_uri or (home or Home.resolve()).mlflow_uri
    ensure_mlflow_schema(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def ensure_mlflow_schema(uri: str) -> None:
    """Create a SQLite tracking database's tables under a file lock beside it: two processes starting on a
    fresh home would otherwise both run MLflow's migrations ("table ... already exists")."""
    if not uri.startswith("sqlite:///"):
        return
    db = Path(uri.removeprefix("sqlite:///"))
    ready = db.with_name(db.name + ".ready")
    if ready.is_file():
        return
    from filelock import FileLock
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    db.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(db.with_name(db.name + ".lock"))):
        if not ready.is_file():
            SqlAlchemyStore(uri, (db.parent / "artifacts").as_uri())  # creates and migrates the schema
            ready.touch()


def point_mlflow_at(uri: str) -> None:
    """Point MLflow's process-wide tracking AND registry URIs at `uri`: the registry setting is separate and
    sticky (mirrored into $MLFLOW_REGISTRY_URI), so a model registered or loaded by models:/ URI could
    otherwise land in or come from another store than the runs."""
    import mlflow

    from components import mlflow_artifacts

    mlflow_artifacts.install()  # a home once used with the server must work without it (and back)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)


def use_mlflow_experiment(name: str, home: Home | None = None, tracking_uri: str | None = None) -> str:
    """Point MLflow at the tracking store and select experiment `name`, creating it with its artifacts in the
    home (a local store) so nothing lands in ./mlruns; returns the experiment id."""
    import mlflow

    home = home or Home.resolve()
    uri = tracking_uri or home.mlflow_uri
    ensure_mlflow_schema(uri)
    point_mlflow_at(uri)
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        experiment_id = found.experiment_id
    else:
        location = None if uri.startswith("http") else home.mlflow_artifacts.as_uri()
        experiment_id = mlflow.create_experiment(name, artifact_location=location)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def export_env(home: Home | None = None) -> Home:
    """Point Prefect at the home (before prefect is imported) and silence telemetry."""
    home = home or Home.resolve()
    os.environ.setdefault("PREFECT_HOME", str(home.prefect))
    os.environ.setdefault("PREFECT_LOCAL_STORAGE_PATH", str(home.prefect / "storage"))
    # Without `dsllm up`, Prefect starts a temporary server; on a busy 2-core machine 20 s is too short.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    quiet_telemetry()
    return home


def quiet_telemetry() -> None:
    """Turn every library's usage reporting off unless the user set it explicitly, and Hub kernels too:
    transformers >= 5.25 fetches compute kernels (remote code) from the Hub for models it loads on a GPU,
    which fails offline (seen on an H200) and would swap the model code the project measured."""
    for key, value in {
        "MLFLOW_DISABLE_TELEMETRY": "true", "GRADIO_ANALYTICS_ENABLED": "False",
        "RAY_USAGE_STATS_ENABLED": "0", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "TOKENIZERS_PARALLELISM": "false",
        "USE_HUB_KERNELS": "NO",
    }.items():
        os.environ.setdefault(key, value)
