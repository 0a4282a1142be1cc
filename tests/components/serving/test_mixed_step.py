"""A decode step with joiners prefilled in it gives every row and every joiner the logits a forward over its whole
sequence gives: the running rows at their next position, each joiner at its prompt's end (one that starts with
the shared prefix from a copy of its keys/values, one that does not from nothing)."""

from __future__ import annotations

import pytest
import torch

from components.serving import engine as engine_module
from components.serving.engine import Engine, Request
from components.serving.generate import encode
from components.serving.textstream import ReplyText
from tests.components.serving.test_engine import toy  # noqa: F401 (the fixture)

pytestmark = pytest.mark.unit


def chat(tok, text: str) -> list[int]:
    return encode(tok, [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": text}])


def test_a_mixed_step_gives_rows_and_joiners_the_logits_of_their_whole_sequences(toy, monkeypatch):  # noqa: F811
    tok, calls, real = toy.tokenizer, [], engine_module.next_tokens

    def recorded(logits, rows):
        tokens = real(logits, rows)
        calls.append((logits.clone(), list(rows), tokens.tolist()))
        return tokens

    monkeypatch.setattr(engine_module, "next_tokens", recorded)
    engine = Engine(toy)

    def request(ids: list[int]) -> Request:
        return Request(ids, 50, 0.0, 1.0, lambda event: None, ReplyText(tok, ()))

    running = [request(chat(tok, "hello there")), request(chat(tok, "以下是中国关于考试的单项选择题"))]
    joiners = [request(chat(tok, "What is 7 plus 5?")), request(tok("def f(x): return x + 1")["input_ids"])]
    with torch.inference_mode():
        engine._join(running)
        for _ in range(3):
            engine._step()
        assert engine._mixes
        engine._mixed_step(joiners)
    assert [engine._prefix.covers(req.ids) for req in joiners] == [True, False]  # both kinds of joiner

    history = {id(req): [] for req in running + joiners}
    for _, rows, tokens in calls[:-1]:
        for req, token in zip(rows, tokens, strict=True):
            history[id(req)].append(token)
    logits, rows, _ = calls[-1]
    assert rows == running + joiners
    with torch.inference_mode():
        for got, req in zip(logits, rows, strict=True):
            whole = torch.tensor([req.ids + history[id(req)]])
            expected = toy.model(input_ids=whole).logits[0, -1]
            torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    assert len(engine._rows) == 4  # the joiners went on in the batch
