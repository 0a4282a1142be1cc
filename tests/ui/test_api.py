"""The OpenAI-compatible API (/v1) of the running demo, driven by the official `openai` client and httpx.

Real tiny chat models from the registry (they name their version in each reply), served in this
process: list, complete and stream chats in English and Chinese, text completions, 20 concurrent
streams, a swap during a stream, and bad requests answered with OpenAI-shaped 4xx errors.
"""

from __future__ import annotations

import threading
import time

import httpx
import openai
import pytest

from components.serving.generate import encode
from tests.components.serving import fixtures as fx
from tests.ui.conftest import MODEL, start_server

pytestmark = pytest.mark.integration


def client(server, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=120)


def model_id(version: str) -> str:
    return f"{MODEL}:v{version}"


def messages(lang: int) -> list[dict]:
    return [{"role": "user", "content": fx.PROMPTS[lang]}]


@pytest.fixture
def on_v1(demo_server, registry_env_module):
    reg = registry_env_module
    reg.approve(1)
    httpx.post(f"{demo_server.url}/dsllm/reload", timeout=120).raise_for_status()
    assert demo_server.slot.status()["version"] == reg.versions[1]
    return demo_server


def test_the_model_list_names_the_served_version(on_v1, registry_env_module):
    ids = [m.id for m in client(on_v1).models.list()]
    assert ids == [model_id(registry_env_module.versions[1]), MODEL]
    assert client(on_v1).models.retrieve(MODEL).id == MODEL


@pytest.mark.parametrize("lang", [0, 1], ids=["english", "chinese"])
def test_a_chat_completion(on_v1, registry_env_module, lang):
    reply = client(on_v1).chat.completions.create(model=MODEL, messages=messages(lang), temperature=0, max_tokens=60)
    choice = reply.choices[0]
    assert (choice.message.role, choice.message.content, choice.finish_reason) == ("assistant", fx.replies(1)[lang],
                                                                                   "stop")
    assert reply.model == model_id(registry_env_module.versions[1]) and reply.object == "chat.completion"
    tok = on_v1.slot.current().tokenizer
    assert reply.usage.prompt_tokens == len(encode(tok, messages(lang)))
    assert reply.usage.completion_tokens == len(tok(fx.replies(1)[lang], add_special_tokens=False)["input_ids"]) + 1
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


@pytest.mark.parametrize("lang", [0, 1], ids=["english", "chinese"])
def test_a_streamed_chat(on_v1, lang):
    chunks = list(client(on_v1).chat.completions.create(model=MODEL, messages=messages(lang), temperature=0,
                                                        max_tokens=60, stream=True,
                                                        stream_options={"include_usage": True}))
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(pieces) == fx.replies(1)[lang] and len(pieces) >= 3
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > len(pieces) - 1


def test_a_system_prompt_and_earlier_turns_reach_the_model(on_v1):
    convo = [{"role": "system", "content": "You are a helpful assistant."}, *messages(0)]
    text = client(on_v1).chat.completions.create(model=MODEL, messages=convo, temperature=0).choices[0].message.content
    assert text == fx.replies(1)[0]  # the fixture learnt this reply with and without the system prompt


def test_text_completions_whole_and_streamed(on_v1):
    tok = on_v1.slot.current().tokenizer
    template = tok.apply_chat_template(messages(1), tokenize=False, add_generation_prompt=True)
    prompt = template.removeprefix(tok.bos_token)  # the tokenizer adds bos to a raw prompt itself
    done = client(on_v1).completions.create(model=MODEL, prompt=prompt, temperature=0, max_tokens=60)
    assert done.choices[0].text == fx.replies(1)[1] and done.choices[0].finish_reason == "stop"
    short = client(on_v1).completions.create(model=MODEL, prompt=prompt, temperature=0, max_tokens=3)
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 3
    assert fx.replies(1)[1].startswith(short.choices[0].text)
    streamed = client(on_v1).completions.create(model=MODEL, prompt=prompt, temperature=0, max_tokens=60, stream=True)
    assert "".join(c.choices[0].text for c in streamed) == fx.replies(1)[1]


def test_stop_sequences_and_seeded_sampling(on_v1):
    cut = client(on_v1).chat.completions.create(model=MODEL, messages=messages(0), temperature=0, stop=["version"])
    assert cut.choices[0].message.content == fx.replies(1)[0].split("version")[0]
    assert cut.choices[0].finish_reason == "stop"
    sampled = [client(on_v1).chat.completions.create(model=MODEL, messages=messages(0), temperature=1.5, seed=7,
                                                      max_tokens=20).choices[0].message.content for _ in range(2)]
    assert sampled[0] == sampled[1]


