"""The engine in a child process: the same replies as in a thread, a hot-swap that retires the old process,
and a process that dies costs only the replies in flight (the next reply starts a new one)."""

from __future__ import annotations

import os
import time

import pytest

from components.serving.cores import usable_cores
from components.serving.engine_process import EngineProcess, EngineSpec
from components.serving.generate import GenerationSettings, to_messages
from components.serving.refs import resolve
from components.serving.slot import ModelSlot
from tests.components.serving import fixtures as fx
from tests.components.serving.conftest import MODEL
from tests.components.serving.test_engine import concurrently, prompts
from tests.components.serving.test_generate import served_from

pytestmark = pytest.mark.integration

GREEDY = GenerationSettings(system_prompt="", temperature=0, max_new_tokens=60)


def ask(slot: ModelSlot, lang: int = 0) -> str:
    return "".join(slot.reply(to_messages([], fx.PROMPTS[lang], ""), GREEDY))


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    from components.evaluate.toy import toy_model

    return toy_model(tmp_path_factory.mktemp("toy") / "m", chat=True, max_len=512, seed=3)


def test_replies_from_the_process_equal_the_thread_engine(toy_dir, tmp_path):
    from components.serving.engine import Engine

    served = served_from(toy_dir)
    ids = prompts(served)
    jobs = [(ids[k % len(ids)], {"max_new_tokens": 30, "temperature": t, "seed": k})
            for k, t in enumerate([0.0, 0.8] * 4)]
    expected = concurrently(Engine(served), jobs)
    counts: dict[str, int] = {}
    spec = EngineSpec(resolve(str(toy_dir)), str(tmp_path / "home"), "float32", 1, max_batch=4, queue_size=8)
    engine = EngineProcess(spec, served.context, lambda key, n: counts.update({key: counts.get(key, 0) + n}))
    try:
        got = concurrently(engine, jobs)  # 8 requests, 4 rows: some wait for a row
        assert [(text, last.finish_reason, last.completion_tokens) for text, last in got] == \
            [(text, last.finish_reason, last.completion_tokens) for text, last in expected]
        tokens = [last.completion_tokens for _, last in got]
        steps = counts.pop("steps")  # decode steps: each reply's first token comes from its prefill
        assert counts == {"active": 0, "replies": 8, "tokens": sum(tokens)}
        assert max(tokens) - 1 <= steps <= sum(tokens) - len(tokens)
        with pytest.raises(ValueError, match="no room"):
            engine.submit([1] * served.context, lambda e: None, max_new_tokens=5)
    finally:
        engine.close()


@pytest.fixture
def process_slot(registry_env):
    """The demo's slot on the registry's approved version, its engine in a child process, a reply in flight."""
    slot = ModelSlot(f"models:/{MODEL}@approved", engine_threads=1)
    slot.refresh()
    in_flight = slot.reply(to_messages([], fx.PROMPTS[0], ""), GREEDY)
    yield slot, in_flight, next(in_flight)
    slot.close()


def test_a_swap_retires_the_old_engine_process(process_slot, registry_env):
    slot, in_flight, first = process_slot
    old = slot.current().engine
    assert isinstance(old, EngineProcess) and slot.current().model is None  # the weights live in the child
    registry_env.approve(2)
    assert slot.refresh() is True
    assert ask(slot, 1) == fx.replies(2)[1]
    assert first + "".join(in_flight) == fx.replies(1)[0]  # finished on the old process ...
    old._reader.join(timeout=30)  # the reader reaps the process once its pipe closes
    assert old._process.exitcode == 0  # ... which then ended by itself
    assert (slot.status()["replies"], slot.status()["active"]) == (2, 0)


def test_an_engine_process_that_dies_fails_its_replies_and_is_restarted(process_slot):
    slot, in_flight, _ = process_slot
    dead = slot.current().engine
    dead._process.kill()
    with pytest.raises(RuntimeError, match="engine process exited"):
        "".join(in_flight)
    assert ask(slot, 1) == fx.replies(1)[1]  # a new process serves the next reply
    assert slot.current().engine is not dead and slot.status()["active"] == 0


def test_a_model_that_cannot_load_fails_with_the_reason(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    spec = EngineSpec(resolve(str(tmp_path / "m")), str(tmp_path / "home"), "float32", 1, 4, 8)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="could not load"):
        EngineProcess(spec, 128)
    assert time.monotonic() - started < 120


@pytest.mark.skipif(len(usable_cores()) < 2 or not hasattr(os, "sched_setaffinity"),
                    reason="needs two usable cores and Linux's sched_setaffinity")
def test_the_engine_process_runs_on_its_own_cores(toy_dir, tmp_path):
    import psutil

    mine = usable_cores()[-1:]
    spec = EngineSpec(resolve(str(toy_dir)), str(tmp_path / "home"), "float32", 1, max_batch=4, queue_size=8,
                      cores=frozenset(mine))
    engine = EngineProcess(spec, 512)
    try:
        child = psutil.Process(engine._process.pid)
        threads = [psutil.Process(t.id) for t in child.threads()]  # a Linux thread is a task with its own id
        assert len(threads) >= 2, "the loop and the threads that talk to the parent"
        assert {tuple(t.cpu_affinity()) for t in threads} == {tuple(mine)}
        assert psutil.Process().cpu_affinity() == usable_cores(), "the parent is left as it was"
    finally:
        engine.close()


def test_the_outbox_hands_up_a_step_at_a_time():
    from components.serving.engine import Event
    from components.serving.engine_process import StepOutbox, _counts_first

    outbox = StepOutbox()
    outbox.add((1, Event("a")))
    outbox.add((None, ("tokens", 1)))
    outbox.add((2, Event("b")))
    outbox.add((None, ("tokens", 1)))
    assert outbox.queue.empty(), "nothing goes up in the middle of a step"
    outbox.flush()
    outbox.flush()  # an empty step sends nothing
    step = outbox.queue.get_nowait()
    assert outbox.queue.empty()
    assert _counts_first(step) == [(None, ("tokens", 2)), (1, Event("a")), (2, Event("b"))]
    outbox.add((3, Event(done=True, finish_reason="stop")))
    outbox.close()  # what is left goes up, then the end
    assert outbox.queue.get_nowait() == [(3, Event(done=True, finish_reason="stop"))]
    assert outbox.queue.get_nowait() is None
