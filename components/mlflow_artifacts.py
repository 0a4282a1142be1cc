"""One home, either mode: `mlflow-artifacts:` URIs read and written without the server.

The MLflow server `dsllm up` starts keeps its artifacts in `<home>/mlflow/artifacts` (its
`--artifacts-destination`) and gives new experiments a plain `file://` root there, which both modes
can write. Homes used with an older server still hold experiments and model versions whose roots are
`mlflow-artifacts:/<path>`; MLflow resolves those only through an HTTP tracking URI. `install()`
makes the scheme work against the home's SQLite store too: when the tracking URI is a SQLite file,
`mlflow-artifacts:/<path>` is the local directory `<folder of the .db>/artifacts/<path>` (exactly
where the server put it); with an HTTP tracking URI MLflow's own repository is used, as before.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

SCHEME = "mlflow-artifacts"
_installed = False


def local_root(tracking_uri: str) -> Path | None:
    """The artifact folder beside a SQLite tracking database (the home's layout), else None."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return Path(tracking_uri[len("sqlite:///"):]).parent / "artifacts"


def local_path(artifact_uri: str, tracking_uri: str) -> Path | None:
    """Where `mlflow-artifacts:/<path>` lives when `tracking_uri` is the home's SQLite file, else None."""
    root = local_root(tracking_uri)
    if root is None:
        return None
    relative = unquote(urlparse(artifact_uri).path).lstrip("/")
    path = (root / relative).resolve()
    if root.resolve() not in (path, *path.parents):  # `..` in a stored URI must not leave the home
        raise ValueError(f"artifact URI {artifact_uri!r} points outside {root}")
    return path


def _repository(artifact_uri: str, tracking_uri: str | None = None, registry_uri: str | None = None):
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository
    from mlflow.store.artifact.mlflow_artifacts_repo import MlflowArtifactsRepository
    from mlflow.tracking._tracking_service.utils import get_tracking_uri

    effective = tracking_uri or get_tracking_uri()
    path = local_path(artifact_uri, effective)
    if path is None:
        return MlflowArtifactsRepository(artifact_uri, tracking_uri=tracking_uri, registry_uri=registry_uri)
    return LocalArtifactRepository(path.as_uri(), tracking_uri=effective, registry_uri=registry_uri)


def install() -> None:
    """Register the scheme's resolver in this process (idempotent)."""
    global _installed
    if _installed:
        return
    from mlflow.store.artifact.artifact_repository_registry import _artifact_repository_registry

    _artifact_repository_registry.register(SCHEME, _repository)
    _installed = True
