"""UI tests reuse the serving tests' tiny chat models and registry, and add running demos.

`demo_server`: the app in this process (uvicorn thread) on `models:/dsllm-chat@approved`, polling
the alias every 0.3 s, chat updates at most every 0.02 s. `free_port()`: a port between Ray's worker range and the ephemeral range.
"""

from __future__ import annotations

import random

import pytest

from components.services import procs
from tests.components.serving import conftest as serving

# the serving tests' fixtures, shared (pytest finds fixtures by the names in a conftest's namespace)
MODEL = serving.MODEL
_one_torch_thread, chat_dirs, registry, registry_env = (serving._one_torch_thread, serving.chat_dirs,
                                                        serving.registry, serving.registry_env)


def free_port() -> int:
    return next(p for p in random.sample(range(20000, 32000), 200) if procs.port_free(p))


def start_server(registry, **settings):
    """An in-process demo on the registry; the caller stops it."""
    from components.serving.config import DemoConfig
    from ui.app import Server, open_slot

    cfg = DemoConfig(model=f"models:/{MODEL}@approved", port=free_port(), **settings)
    return Server(open_slot(cfg), cfg).start()


@pytest.fixture(scope="module")
def registry_env_module(registry):
    """registry_env for a whole module (the in-process server reads the environment when it loads)."""
    patch = pytest.MonkeyPatch()
    patch.setenv("DSLLM_HOME", str(registry.home.root))
    patch.setenv("MLFLOW_TRACKING_URI", registry.uri)
    registry.approve(1)
    yield registry
    registry.approve(1)
    patch.undo()


@pytest.fixture(scope="module")
def demo_server(registry_env_module):
    # the tiny test model replies in a few ms: an update per decoded piece, so replies stream in several
    # pieces (the coalescing itself is tested in test_chat.py)
    server = start_server(registry_env_module, poll_s=0.3, stream_interval_s=0)
    yield server
    server.stop()
