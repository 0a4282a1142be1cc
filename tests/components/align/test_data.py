import json

import pytest

from components.align.data import convert, load, read_records, to_dpo, to_sft
from tests.extras import use_extras

pytestmark = pytest.mark.unit


def test_alpaca_with_input_and_system():
    ex = to_sft({"instruction": "Translate", "input": "你好", "output": "Hello", "system": "Be brief."})
    assert [m["role"] for m in ex["messages"]] == ["system", "user", "assistant"]
    assert ex["messages"][1]["content"] == "Translate\n\n你好"


def test_sharegpt_and_content_parts():
    ex = to_sft({"messages": [{"role": "user", "content": [{"type": "text", "value": "hi"}]},
                              {"role": "assistant", "content": [{"type": "text", "value": "hello"}]}]})
    assert ex["messages"][1] == {"role": "assistant", "content": "hello"}
    ex = to_sft({"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]})
    assert ex["messages"][0]["role"] == "user"


def test_gsm8k_answer_keeps_reasoning_and_final_number():
    ex = to_sft({"question": "2+2?", "answer": "2+2 = <<2+2=4>>4\n#### 4"})
    assert ex["messages"][1]["content"] == "2+2 = 4\nThe answer is 4."


@pytest.mark.parametrize("pair", [
    {"conversations": [{"from": "human", "value": "q"}], "chosen": {"from": "gpt", "value": "good"},
     "rejected": {"from": "gpt", "value": "bad"}},
    {"prompt": "q", "chosen": "good", "rejected": "bad"},
    {"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "good"}],
     "rejected": [{"role": "assistant", "content": "bad"}]},
])
def test_preference_formats(pair):
    ex = to_dpo(pair)
    assert ex["prompt"][-1] == {"role": "user", "content": "q"}
    assert ex["chosen"][0]["content"] == "good" and ex["rejected"][0]["content"] == "bad"


def test_bad_records_are_quarantined_with_reasons(tmp_path):
    path = tmp_path / "mixed.jsonl"
    lines = [json.dumps({"instruction": "ok", "output": "fine"}), "{not json",
             json.dumps({"instruction": "no output"}), json.dumps({"instruction": "", "output": "x"}),
             json.dumps([1, 2]), json.dumps({"conversations": [{"from": "alien", "value": "x"}]}),
             json.dumps({"conversations": [{"from": "gpt", "value": "only assistant"}]}),
             json.dumps({"text": "pretraining text, not a conversation"})]
    path.write_text("\n".join(lines) + "\n")
    loaded = convert(read_records(path), "sft")
    assert len(loaded.records) == 1 and len(loaded.quarantined) == len(lines) - 1
    reasons = " | ".join(loaded.reasons)
    for words in ["not a JSON object", "empty or missing output", "empty or missing instruction",
                  "unknown role", "no user turn", "unknown SFT format"]:
        assert words in reasons
    assert all(q["location"].startswith("mixed.jsonl:") for q in loaded.quarantined)


def test_dpo_quarantine():
    loaded = convert([("a", {"prompt": "q", "chosen": "x"}), ("b", {"prompt": "q", "chosen": "", "rejected": "y"})],
                     "dpo")
    assert not loaded.records and set(loaded.reasons) == {"preference record lacks chosen or rejected",
                                                           "empty or missing chosen"}


def test_unknown_name_suggests(tmp_path):
    with pytest.raises(FileNotFoundError, match="Did you mean 'alpaca_en'"):
        load("alpaca_eng")
    (tmp_path / "x.json").write_text("[]")
    with pytest.raises(ValueError, match="SFT or DPO"):
        load(str(tmp_path / "x.json"))


def test_gsm8k_train_from_the_extras_folder(monkeypatch):
    use_extras(monkeypatch)
    loaded = load("gsm8k_train")
    assert len(loaded.records) == 7473 and not loaded.quarantined
    assert all(r["messages"][-1]["content"].rsplit("The answer is ", 1)[1].endswith(".") for r in loaded.records[:50])


def test_language_pairs_prefer_the_reply_in_the_users_language():
    from components.align.report import language

    loaded = load("dpo_language")
    demo = load("dpo_en").records + load("dpo_zh").records
    assert len(loaded.records) == len(demo) == 600 and not loaded.quarantined
    assert [p["prompt"] for p in loaded.records] == [p["prompt"] for p in demo]
    assert [p["chosen"] for p in loaded.records] == [p["chosen"] for p in demo]
    for pair in loaded.records:
        asked = language(pair["prompt"][-1]["content"])
        assert language(pair["rejected"][-1]["content"]) != asked and pair["rejected"] != pair["chosen"]
    assert load("dpo_language") == loaded  # the same pairs every time
    with pytest.raises(ValueError, match="dpo_datasets"):
        load("dpo_language", "sft")


def test_sample_prompts_alternate_languages_and_count_each_prompt_once():
    from components.align.sft import balanced

    def user(text: str) -> list[dict]:
        return [{"role": "user", "content": text}]

    en, zh = [user(f"Question number {i}?") for i in range(3)], [user(f"第{i}个问题是什么？") for i in range(3)]
    prompts = en + zh + en[:2] + zh[:1]  # a preference set repeats prompts with other replies
    picked = balanced(prompts, 10)
    assert picked == [en[0], zh[0], en[1], zh[1], en[2], zh[2]]
    assert balanced(prompts, 3) == [en[0], zh[0], en[1]]
