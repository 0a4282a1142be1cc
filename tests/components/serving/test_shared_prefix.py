"""The shared prompt prefix (chat template and system prompt) is prefilled once and copied into each joining
request: the prefix is learned from the prompts, and replies are those of a whole prefill."""

from __future__ import annotations

import pytest
import torch

from components.serving.engine import Engine, Request
from components.serving.generate import GenerationSettings, Prompt, prepare, stream, to_messages
from components.serving.shared_prefix import SharedPrefix
from components.serving.textstream import ReplyText
from tests.components.serving.test_engine import collect, concurrently, toy  # noqa: F401 - the toy fixture

pytestmark = pytest.mark.unit

SYSTEM = "You are a helpful assistant."
QUESTIONS = ("hello", "The answer is 42 and the final", "以下是中国关于考试的单项选择题", "a")


def test_the_prefix_is_what_the_prompts_share_and_leaves_each_a_token():
    computed = []

    def prefill(ids):
        computed.append(ids)
        return [(torch.tensor(ids, dtype=torch.float32)[None, None, :, None],) * 2]  # keys = values = the ids

    prefix = SharedPrefix(prefill, min_tokens=3)
    prefix.learn([[1, 2, 3, 4, 5, 6, 7]])  # one prompt, nothing seen before: nothing to share yet
    assert prefix.ids == () and not computed
    prefix.learn([[1, 2, 3, 4, 5, 6, 9]])  # what it shares with the one before
    assert prefix.ids == (1, 2, 3, 4, 5, 6) and computed == [[1, 2, 3, 4, 5, 6]]
    assert prefix.covers([1, 2, 3, 4, 5, 6, 0]) and not prefix.covers([1, 2, 3, 4, 5, 6])
    assert not prefix.covers([1, 2, 3, 4, 5, 7, 8])
    prefix.learn([[1, 2, 3, 4, 5, 6, 8], [1, 2, 3, 4, 5, 6, 2, 2]])  # covered: nothing computed
    assert len(computed) == 1
    prefix.learn([[1, 2, 3, 4, 9], [1, 2, 3, 4, 5]])  # they share 4 tokens of it: cut, nothing computed
    assert prefix.ids == (1, 2, 3, 4) and len(computed) == 1
    assert prefix.rows(2)[0][0].tolist() == [[[[1.0], [2.0], [3.0], [4.0]]]] * 2
    prefix.learn([[5, 5, 5, 5, 1], [5, 5, 5, 5, 2]])  # another system prompt: learned anew
    assert prefix.ids == (5, 5, 5, 5) and computed[-1] == [5, 5, 5, 5]
    prefix.learn([[7, 7, 1], [8, 8, 8, 8]])  # too little shared: the prefix stays, these prefill whole
    assert prefix.ids == (5, 5, 5, 5) and len(computed) == 2


def chat_prompts(served) -> list[list[int]]:
    settings = GenerationSettings(system_prompt=SYSTEM, temperature=0, max_new_tokens=30)
    return [prepare(served, to_messages([], q, SYSTEM), settings).ids for q in QUESTIONS]


def test_replies_from_the_shared_prefix_equal_whole_prefills(toy):  # noqa: F811
    ids = chat_prompts(toy)
    greedy = GenerationSettings(temperature=0, max_new_tokens=30)
    alone = ["".join(stream(toy, Prompt(i, 30), greedy)).rstrip("\ufffd") for i in ids]  # transformers' generate
    engine = Engine(toy, max_batch=8)
    prefilled = []
    compute = engine._prefix._prefill
    engine._prefix._prefill = lambda prefix_ids: prefilled.append(prefix_ids) or compute(prefix_ids)
    one_by_one = [collect(engine, i, max_new_tokens=30)[0] for i in ids]
    together = concurrently(engine, [(i, {"max_new_tokens": 30}) for i in ids * 2], stagger_s=0.002)
    shared = len(engine._prefix.ids)
    assert shared >= 8 and all(i[:shared] == list(engine._prefix.ids) for i in ids)  # the template + system prompt
    assert toy.tokenizer.decode(list(engine._prefix.ids)).count(SYSTEM) == 1
    assert len(prefilled) == 1  # computed once, then copied
    assert one_by_one == alone and [text for text, _ in together] == alone * 2


def test_a_row_started_from_the_prefix_holds_the_keys_and_values_of_its_whole_prompt(toy):  # noqa: F811
    import torch
    from transformers import DynamicCache

    ids = chat_prompts(toy)
    engine = Engine(toy, max_batch=8)
    engine._prefix.learn(ids[:2])
    stacked = []
    engine._stack = lambda reqs, cache, mask, last: stacked.append((cache, mask))
    with torch.inference_mode():  # one join of every prompt, on this thread (no loop thread to race with)
        engine._join([Request(prompt, 4, 0.0, 1.0, lambda event: None, ReplyText(toy.tokenizer, ())) for prompt in ids])
    assert len(stacked) == 1 and len(engine._prefix.ids) >= 8
    cache, mask = stacked[0]
    assert mask.shape[1] < max(map(len, ids)) + len(engine._prefix.ids)  # the prefix is in once, not padded in
    with torch.inference_mode():
        for row, prompt in enumerate(ids):
            whole = DynamicCache(config=toy.model.config)
            toy.model(input_ids=torch.tensor([prompt]), cache=whole, use_cache=True)
            columns = mask[row].bool()
            for mine, theirs in zip(cache.layers, whole.layers, strict=True):
                assert torch.allclose(mine.keys[row][:, columns], theirs.keys[0], atol=1e-5)
                assert torch.allclose(mine.values[row][:, columns], theirs.values[0], atol=1e-5)
