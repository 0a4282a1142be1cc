"""Mixing, decontamination, length checks and held-out splits of the alignment data."""

from __future__ import annotations

import json

import pytest

from components.align import data
from components.align.chat import load_tokenizer
from components.align.decontam import decontaminate
from components.align.prepare import (
    default_index,
    interleave,
    prepare,
    prompt_key,
    split_heldout,
    training_records,
)
from tests.components.align import fixtures as fx
from tests.extras import no_extras, use_extras

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return load_tokenizer(fx.make_base_model(tmp_path_factory.mktemp("base")) / "hf")


@pytest.fixture
def extras(monkeypatch):
    return use_extras(monkeypatch)


def _gsm8k_test_question(extras) -> str:
    with (extras / "gsm8k" / "test.jsonl").open() as fh:
        return json.loads(fh.readline())["question"]


LOCAL_BENCHMARKS = ("gsm8k", "ceval", "cmmlu")  # all in the extras folder: no download needed


def test_planted_gsm8k_test_question_is_dropped_with_its_benchmark(extras):
    question = _gsm8k_test_question(extras)
    records = [{"messages": [{"role": "user", "content": "Please solve: " + question},
                             {"role": "assistant", "content": "The answer is 3."}]},
               {"messages": [{"role": "user", "content": "What colour is the sky on a clear day?"},
                             {"role": "assistant", "content": "It is blue."}]}]
    kept, dropped = decontaminate(records, default_index(benchmarks=LOCAL_BENCHMARKS))
    assert kept == records[1:] and [b for _, b in dropped] == ["gsm8k"]


def test_chinese_overlap_counts_characters(extras):
    import csv

    path = sorted((extras / "cmmlu" / "test").glob("*.csv"))[0]
    with path.open(encoding="utf-8", newline="") as fh:
        question = next(row["Question"] for row in csv.DictReader(fh) if len(row["Question"]) >= 20)
    index = default_index(benchmarks=LOCAL_BENCHMARKS)
    assert index("请回答：" + question[:16]) == "cmmlu", "13 Han characters in a row are enough"
    assert index("中国古代的诗歌非常有名，唐诗宋词流传至今。") is None


def test_prepare_counts_quarantine_contamination_and_too_long(tok, tmp_path, extras):
    good = fx.sft_records()[:40]
    planted = {"instruction": _gsm8k_test_question(extras), "output": "The answer is 18."}
    long_one = {"instruction": "Say it long.", "output": " ".join(["word"] * 400)}
    path = fx.write_json([*good, planted, long_one, {"instruction": "no output"}, "not an object"],
                         tmp_path / "mixed.json")
    quarantine = tmp_path / "q" / "sft.jsonl"
    out = prepare([str(path)], "sft", tok, max_length=128, cap=None, heldout_fraction=0.1, seed=0,
                  quarantine=quarantine, index=default_index(benchmarks=LOCAL_BENCHMARKS))
    c = out.counts
    assert c["read"] == {str(path): 44} and c["decontaminated"] == {"gsm8k": 1} and c["too_long"] == 1
    assert c["quarantined"] == {"empty or missing output": 1, "record is not a JSON object": 1}
    assert c["train"] + c["heldout"] == 40 and c["heldout"] == 4 and len(out.train) == 36
    reasons = [json.loads(line)["reason"] for line in quarantine.read_text().splitlines()]
    assert sorted(reasons) == ["contaminated: gsm8k", "empty or missing output", "record is not a JSON object"]


def test_optional_gsm8k_train_is_skipped_with_one_line_when_not_available(tok, tmp_path, monkeypatch, capsys):
    no_extras(monkeypatch)
    path = fx.write_json(fx.sft_records()[:20], tmp_path / "s.json")
    out = prepare(["gsm8k_train", str(path)], "sft", tok, max_length=128, cap=None, heldout_fraction=0.1, seed=0,
                  quarantine=tmp_path / "q.jsonl", index=None)
    assert out.counts["not_available"] == ["gsm8k_train"] and out.counts["read"] == {str(path): 20}
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "gsm8k_train" in ln]
    assert len(lines) == 1 and "not available" in lines[0] and "DSLLM_BENCHMARKS" in lines[0]


def test_optional_gsm8k_train_is_used_when_the_extras_have_it(extras):
    loaded = data.load("gsm8k_train")
    assert len(loaded.records) == 7473 and not loaded.quarantined
    assert loaded.records[0]["messages"][-1]["content"].rstrip().endswith(".")


