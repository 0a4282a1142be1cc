"""Shared fixtures: every test gets its own DSLLM_HOME, telemetry off, GPU tests skipped without a GPU."""

from __future__ import annotations

import os
import tempfile

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


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(skip_gpu)
