"""The repetition metric, the preference score, the samples table and the stage keys."""

from __future__ import annotations

import json

import pytest

from components.align import dpo, sft
from components.align.chat import (
    completion_ids,
    completion_logps,
    is_repetitive,
    load_tokenizer,
    preference,
    repetition_rate,
)
from components.align.report import language, sample_rows, write_samples
from components.align.runner import load_model
from components.config import AlignConfig
from tests.components.align import fixtures as fx

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("ids, looping", [
    ([5] * 10, True),                                   # one token forever
    ([1, 2, 3] + [7, 8, 9, 10] * 3, True),              # a 4-token block three times at the end
    (list(range(40)) + list(range(20)) * 3, True),     # a long period
    ([1, 2, 3, 4, 1, 2, 3, 4, 9, 2], False),            # repeats inside, but not at the end
    ([1, 2, 1, 2, 3], False),                           # only twice
    ([4, 4, 2], False),
    ([], False),
])
def test_is_repetitive(ids, looping):
    assert is_repetitive(ids) is looping


def test_repetition_rate_is_the_share_of_looping_replies():
    replies = [{"repetitive": True}, {"repetitive": False}, {"repetitive": False}, {"repetitive": True}]
    assert repetition_rate(replies) == 0.5 and repetition_rate([]) == 0.0


def test_preference_prefers_what_the_model_finds_likely(tmp_path):
    hf = fx.make_base_model(tmp_path) / "hf"
    tok = load_tokenizer(hf)
    model = load_model(str(hf), AlignConfig(), tok)
    pair = {"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "Hello."}],
            "rejected": [{"role": "assistant", "content": "Hello."}]}
    tie = preference(model, tok, [pair], max_length=64)
    assert tie == {"accuracy": 0.5, "margin": 0.0, "accuracy_per_token": 0.5, "margin_per_token": 0.0, "pairs": 1}
    swapped = {**pair, "rejected": [{"role": "assistant", "content": "Good morning to you, friend."}]}
    scores = preference(model, tok, [swapped, {**swapped, "chosen": swapped["rejected"],
                                               "rejected": swapped["chosen"]}], max_length=64)
    # the two orders of the same pair disagree, so exactly one of them is won
    assert scores["accuracy"] == 0.5 and scores["margin"] == pytest.approx(0.0, abs=1e-4)
    assert scores["accuracy_per_token"] == 0.5 and scores["margin_per_token"] == pytest.approx(0.0, abs=1e-4)
    tagged = preference(model, tok, [{**pair, "dataset": "a"}, {**swapped, "dataset": "b"}], max_length=64)
    assert tagged["by_dataset"]["a"] == tie and tagged["by_dataset"]["b"]["pairs"] == 1
    assert tagged["accuracy"] == (0.5 + tagged["by_dataset"]["b"]["accuracy"]) / 2


def test_batched_scores_match_one_sequence_at_a_time(tmp_path):
    hf = fx.make_base_model(tmp_path) / "hf"
    tok = load_tokenizer(hf)
    model = load_model(str(hf), AlignConfig(), tok)
    seqs = [completion_ids(tok, [{"role": "user", "content": q}], [{"role": "assistant", "content": a}], 64)
            for q, a in fx.qa_pairs()[:5]] + [([5, 6, 7], 3)]  # different lengths; the last has no completion
    alone, batched = completion_logps(model, seqs, tok.pad_token_id, batch_size=1), completion_logps(model, seqs, 0)
    assert [n for _, n in batched] == [len(s) - start for s, start in seqs] and batched[-1] == (0.0, 0)
    assert [lp for lp, _ in batched] == pytest.approx([lp for lp, _ in alone], abs=1e-4)
    assert all(lp < 0 for lp, _ in batched[:-1])


def test_samples_table(tmp_path):
    before = [{"prompt": "Hi | there", "reply": "x\ny", "stopped_at_eos": False, "repetitive": True},
              {"prompt": "你好", "reply": "", "stopped_at_eos": True, "repetitive": False}]
    after = [{"prompt": "Hi | there", "reply": "Hello.", "stopped_at_eos": True, "repetitive": False},
             {"prompt": "你好", "reply": "你好！", "stopped_at_eos": True, "repetitive": False}]
    rows = sample_rows(before, after)
    write_samples(rows, tmp_path, "SFT", "base", "sft")
    md = (tmp_path / "samples_before_after.md").read_text()
    assert "| en | Hi \\| there | ↻ x<br>y | ✓ Hello. |" in md and "| zh | 你好 | ✓ ∅ | ✓ 你好！ |" in md
    assert json.loads((tmp_path / "samples_before_after.json").read_text())[1]["after"] == "你好！"
    assert language("中文 text") == "zh" and language("text") == "en"


def test_stage_keys_ignore_the_other_stage_fields():
    cfg = AlignConfig()
    assert sft.STAGE.key_config(cfg) == sft.STAGE.key_config(cfg.model_copy(update={"dpo_beta": 0.5}))
    assert sft.STAGE.key_config(cfg) != sft.STAGE.key_config(cfg.model_copy(update={"sft_lr": 1e-3}))
    assert dpo.STAGE.key_config(cfg) == dpo.STAGE.key_config(cfg.model_copy(update={"sft_epochs": 9}))
    assert dpo.STAGE.key_config(cfg) != dpo.STAGE.key_config(cfg.model_copy(update={"dpo_beta": 0.5}))


def test_missing_model_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no HF model"):
        sft.model_dir(tmp_path)


@pytest.mark.parametrize("epochs, strategy", [(2, "epoch"), (4, "epoch"), (20, "steps")])
def test_checkpoints_evaluations_and_monitor_share_one_cadence(epochs, strategy):
    from components.align.runner import MAX_CHECKPOINTS, training_args

    args = training_args(AlignConfig(batch_size=8), "/tmp/x", n_examples=113, epochs=epochs, evaluate=True)
    assert args["save_strategy"] == args["eval_strategy"] == strategy
    if strategy == "steps":  # at most MAX_CHECKPOINTS over the run's 15 steps per epoch
        assert args["save_steps"] == args["eval_steps"] == -(-15 * epochs // MAX_CHECKPOINTS)
    assert training_args(AlignConfig(), "/tmp/x", 113, epochs, evaluate=False)["eval_strategy"] == "no"
