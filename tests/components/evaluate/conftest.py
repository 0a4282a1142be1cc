"""Fixtures for the evaluation tests: the miniature catalog, tiny models and oracle "models"."""

from __future__ import annotations

import pytest
import torch

from components.evaluate import data
from components.evaluate.toy import toy_model
from tests.components.evaluate.fixtures import write_catalog


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    # The test models have d_model 64: threads only add contention on a shared 2-core machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def catalog_dirs(tmp_path_factory):
    return write_catalog(tmp_path_factory.mktemp("catalog"))


@pytest.fixture
def catalog(catalog_dirs, monkeypatch, home):
    """The miniature catalog in place of the downloaded wheels and ../shared/data/benchmarks."""
    monkeypatch.setattr(data, "package_dir", lambda name, home=None: catalog_dirs[name])
    monkeypatch.setenv("DSLLM_BENCHMARKS", str(catalog_dirs["benchmarks"]))
    return catalog_dirs


@pytest.fixture(scope="session")
def toy_base(tmp_path_factory):
    return toy_model(tmp_path_factory.mktemp("toy-base"), chat=False)


@pytest.fixture(scope="session")
def toy_chat(tmp_path_factory):
    return toy_model(tmp_path_factory.mktemp("toy-chat"), chat=True)
