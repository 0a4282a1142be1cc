"""The chat template from the tokenizer, the SFT labels TRL builds from it, and generation markers."""

from __future__ import annotations

import tempfile

import pytest

from components.align.chat import (
    assistant_mask,
    check_template,
    completion_ids,
    generate,
    load_tokenizer,
    role_token_ids,
)
from components.config import AlignConfig
from tests.components.align import fixtures as fx

pytestmark = pytest.mark.unit

CONVERSATION = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2 plus 3?"},
                {"role": "assistant", "content": "The answer is 5."}, {"role": "user", "content": "一加一等于几？"},
                {"role": "assistant", "content": "答案是2。"}]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return fx.make_base_model(tmp_path_factory.mktemp("base")) / "hf"


@pytest.fixture(scope="module")
def tok(base):
    return load_tokenizer(base)


def _sft_batch(base, tok, records, packing=False):
    from datasets import Dataset

    from components.align.runner import load_model
    from components.align.sft import build_trainer

    cfg = AlignConfig(max_length=128, batch_size=len(records), packing=packing)
    trainer = build_trainer(cfg, load_model(str(base), cfg, tok), tok, Dataset.from_list(records), None,
                            tempfile.mkdtemp())
    return next(iter(trainer.get_train_dataloader()))


@pytest.mark.parametrize("packing", [False, True])
def test_sft_labels_cover_assistant_turns_and_eos_only(base, tok, packing):
    records = [{"messages": CONVERSATION}, {"messages": CONVERSATION[1:3]}]
    batch = _sft_batch(base, tok, records, packing)
    ids, labels = batch["input_ids"], batch["labels"]
    trained = [tok.convert_ids_to_tokens(int(i)) for i, lab in zip(ids.flatten(), labels.flatten(), strict=True)
               if lab != -100]
    text = tok.convert_tokens_to_string(trained)
    # exactly the assistant contents, each closed by eos (packing may reorder the conversations)
    turns = text.split(tok.eos_token)
    assert turns[-1] == "" and sorted(t.strip() for t in turns[:-1]) == sorted(
        ["The answer is 5.", "答案是2。", "The answer is 5."])
    for word in ("Be brief", "What is", "一加一", "<|user|>", "<|assistant|>", "<|system|>"):
        assert word not in text
    role_ids = role_token_ids(tok)
    assert all(labels.flatten()[ids.flatten() == r].eq(-100).all() for r in role_ids)


def test_assistant_mask_ends_each_turn_on_eos(tok):
    out = assistant_mask(tok, CONVERSATION)
    ids, mask = out["input_ids"], out["assistant_masks"]
    ends = [i for i in range(len(ids) - 1) if mask[i] and not mask[i + 1]] + ([len(ids) - 1] if mask[-1] else [])
    assert [ids[i] for i in ends] == [tok.eos_token_id, tok.eos_token_id]


def test_role_tokens_come_from_the_template(tok):
    names = set(tok.convert_ids_to_tokens(sorted(role_token_ids(tok))))
    assert {"<|system|>", "<|user|>", "<|assistant|>"} <= names
    assert tok.eos_token not in names and not any(n.startswith("<0x") for n in names)


def test_generation_prompt_is_a_prefix_of_the_answered_conversation(tok):
    ids, start = completion_ids(tok, CONVERSATION[1:2], CONVERSATION[2:3], max_length=128)
    prompt = tok.apply_chat_template(CONVERSATION[1:2], tokenize=True, return_dict=True,
                                     add_generation_prompt=True)["input_ids"]
    assert ids[:start] == prompt
    assert tok.decode(ids[start:], skip_special_tokens=True).strip() == "The answer is 5."
    assert ids[-1] == tok.eos_token_id


@pytest.mark.parametrize("template, message", [
    (None, "has no chat template"),
    (fx.TEMPLATE.replace("{% generation %}", "").replace("{% endgeneration %}", ""), "no {% generation %}"),
    (fx.TEMPLATE.replace("{{ eos_token }}{% endgeneration %}", "{% endgeneration %}{{ eos_token }}"),
     "leaves the eos token outside"),
])
def test_unusable_templates_fail_clearly(tok, template, message):
    original = tok.chat_template
    tok.chat_template = template
    try:
        with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}")):
            check_template(tok)
    finally:
        tok.chat_template = original


def test_generate_reports_eos_and_role_tokens(base, tok):
    from components.align.runner import load_model

    model = load_model(str(base), AlignConfig(), tok)
    replies = generate(model, tok, ["Hi", [{"role": "user", "content": "你好"}]], max_new_tokens=5)
    assert [r["prompt"] for r in replies] == ["Hi", "你好"]
    for r in replies:  # a random model: it rarely stops, but the bookkeeping must be consistent
        assert len(r["ids"]) <= 5 and r["stopped_at_eos"] == (r["ids"][-1] == tok.eos_token_id)
        assert r["role_tokens"] == sum(i in role_token_ids(tok) for i in r["ids"])


def test_checkpointing_argument_is_one_the_installed_transformers_accepts(tmp_path):
    from transformers import TrainingArguments

    from components.align.runner import checkpointing_arg

    arg = checkpointing_arg(True)
    assert list(arg.values()) == [True]
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", **arg)
    assert getattr(args, next(iter(arg))) is True
