"""Batched, prefix-sharing scoring must equal scoring each full prompt on its own."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from components.evaluate.lm import HFLM, ChoiceRequest, GenRequest, cut_at_stop

pytestmark = pytest.mark.unit
SHOTS = ("Question: 1+1?\nAnswer: 2\n\n", "Question: 2+2?\nAnswer: 4\n\n", "Question: 3+3?\nAnswer: 6\n\n")


@pytest.fixture(scope="module")
def parts(toy_base):
    return AutoModelForCausalLM.from_pretrained(toy_base), AutoTokenizer.from_pretrained(toy_base)


def naive(model, tok, prompt: str, choice: str) -> float:
    """Log-probability of `choice` after `prompt`, from one plain forward pass over the joint text."""
    ctx, full = tok(prompt)["input_ids"], tok(prompt + choice)["input_ids"]
    n = next((i for i, (a, b) in enumerate(zip(ctx, full, strict=False)) if a != b), len(ctx))
    with torch.no_grad():
        logprobs = torch.log_softmax(model(torch.tensor([full])).logits[0].float(), -1)
    return sum(float(logprobs[i - 1, full[i]]) for i in range(n, len(full)))


def requests() -> list[ChoiceRequest]:
    questions = ["what is 3+4", "why", "以下是中国关于考试", "a much longer question with many words to vary lengths"]
    out = [ChoiceRequest("Header.\n\n", SHOTS, f"Question: {q}?\nAnswer:", (" A", " Bcd efg", " 42 is it", "x"))
           for q in questions]
    out.append(ChoiceRequest("", (), "Hello", (" world", "!")))  # no shared prefix at all
    out.append(ChoiceRequest("Other header\n", SHOTS[:1], "Q: ok\nA:", (" yes", " no")))  # a second prefix group
    return out


@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_scores_equal_plain_forward_passes(parts, batch_size):
    model, tok = parts
    lm = HFLM(model, tok, "toy", batch_size=batch_size)
    for request, score in zip(requests(), lm.loglikelihood(requests()), strict=True):
        prompt = request.header + "".join(request.shots) + request.context
        expected = [naive(model, tok, prompt, c) for c in request.choices]
        assert score.logprobs == pytest.approx(expected, abs=2e-3)
        assert score.shots_used == len(request.shots)


def test_long_prompts_lose_shots_then_context(parts):
    model, tok = parts
    request = requests()[0]
    full = len(tok(request.header + "".join(request.shots) + request.context + " Bcd efg")["input_ids"])
    lm = HFLM(model, tok, "toy", max_length=full - 5)
    score = lm.loglikelihood([request])[0]
    assert score.shots_used == 2  # the last shot went
    prompt = request.header + "".join(request.shots[:2]) + request.context
    assert score.logprobs == pytest.approx([naive(model, tok, prompt, c) for c in request.choices], abs=2e-3)
    tiny = HFLM(model, tok, "toy", max_length=12)
    assert tiny.loglikelihood([request])[0].shots_used == 0  # and then the context's oldest tokens


def test_greedy_flag_marks_the_models_own_continuation(parts):
    model, tok = parts
    lm = HFLM(model, tok, "toy")
    for prompt in ("Question: 1+1?", "Answer:", "def f(x):", "The answer is", "Hello"):
        ids = tok(prompt, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            best = int(model(ids).logits[0, -1].argmax())
        text = tok.decode([best])
        if tok(prompt + text)["input_ids"][ids.shape[1]:] == [best]:  # a token that survives decode + encode
            break
    else:
        pytest.skip("no greedy token of this random model round-trips through text")
    other = next(t for t in (" the", " x", "1") if t != text)
    score = lm.loglikelihood([ChoiceRequest("", (), prompt, (text, other))])[0]
    assert score.greedy == [True, False]
    assert score.logprobs[0] > score.logprobs[1]


def test_generation_is_greedy_by_default_and_samples_n(parts):
    model, tok = parts
    lm = HFLM(model, tok, "toy", batch_size=2)
    reqs = [GenRequest("", SHOTS, "Question: 5+5?\nAnswer:", (), 8), GenRequest("", (), "def f(x):", (), 6),
            GenRequest("", (), "def g(y):", (), 5, n=3, temperature=0.9)]
    out = lm.generate(reqs)
    assert [len(o) for o in out] == [1, 1, 3]
    ids = tok("def f(x):", return_tensors="pt")["input_ids"]
    direct = model.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out[1][0] == tok.decode(direct[0, ids.shape[1]:], skip_special_tokens=True)
    assert lm.generate(reqs[:2]) == out[:2]  # deterministic


def test_generation_keeps_a_prompt_when_the_budget_exceeds_the_context(parts):
    model, tok = parts
    lm = HFLM(model, tok, "toy", max_length=24)
    request = GenRequest("", SHOTS, "Question: 5+5?\nAnswer:", (), 500)
    prompt = lm._gen_prompt(request)
    assert 0 < len(prompt) <= 12 and prompt[-1] == tok("Question: 5+5?\nAnswer:")["input_ids"][-1]
    assert len(lm.generate([request])[0][0]) > 0


def test_stop_strings_cut_the_output():
    assert cut_at_stop("x = 1\ndef g():\n#c", ("\n#", "\ndef")) == "x = 1"
    assert cut_at_stop("no stop", ("\n\n",)) == "no stop"


def test_chat_template_parts_wrap_a_user_message(toy_chat):
    tok = AutoTokenizer.from_pretrained(toy_chat)
    lm = HFLM(AutoModelForCausalLM.from_pretrained(toy_chat), tok, "toy")
    assert lm.is_chat
    head, tail = lm.chat_parts
    assert head + "Hi" + tail == tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False,
                                                         add_generation_prompt=True)
    tok.chat_template = None
    with pytest.raises(ValueError, match="no chat_template"):
        HFLM(lm.model, tok, "toy", chat=True)


def test_chat_prompts_get_exactly_one_bos(toy_chat):
    tok = AutoTokenizer.from_pretrained(toy_chat)
    lm = HFLM(AutoModelForCausalLM.from_pretrained(toy_chat), tok, "toy")
    head, tail = lm.chat_parts
    assert head.startswith(tok.bos_token)  # the template writes BOS itself
    prepared = lm._prepare(ChoiceRequest(head + "Pick one.\n", SHOTS[:1], "Question: 2+2?" + tail, ("4", "5")))
    ids = list(prepared.prefix) + prepared.ctx
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
    plain = HFLM(lm.model, tok, "toy", chat=False)._prepare(ChoiceRequest("Pick one.\n", (), "Q?", ("4",)))
    assert plain.prefix[0] == tok.bos_token_id  # base prompts get BOS from the tokenizer


def test_empty_choice_is_refused(parts):
    lm = HFLM(*parts, "toy")
    with pytest.raises(ValueError, match="non-empty"):
        lm.loglikelihood([ChoiceRequest("", (), "Q", ("",))])
