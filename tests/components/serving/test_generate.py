"""Streamed generation on real tiny models: chat template, pieces, stop at eos, context checks, cancel."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from components.serving.card import ModelCard
from components.serving.generate import (
    DEFAULT_SYSTEM,
    GenerationSettings,
    PromptTooLong,
    encode,
    prepare,
    stream,
    to_messages,
)
from components.serving.refs import Served, Target, context_length
from tests.components.serving import fixtures as fx

pytestmark = pytest.mark.unit

GREEDY = GenerationSettings(temperature=0, max_new_tokens=60)


def served_from(directory: Path) -> Served:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(directory).eval()
    tok = AutoTokenizer.from_pretrained(directory)
    return Served(Target(str(directory), "dir", str(directory), path=str(directory)), model, tok,
                  context_length(model, tok), ModelCard("test"))


@pytest.fixture(scope="module")
def v1(chat_dirs) -> Served:
    return served_from(chat_dirs[1])


@pytest.mark.parametrize("kwargs, word", [({"temperature": -0.1}, "temperature"), ({"temperature": 2.5}, "temperature"),
                                          ({"top_p": 0}, "top_p"), ({"max_new_tokens": 0}, "max_new_tokens")])
def test_out_of_range_settings_are_refused(kwargs, word):
    with pytest.raises(ValueError, match=word):
        GenerationSettings(**kwargs)


def test_gradio_history_becomes_chat_messages():
    history = [{"role": "user", "content": [{"type": "text", "text": "hi"}]},
               {"role": "assistant", "content": [{"type": "text", "text": "hel"}, {"type": "text", "text": "lo"}]},
               {"role": "user", "content": "plain"}, {"role": "assistant", "content": "text"}]
    assert to_messages(history, "again", "be brief") == [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"}, {"role": "user", "content": "plain"},
        {"role": "assistant", "content": "text"}, {"role": "user", "content": "again"}]
    assert to_messages([], "x", "  ")[0] == {"role": "user", "content": "x"}


@pytest.mark.parametrize("lang", [0, 1], ids=["english", "chinese"])
@pytest.mark.parametrize("system", ["", DEFAULT_SYSTEM], ids=["no-system", "system"])
def test_greedy_reply_streams_in_pieces_and_stops_at_eos(v1, lang, system):
    tokens = []
    settings = GenerationSettings(system_prompt=system, temperature=0, max_new_tokens=60)
    prompt = prepare(v1, to_messages([], fx.PROMPTS[lang], system), settings)
    pieces = list(stream(v1, prompt, settings, on_tokens=tokens.append))
    reply = fx.replies(1)[lang]
    assert "".join(pieces) == reply
    assert len(pieces) >= 5
    # the reply's own tokens and the eos: generation stopped there, not at max_new_tokens
    assert sum(tokens) == len(v1.tokenizer(reply, add_special_tokens=False)["input_ids"]) + 1 < 60


def test_the_prompt_is_the_chat_template_with_the_generation_prompt(v1):
    messages = to_messages([], "hi", "sys")
    ids = prepare(v1, messages, GREEDY).ids
    tok = v1.tokenizer
    template = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert ids == tok(template, add_special_tokens=False)["input_ids"]
    assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id  # the template's bos, not a second one
    assert template.endswith("<|assistant|>\n") and "<|system|>\nsys" in template


def test_a_message_longer_than_the_context_gets_a_clear_message(v1):
    with pytest.raises(PromptTooLong) as err:
        prepare(v1, to_messages([], "word " * 200, DEFAULT_SYSTEM), GREEDY)
    text = str(err.value)
    assert f"at most {fx.CONTEXT} tokens" in text and "too long" in text and "Shorten it by about" in text
    n = int(text.split("it takes ")[1].split()[0])
    assert n == len(encode(v1.tokenizer, to_messages([], "word " * 200, DEFAULT_SYSTEM)))


def test_old_turns_are_left_out_when_the_history_does_not_fit(v1):
    history = []
    for i in range(6):
        history += [{"role": "user", "content": f"question {i} " * 4}, {"role": "assistant", "content": f"answer {i}"}]
    messages = to_messages(history, fx.PROMPTS[0], DEFAULT_SYSTEM)
    prompt = prepare(v1, messages, GREEDY)
    assert prompt.dropped_turns > 0 and prompt.dropped_turns % 2 == 0
    assert len(prompt.ids) + min(GREEDY.max_new_tokens, 16) <= fx.CONTEXT
    kept = [messages[0], *messages[1 + prompt.dropped_turns:]]
    assert prompt.ids == encode(v1.tokenizer, kept)  # the system prompt and the newest turns stay


def test_max_new_tokens_is_capped_by_the_room_left(v1):
    settings = GenerationSettings(temperature=0, max_new_tokens=500)
    prompt = prepare(v1, to_messages([], fx.PROMPTS[0], DEFAULT_SYSTEM), settings)
    assert prompt.max_new_tokens == fx.CONTEXT - len(prompt.ids)


def test_concurrent_replies_on_one_model_match_sequential_ones(v1):
    results: dict[int, str] = {}

    def run(lang: int) -> None:
        prompt = prepare(v1, to_messages([], fx.PROMPTS[lang], ""), GREEDY)
        results[lang] = "".join(stream(v1, prompt, GREEDY))

    threads = [threading.Thread(target=run, args=(lang,)) for lang in (0, 1, 0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {0: fx.replies(1)[0], 1: fx.replies(1)[1]}


def test_closing_the_stream_stops_the_generation(tmp_path):
    from components.evaluate.toy import toy_model

    served = served_from(toy_model(tmp_path / "toy", chat=True, max_len=512))  # random: rarely emits eos
    settings = GenerationSettings(temperature=0, max_new_tokens=400)
    tokens = []
    pieces = stream(served, prepare(served, to_messages([], "hello", ""), settings), settings, tokens.append)
    next(pieces)
    pieces.close()  # what Gradio does when a client goes away
    assert not [t for t in threading.enumerate() if t.name == "dsllm-generate"]
    assert sum(tokens) < 100
