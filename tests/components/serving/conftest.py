"""Fixtures for the serving and UI tests: tiny chat models that name their version, and a registry.

`chat_dirs`: two trained model directories (versions 1 and 2 of the fixture). `registry`: a
SQLite MLflow in a home of its own holding `dsllm-chat` versions 1, 2 (the two models) and 3 (a
candidate the alias never points at, with version 1's weights), alias `approved` on version 1.
Tests that move the alias put it back (`registry.approve(...)`).

tests/ui and tests/flows/test_deploy_demo.py import these fixtures; pytest then holds one
definition per importing directory, so the models and the registry are memoised here to be built
once per test run, not once per directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from components.home import Home
from tests.components.serving import fixtures as fx

MODEL = "dsllm-chat"
_BUILT: dict[str, object] = {}  # one build per test run, whichever directory asks first


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    # d_model 64: a second thread only adds contention on a shared 2-core machine
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def chat_dirs(tmp_path_factory) -> dict[int, Path]:
    if "chat_dirs" not in _BUILT:
        root = tmp_path_factory.mktemp("chat-models")
        tok = fx.tokenizer(root / "spm")
        first = fx.chat_model(root / "v1", 1, tok)
        _BUILT["chat_dirs"] = {1: first, 2: fx.chat_model(root / "v2", 2, tok, start_from=first)}
    return _BUILT["chat_dirs"]


@dataclass
class Registry:
    home: Home
    uri: str
    versions: dict[int, str]  # fixture version → registry version

    def client(self):
        from mlflow import MlflowClient

        return MlflowClient(self.uri, self.uri)

    def approve(self, version: int) -> str:
        """Move alias `approved` to the registry version of fixture version `version`."""
        self.client().set_registered_model_alias(MODEL, "approved", self.versions[version])
        return self.versions[version]


@pytest.fixture(scope="session")
def registry(tmp_path_factory, chat_dirs) -> Registry:
    if "registry" not in _BUILT:
        root = tmp_path_factory.mktemp("registry")
        home = Home.resolve(root / "home")
        uri = f"sqlite:///{home.mlflow_db}"
        versions = fx.register(uri, MODEL, {1: chat_dirs[1], 2: chat_dirs[2], 3: chat_dirs[1]}, root / "work")
        _BUILT["registry"] = Registry(home, uri, versions)
    reg = _BUILT["registry"]
    reg.approve(1)
    return reg


@pytest.fixture
def registry_env(registry, monkeypatch) -> Registry:
    """The registry's home and tracking URI in the environment (what the demo process reads)."""
    monkeypatch.setenv("DSLLM_HOME", str(registry.home.root))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.uri)
    registry.approve(1)
    return registry
