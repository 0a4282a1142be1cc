"""The chat function's coalesced streaming (`growing_text`), on a fake clock and fake pieces: no server."""

from __future__ import annotations

import pytest

from ui.chat import chat_fn, growing_text

pytestmark = pytest.mark.unit
PIECES = [f"w{i} " for i in range(20)]


class Clock:
    """A clock the piece source moves forward: each piece arrives `gap` seconds after the one before."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def pieces(self, pieces: list[str], gap: float):
        for piece in pieces:
            self.now += gap
            yield piece


def updates(pieces: list[str], gap: float, interval_s: float) -> list[tuple[float, str]]:
    """(clock time, text) of every update growing_text gives."""
    clock = Clock()
    return [(clock.now, text) for text in growing_text(clock.pieces(pieces, gap), interval_s, clock)]


def test_updates_are_gathered_to_one_per_interval_and_end_with_the_whole_reply():
    seen = updates(PIECES, gap=0.03, interval_s=0.1)
    times, texts = [t for t, _ in seen], [text for _, text in seen]
    assert texts[0] == PIECES[0]  # the first piece goes out alone, at once
    assert times[0] == pytest.approx(0.03)
    assert texts[-1] == "".join(PIECES)
    assert all(b.startswith(a) and len(b) > len(a) for a, b in zip(texts, texts[1:], strict=False))
    assert all(b - a >= 0.1 - 1e-9 for a, b in zip(times[:-2], times[1:-1], strict=True))  # the last may be sooner
    assert len(texts) == 6  # at pieces 1, 5, 9, 13, 17 (every 0.12 s) and the end (piece 20)


def test_pieces_slower_than_the_interval_each_go_out_at_once():
    seen = [text for _, text in updates(PIECES, gap=0.2, interval_s=0.1)]
    assert seen == ["".join(PIECES[:i + 1]) for i in range(len(PIECES))]


def test_interval_zero_sends_every_piece_and_empty_pieces_send_nothing():
    pieces = ["", "a", "", "b", "c"]
    assert [text for _, text in updates(pieces, gap=0.0, interval_s=0.0)] == ["a", "ab", "abc"]
    assert [text for _, text in updates(["", "x"], gap=0.0, interval_s=10.0)] == ["x"]  # first non-empty: at once
    assert updates([], gap=0.0, interval_s=0.1) == []


def test_closing_the_stream_closes_its_source():
    clock, closed = Clock(), []

    def source():
        try:
            yield from clock.pieces(PIECES, gap=0.01)
        finally:
            closed.append(True)  # the engine cancels the reply here

    stream = growing_text(source(), 0.1, clock)
    assert next(stream) == PIECES[0]
    stream.close()
    assert closed == [True]


class FakeSlot:
    """Stands in for ModelSlot.reply: the given pieces, whatever the prompt."""

    def __init__(self, pieces: list[str]):
        self.pieces = pieces

    def reply(self, messages, settings):
        return iter(self.pieces)


def test_chat_fn_streams_the_reply_and_names_an_empty_one():
    chat = chat_fn(FakeSlot(PIECES), interval_s=0.0)
    out = list(chat("hello", [], "", 0.0, 1.0, 16))
    assert out[0] == PIECES[0] and out[-1] == "".join(PIECES) and len(out) == len(PIECES)
    assert list(chat_fn(FakeSlot([]), 0.1)("hello", [], "", 0.0, 1.0, 16)) == [
        "(the model ended its reply without any text)"]


def test_the_interval_is_a_demo_setting(monkeypatch):
    from components.serving.config import DemoConfig

    monkeypatch.setenv("DSLLM_DEMO_STREAM_INTERVAL_S", "0.25")
    assert DemoConfig.resolve().stream_interval_s == 0.25
    monkeypatch.setenv("DSLLM_DEMO_STREAM_INTERVAL_S", "-1")
    with pytest.raises(ValueError, match="DSLLM_DEMO_STREAM_INTERVAL_S"):
        DemoConfig.resolve()
