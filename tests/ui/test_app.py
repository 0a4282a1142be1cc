"""The Gradio app over HTTP in this process: gradio_client round trips, streaming, limits, swaps, login."""

from __future__ import annotations

import time

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from components.serving.generate import DEFAULT_SYSTEM
from tests.components.serving import fixtures as fx
from tests.ui.conftest import start_server

pytestmark = pytest.mark.integration


def chat(url: str, message: str, **kwargs) -> str:
    """One message in a fresh session (greedy, the demo's default system prompt)."""
    return Client(url, verbose=False, **kwargs).predict(message, DEFAULT_SYSTEM, 0.0, 0.95, 64, api_name="/chat")


def version(url: str) -> str:
    return httpx.get(f"{url}/dsllm/version", timeout=10).json()["version"]


def wait_version(url: str, expected: str, timeout_s: float = 30.0) -> str:
    deadline = time.monotonic() + timeout_s
    while version(url) != expected and time.monotonic() < deadline:
        time.sleep(0.2)
    return version(url)


@pytest.fixture
def on_v1(demo_server, registry_env_module):
    registry_env_module.approve(1)
    assert wait_version(demo_server.url, registry_env_module.versions[1]) == registry_env_module.versions[1]
    return demo_server


@pytest.mark.parametrize("lang", [0, 1], ids=["english", "chinese"])
def test_gradio_client_round_trip(on_v1, lang):
    assert chat(on_v1.url, fx.PROMPTS[lang]) == fx.replies(1)[lang]


def test_replies_stream_in_several_growing_pieces(on_v1):
    job = Client(on_v1.url, verbose=False).submit(fx.PROMPTS[1], DEFAULT_SYSTEM, 0.0, 0.95, 64, api_name="/chat")
    final = job.result(timeout=60)
    seen = [text for text in job.outputs() if text]
    assert final == fx.replies(1)[1]
    assert len(set(seen)) >= 3
    assert all(b.startswith(a) for a, b in zip(seen, seen[1:], strict=False))  # each piece extends the last


def test_an_over_length_prompt_gets_a_clear_message(on_v1):
    with pytest.raises(AppError, match=r"too long for this model.*at most 128 tokens"):
        chat(on_v1.url, "word " * 300)
    assert chat(on_v1.url, fx.PROMPTS[0]) == fx.replies(1)[0]  # and the app carries on


def test_bad_settings_are_refused(on_v1):
    with pytest.raises(AppError, match="minimum value 0.05"):
        Client(on_v1.url, verbose=False).predict("hi", "", 0.0, 0.0, 64, api_name="/chat")
    with pytest.raises(AppError, match="maximum value 2"):
        Client(on_v1.url, verbose=False).predict("hi", "", 2.5, 0.9, 64, api_name="/chat")


def test_polling_moves_the_running_demo_to_the_new_approved_version(on_v1, registry_env_module):
    reg = registry_env_module
    reg.approve(2)
    assert wait_version(on_v1.url, reg.versions[2], timeout_s=30) == reg.versions[2]
    assert chat(on_v1.url, fx.PROMPTS[0]) == fx.replies(2)[0]
    assert chat(on_v1.url, fx.PROMPTS[1]) == fx.replies(2)[1]


def test_a_candidate_the_alias_does_not_point_at_is_never_served(on_v1, registry_env_module):
    reg = registry_env_module
    reg.approve(2)
    wait_version(on_v1.url, reg.versions[2])
    time.sleep(1.0)  # several polls with a newer, unapproved version 3 in the registry
    state = httpx.post(f"{on_v1.url}/dsllm/reload", timeout=60).json()
    assert state["version"] == reg.versions[2] != reg.versions[3]
    assert chat(on_v1.url, fx.PROMPTS[0]) == fx.replies(2)[0]


def test_version_route_says_what_is_served(on_v1, registry_env_module):
    state = httpx.get(f"{on_v1.url}/dsllm/version").json()
    assert state["ref"] == "models:/dsllm-chat@approved" and state["alias"] == "approved"
    assert state["version"] == registry_env_module.versions[1] and state["context"] == fx.CONTEXT


def test_login_is_required_when_auth_is_set(registry_env_module):
    server = start_server(registry_env_module, poll_s=0, auth="alice:s3cret")
    try:
        with pytest.raises(Exception, match="(?i)login|auth|401|403"):
            chat(server.url, fx.PROMPTS[0])
        with pytest.raises(Exception, match="(?i)login|auth|401|403|invalid"):
            chat(server.url, fx.PROMPTS[0], auth=("alice", "wrong"))
        assert chat(server.url, fx.PROMPTS[0], auth=("alice", "s3cret")) == fx.replies(1)[0]
        assert httpx.get(f"{server.url}/config", timeout=10).status_code == 401  # the page shows its login form
    finally:
        server.stop()
