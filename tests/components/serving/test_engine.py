"""Continuous batching on real tiny models: batched replies equal one-at-a-time ones, token for token.

The reference for greedy decoding is `generate.stream` (transformers' own `generate`, one request
alone); for seeded sampling it is the engine with one request alone. Requests of different prompt
lengths join while others are decoding, so rows are left-padded, stacked and dropped mid-flight.
"""

from __future__ import annotations

import threading
import time

import pytest

from components.serving.engine import Engine, Event
from components.serving.generate import GenerationSettings, Prompt, prepare, stream, to_messages
from components.serving.textstream import ReplyText
from tests.components.serving import fixtures as fx
from tests.components.serving.test_generate import served_from

pytestmark = pytest.mark.unit

TEXTS = ("hello", "The answer is 42 and the final", "以下是中国关于考试的单项选择题", "a",
         "def f(x): return x + 1 " * 6, "Problem: Solution: Final Answer:")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    from components.evaluate.toy import toy_model

    # random weights: replies run to the token limit, so every row stays in the batch for many steps
    return served_from(toy_model(tmp_path_factory.mktemp("toy") / "m", chat=True, max_len=512, seed=3))


@pytest.fixture(scope="module")
def v1(chat_dirs):
    return served_from(chat_dirs[1])


def prompts(served) -> list[list[int]]:
    return [served.tokenizer(t)["input_ids"] for t in TEXTS]


def collect(engine: Engine, ids: list[int], **kwargs) -> tuple[str, Event]:
    events = list(engine.stream(ids, **kwargs))
    return "".join(e.text for e in events), events[-1]


def concurrently(engine: Engine, jobs: list[tuple[list[int], dict]], stagger_s: float = 0.02) -> list[tuple]:
    """Run the jobs from threads started a little apart (later ones join a batch already decoding)."""
    results: list = [None] * len(jobs)

    def run(i: int) -> None:
        results[i] = collect(engine, jobs[i][0], **jobs[i][1])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
        time.sleep(stagger_s)
    for t in threads:
        t.join(timeout=300)
    return results


def test_batched_greedy_replies_equal_generate_one_at_a_time(toy):
    ids = prompts(toy)
    greedy = GenerationSettings(temperature=0, max_new_tokens=40)
    # the engine leaves out a character the token limit cut in half; generate's streamer shows it as U+FFFD
    alone = ["".join(stream(toy, Prompt(i, 40), greedy)).rstrip("\ufffd") for i in ids]
    engine = Engine(toy, max_batch=8)
    jobs = [(ids[k % len(ids)], {"max_new_tokens": 40}) for k in range(12)]  # more than max_batch: some wait
    results = concurrently(engine, jobs, stagger_s=0.002)  # a step can take under 1 ms: start them close
    assert [text for text, _ in results] == [alone[k % len(ids)] for k in range(12)]
    assert all(last.finish_reason == "length" and last.completion_tokens == 40 for _, last in results)
    assert engine.steps < 12 * 39 * 0.6  # the rows really shared steps
    deadline = time.monotonic() + 10
    while engine._thread is not None and time.monotonic() < deadline:  # idle: the loop thread ends
        time.sleep(0.05)
    assert engine._thread is None


def test_trained_replies_stop_at_eos_in_a_batch(v1):
    greedy = GenerationSettings(system_prompt="", temperature=0, max_new_tokens=60)
    ids = [prepare(v1, to_messages([], fx.PROMPTS[lang], system), greedy).ids
           for lang in (0, 1) for system in ("", "You are a helpful assistant.")]
    results = concurrently(Engine(v1), [(i, {"max_new_tokens": 60}) for i in ids * 3], stagger_s=0.005)
    expected = [fx.replies(1)[0]] * 2 + [fx.replies(1)[1]] * 2
    assert [text for text, _ in results] == expected * 3
    for (text, last), i in zip(results, ids * 3, strict=True):
        assert last.finish_reason == "stop" and last.prompt_tokens == len(i)
        assert last.completion_tokens == len(v1.tokenizer(text, add_special_tokens=False)["input_ids"]) + 1  # + eos


def test_stop_sequences_and_token_limits_per_request(toy):
    ids = prompts(toy)
    full = [collect(Engine(toy), i, max_new_tokens=40)[0] for i in ids]
    stops = [text[8:11] if len(text) > 12 else "\u2603" for text in full]
    jobs = [(i, {"max_new_tokens": 40, "stop": (s, "\u2602")}) for i, s in zip(ids, stops, strict=True)]
    jobs += [(i, {"max_new_tokens": 5 + k}) for k, i in enumerate(ids)]
    results = concurrently(Engine(toy, max_batch=16), jobs)
    for (text, last), whole, s in zip(results, full, stops, strict=False):
        if s in whole:
            assert text == whole[:whole.index(s)] and last.finish_reason == "stop"
        else:
            assert text == whole and last.finish_reason == "length"
    limited = results[len(ids):]
    assert [last.completion_tokens for _, last in limited] == [5 + k for k in range(len(ids))]
    assert all(last.finish_reason == "length" for _, last in limited)