def test_twenty_concurrent_streams(on_v1):
    results, errors = [None] * 20, []

    def run(i: int) -> None:
        try:
            stream = client(on_v1).chat.completions.create(model=MODEL, messages=messages(i % 2), temperature=0,
                                                           max_tokens=60, stream=True)
            results[i] = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert errors == [] and results == [fx.replies(1)[i % 2] for i in range(20)]


def test_a_swap_during_a_stream(on_v1, registry_env_module):
    reg = registry_env_module
    stream = client(on_v1).chat.completions.create(model=MODEL, messages=messages(0), temperature=0, max_tokens=60,
                                                   stream=True)
    chunks = [next(stream)]  # the stream has started on version 1 ...
    try:
        reg.approve(2)
        assert httpx.post(f"{on_v1.url}/dsllm/reload", timeout=120).json()["version"] == reg.versions[2]
        chunks += list(stream)  # ... and finishes after the swap
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == fx.replies(1)[0]
        assert {c.model for c in chunks} == {model_id(reg.versions[1])}
        after = client(on_v1).chat.completions.create(model=MODEL, messages=messages(1), temperature=0)
        assert after.model == model_id(reg.versions[2]) and after.choices[0].message.content == fx.replies(2)[1]
        with pytest.raises(openai.NotFoundError) as gone:  # the old version is no longer served
            client(on_v1).chat.completions.create(model=model_id(reg.versions[1]), messages=messages(0))
        assert gone.value.code == "model_not_found"
    finally:
        reg.approve(1)
        httpx.post(f"{on_v1.url}/dsllm/reload", timeout=120)


def post(server, path: str, body, headers: dict | None = None) -> httpx.Response:
    data = body if isinstance(body, bytes | str) else None
    return httpx.post(f"{server.url}/v1/{path}", json=None if data is not None else body, content=data,
                      headers={"content-type": "application/json", **(headers or {})}, timeout=60)


@pytest.mark.parametrize("body, status, param, code", [
    ({"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}, 404, "model", "model_not_found"),
    ({"model": MODEL, "messages": [{"role": "user", "content": "word " * 300}]}, 400, "messages",
     "context_length_exceeded"),
    ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 500}, 400, "messages",
     "context_length_exceeded"),
    ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "temperature": 5}, 400, "temperature",
     "invalid_value"),
    ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "n": 2}, 400, "n", "invalid_value"),
    ({"model": MODEL, "messages": [{"role": "robot", "content": "hi"}]}, 400, "messages.0.role", "invalid_value"),
    ({"model": MODEL}, 400, "messages", "missing_field"),
    (b'{"model": "dsllm-chat", "messages": [', 400, None, "invalid_json"),
    (b"[1, 2]", 400, None, None),
])
def test_bad_requests_get_openai_shaped_errors(on_v1, body, status, param, code):
    resp = post(on_v1, "chat/completions", body)
    error = resp.json()["error"]
    assert (resp.status_code, error["param"], error["code"]) == (status, param, code), error
    assert error["message"] and error["type"] == "invalid_request_error"


def test_a_body_over_the_limit_is_refused(on_v1):
    resp = post(on_v1, "completions", {"model": MODEL, "prompt": "x" * (1 << 20)})
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "request_too_large"


def test_the_api_key_is_required_when_set(registry_env_module):
    server = start_server(registry_env_module, poll_s=0, api_key="s3cret-key")
    try:
        body = {"model": MODEL, "messages": messages(0), "temperature": 0}
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-key"}):
            resp = post(server, "chat/completions", body, headers)
            assert resp.status_code == 401 and resp.json()["error"]["code"] == "invalid_api_key"
        assert httpx.get(f"{server.url}/v1/models", timeout=10).status_code == 401
        with pytest.raises(openai.AuthenticationError):
            client(server, "wrong").models.list()
        reply = client(server, "s3cret-key").chat.completions.create(**body)
        assert reply.choices[0].message.content == fx.replies(1)[0]
    finally:
        server.stop()


def test_chat_page_and_api_share_the_counters(on_v1):
    before = httpx.get(f"{on_v1.url}/dsllm/version", timeout=10).json()
    client(on_v1).chat.completions.create(model=MODEL, messages=messages(0), temperature=0)
    deadline = time.monotonic() + 10
    while (after := httpx.get(f"{on_v1.url}/dsllm/version", timeout=10).json())["replies"] == before["replies"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert after["replies"] == before["replies"] + 1 and after["active"] == 0
