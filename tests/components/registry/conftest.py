"""One artifact lineage and one MLflow store per test module (a registry test module is a sequence of
registrations); each test registers under its own model name, so aliases never leak between tests."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from components.artifacts import ArtifactStore
from components.home import Home
from tests.components.registry.fixtures import build_lineage


@dataclass
class Registry:
    home: Home
    store: ArtifactStore
    uris: dict[str, str]


@pytest.fixture(scope="session")
def toy_models(tmp_path_factory):
    return tmp_path_factory.mktemp("toy-models")


@pytest.fixture(scope="module")
def registry(tmp_path_factory, toy_models):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # toy models: a second thread only contends on a shared 2-core machine
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        home = Home.resolve(tmp_path_factory.mktemp("registry") / "home")
        mp.setenv("DSLLM_HOME", str(home.root))
        store = ArtifactStore(home)
        yield Registry(home, store, build_lineage(store, toy_models))
    torch.set_num_threads(threads)


@pytest.fixture
def name(request) -> str:
    """A registered model name of this test's own."""
    return "t-" + re.sub(r"[^\w-]+", "-", request.node.name)[:80]