def test_a_missing_file_is_still_an_error_not_a_skip(tok, tmp_path):
    with pytest.raises(FileNotFoundError, match="No alignment set or file"):
        prepare([str(tmp_path / "nope.jsonl")], "sft", tok, max_length=128, cap=None, heldout_fraction=0.1, seed=0,
                quarantine=tmp_path / "q.jsonl", index=None)


def test_cap_draws_evenly_from_every_set(tok, tmp_path):
    en = [r for r in fx.sft_records() if "What" in json.dumps(r)]
    zh = [r for r in fx.sft_records() if "What" not in json.dumps(r)]
    paths = [str(fx.write_json(en, tmp_path / "en.json")), str(fx.write_json(zh, tmp_path / "zh.json"))]
    out = prepare(paths, "sft", tok, max_length=128, cap=20, heldout_fraction=0.2, seed=1,
                  quarantine=tmp_path / "q.jsonl", index=None)
    everything = out.train + out.heldout
    english = sum("What" in m["messages"][0]["content"] for m in everything)
    assert len(everything) == 20 and english == 10
    assert {("What" in r["messages"][0]["content"]) for r in out.heldout} == {True, False}


def test_dpo_pairs_with_overlong_prompts_are_skipped(tok, tmp_path):
    pairs = fx.dpo_records()[:10] + [{"prompt": "long " * 200, "chosen": "a", "rejected": "b"}]
    out = prepare([str(fx.write_json(pairs, tmp_path / "p.json"))], "dpo", tok, max_length=128, cap=None,
                  heldout_fraction=0.2, seed=0, quarantine=tmp_path / "q.jsonl", index=None)
    assert out.counts["too_long"] == 1 and len(out.train) + len(out.heldout) == 10
    assert all(set(p) == {"prompt", "chosen", "rejected", "dataset"} for p in out.train)
    assert all(set(p) == {"prompt", "chosen", "rejected"} for p in training_records(out.train))


def test_pairs_sharing_a_prompt_stay_on_one_side_of_the_split(tok, tmp_path):
    pairs = fx.dpo_records()[:30]
    swapped = [{**p, "chosen": p["rejected"], "rejected": p["chosen"]} for p in pairs]  # same prompts again
    paths = [str(fx.write_json(pairs, tmp_path / "a.json")), str(fx.write_json(swapped, tmp_path / "b.json"))]
    out = prepare(paths, "dpo", tok, max_length=128, cap=None, heldout_fraction=0.2, seed=0,
                  quarantine=tmp_path / "q.jsonl", index=None)
    held, trained = ({prompt_key(p) for p in side} for side in (out.heldout, out.train))
    assert len(out.heldout) == 12 and len(held) == 6 and not held & trained
    assert {p["dataset"] for p in out.heldout} == set(paths)  # each held-out prompt with both of its pairs


def test_interleave_and_split_are_deterministic():
    sets = [[{"i": i} for i in range(5)], [{"j": j} for j in range(3)]]
    mixed = interleave(sets, seed=3)
    assert mixed == interleave(sets, seed=3) and len(mixed) == 8
    assert ["i" in r for r in mixed[:6]] == [True, False] * 3
    train, held = split_heldout(list(range(10)), 0.2)
    assert held == [0, 5] and len(train) == 8
    with pytest.raises(ValueError, match="too few"):
        split_heldout([1, 2], 0.5)


def test_no_datasets_configured_is_a_clear_error(tok, tmp_path):
    with pytest.raises(ValueError, match="align.dpo_datasets is empty"):
        prepare([], "dpo", tok, max_length=64, cap=None, heldout_fraction=0.1, seed=0,
                quarantine=tmp_path / "q.jsonl", index=None)


def test_hf_ids_parse_and_load_through_datasets(monkeypatch):
    assert data.parse_hf_id("hf:openai/gsm8k:main@test") == ("openai/gsm8k", "main", "test")
    assert data.parse_hf_id("hf:tatsu-lab/alpaca") == ("tatsu-lab/alpaca", None, "train")
    calls = []

    def fake_load_dataset(name, config, split):  # stands in for the hub, not for our conversion
        calls.append((name, config, split))
        return [{"instruction": "Hi", "output": "Hello"}, {"instruction": "", "output": "x"}]

    import datasets

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    loaded = data.load("hf:tatsu-lab/alpaca", "sft")
    assert calls == [("tatsu-lab/alpaca", None, "train")]
    assert len(loaded.records) == 1 and dict(loaded.reasons) == {"empty or missing instruction": 1}


def test_hf_ids_offline_say_what_to_do(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(FileNotFoundError, match="pass a local .jsonl file"):
        data.load("hf:org/set", "dpo")
    with pytest.raises(ValueError, match="SFT or DPO"):
        data.load("hf:org/set")