def test_seeded_sampling_is_the_same_alone_and_in_a_batch(toy):
    ids = prompts(toy)
    settings = [{"max_new_tokens": 30, "temperature": t, "top_p": p, "seed": seed}
                for seed, (t, p) in enumerate([(0.7, 0.95), (1.0, 1.0), (1.3, 0.5)] * 2)]
    alone = [collect(Engine(toy), ids[k % len(ids)], **s)[0] for k, s in enumerate(settings)]
    batched = concurrently(Engine(toy), [(ids[k % len(ids)], s) for k, s in enumerate(settings)], stagger_s=0.01)
    assert [text for text, _ in batched] == alone
    reseeded = collect(Engine(toy), ids[0], **(settings[0] | {"seed": 1234}))[0]
    assert reseeded != alone[0]  # the seed, not the prompt alone, decides
    greedy = collect(Engine(toy), ids[0], max_new_tokens=30)[0]
    assert alone[0] != greedy


def test_a_reader_that_leaves_frees_its_row(toy):
    engine = Engine(toy)
    events = engine.stream(prompts(toy)[0], max_new_tokens=400)
    next(events)
    events.close()
    other, last = collect(engine, prompts(toy)[1], max_new_tokens=10)
    assert last.completion_tokens == 10 and engine._rows == []


def test_a_prompt_without_room_is_refused(toy):
    with pytest.raises(ValueError, match="no room"):
        Engine(toy).submit([1] * toy.context, lambda e: None, max_new_tokens=5)


def test_streamed_text_joins_to_the_decoded_reply(v1):
    tok = v1.tokenizer
    ids = tok("我是第一版测试模型。 Hello world, 你好！", add_special_tokens=False)["input_ids"]
    text = ReplyText(tok)
    pieces = [text.push(i) for i in ids] + [text.flush()]
    assert "".join(pieces) == tok.decode(ids, skip_special_tokens=True)
    assert all("\ufffd" not in p for p in pieces)  # a partial character is never shown


def test_a_stop_sequence_is_held_back_until_it_is_known(v1):
    tok = v1.tokenizer
    ids = tok("one two three four", add_special_tokens=False)["input_ids"]
    text = ReplyText(tok, stop=("three",))
    pieces = [text.push(i) for i in ids]
    assert "".join(pieces) == "one two " and text.stopped
    assert all("th" not in p for p in pieces)


@pytest.mark.parametrize("mixes", [True, False], ids=["within-a-decode-step", "on-their-own"])
def test_joiners_are_prefilled_together_and_reply_as_if_alone(toy, monkeypatch, mixes):
    ids = prompts(toy)
    greedy = GenerationSettings(temperature=0, max_new_tokens=20)
    alone = ["".join(stream(toy, Prompt(i, 20), greedy)).rstrip("\ufffd") for i in ids]
    prefills, forward = [], toy.model.forward
    monkeypatch.setattr(toy.model, "forward", lambda **kw: (prefills.append(kw["input_ids"].shape),
                                                           forward(**kw))[1])
    engine, release, held = Engine(toy), threading.Event(), []
    engine._mixes = mixes  # as an attention implementation that cannot mix (eager, flash) would leave it

    def hold(event: Event) -> None:  # runs on the engine's thread: it waits while the others queue up
        held.append(event)
        release.wait(timeout=60)

    engine.submit(ids[0], hold, max_new_tokens=20)
    while not held:
        time.sleep(0.01)
    results: list = [None] * len(ids)
    threads = [threading.Thread(target=lambda k: results.__setitem__(k, collect(engine, ids[k], max_new_tokens=20)),
                                args=(k,)) for k in range(len(ids))]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(engine._waiting) < len(ids) and time.monotonic() < deadline:  # all queued behind the held step
        time.sleep(0.01)
    release.set()
    for t in threads:
        t.join(timeout=300)
    assert [text for text, _ in results] == alone
    if mixes:  # one forward: the held reply's next token and every joiner's prompt, laid end to end
        assert any(shape[0] == 1 and shape[1] > max(map(len, ids)) for shape in prefills), prefills
        assert not any(shape[0] == len(ids) and shape[1] > 1 for shape in prefills)
    else:  # one forward prefilled every joiner, left-padded, before the next step
        assert (len(ids), max(map(len, ids))) in prefills
