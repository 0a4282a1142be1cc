"""Shared fixtures: every test gets its own DSLLM_HOME, telemetry off, GPU tests skipped without a GPU."""

from __future__ import annotations

import os
import sys
import tempfile
import time

import pytest

from components.home import Home, quiet_telemetry

quiet_telemetry()
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Prefect's own files (result cache, settings) go to a throwaway folder, never the user's ~/.prefect.
_prefect_home = tempfile.mkdtemp(prefix="dsllm-test-prefect-")
os.environ.setdefault("PREFECT_HOME", _prefect_home)
os.environ.setdefault("PREFECT_LOCAL_STORAGE_PATH", os.path.join(_prefect_home, "storage"))


@pytest.fixture
def home(tmp_path, monkeypatch) -> Home:
    """A fresh, isolated home directory (DSLLM_HOME points at it)."""
    monkeypatch.setenv("DSLLM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return Home.resolve()


@pytest.fixture(scope="session")
def shared_cache_home(tmp_path_factory) -> Home:
    """A home shared by a whole test session, so registry downloads happen once per run.

    `DSLLM_TEST_CACHE` (e.g. set by CI) points at a directory that survives between runs.
    """
    root = os.environ.get("DSLLM_TEST_CACHE") or tmp_path_factory.mktemp("cached-home")
    return Home.resolve(root)


_MLFLOW_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def _restore_mlflow_globals(saved: dict[str, str | None]) -> None:
    """MLflow keeps the tracking and registry URIs in module globals and mirrors them into the environment:
    forget both and put the variables back, so one test's store never becomes a later test's default."""
    if "mlflow" in sys.modules:
        import mlflow
        from mlflow.tracking import _model_registry, _tracking_service

        while mlflow.active_run():
            mlflow.end_run()
        _tracking_service.utils._tracking_uri = None
        _model_registry.utils._registry_uri = None
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _drain_prefect_workers() -> None:
    """Prefect's events and log workers are process-wide and keep the API they were first started against:
    drain them so the next module's Prefect server gets fresh ones (not ones sending to a stopped server)."""
    if "prefect" not in sys.modules:
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (EventsWorker, APILogWorker):
        worker.drain_all(timeout=15)


@pytest.fixture(autouse=True, scope="module")
def _process_globals_per_module():
    saved = {name: os.environ.get(name) for name in _MLFLOW_URI_VARIABLES}
    yield
    _restore_mlflow_globals(saved)
    _drain_prefect_workers()


@pytest.fixture(autouse=True)
def _mlflow_globals_per_test():
    saved = {name: os.environ.get(name) for name in _MLFLOW_URI_VARIABLES}
    yield
    _restore_mlflow_globals(saved)


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        # DSLLM_GPU_TIER_ON_CPU=1: a dry run of the GPU tier's code paths on the CPU (tests/gpu)
        has_gpu = torch.cuda.is_available() or os.environ.get("DSLLM_GPU_TIER_ON_CPU") == "1"
    except ImportError:
        has_gpu = False
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-compatible server (moto) on a free loopback port for the whole session."""
    from tests.s3server import LoopbackS3

    server = LoopbackS3().start()
    yield server
    server.stop()


@pytest.fixture
def slow_s3_completion(s3_server, monkeypatch) -> list:
    """The loopback server answers CompleteMultipartUpload only after 2 s, longer than s3fs's default read
    timeout (lowered to 1 s here, as under load moto takes longer than the real 15 s for a large object).
    Returns the upload ids of the completions it received: a client that retries one too early gets two, and
    moto answers a retry that races the first completion with HTTP 500 (closed part buffers)."""
    import s3fs
    from moto.s3.models import S3Backend

    calls: list = []
    complete = S3Backend.complete_multipart_upload

    def slow(self, bucket_name, multipart_id, body):
        calls.append(multipart_id)
        time.sleep(2)
        return complete(self, bucket_name, multipart_id, body)

    monkeypatch.setattr(S3Backend, "complete_multipart_upload", slow)
    monkeypatch.setattr(s3fs.S3FileSystem, "read_timeout", 1)
    s3fs.S3FileSystem.clear_instance_cache()  # instances made before keep the timeout they were made with
    yield calls
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def s3_root(s3_server, monkeypatch) -> str:
    """`DSLLM_ARTIFACTS_URI` pointing at a fresh bucket on the loopback S3 server."""
    uri = s3_server.bucket() + "/dsllm"
    monkeypatch.setenv("DSLLM_ARTIFACTS_URI", uri)
    return uri
