"""What registration measures for the gate, from files (no MLflow): per-item evidence from samples files (bad lines
counted, missing tasks listed), the unigram bar of a pack, validation bpb from per-token losses, reply rates, and a
model card that survives decontamination counts recorded as 'not available'."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from components.registry import card
from components.registry.baselines import reply_rates, unigram_bpb, val_bpb
from components.registry.evidence import available, from_evaluation

pytestmark = pytest.mark.unit

CONFIG = {"tasks": ["bpb", "mmlu", "hellaswag", "ceval", "humaneval"], "limit": 200, "mode": "auto",
          "max_new_tokens": 512, "n_samples": 1, "temperature": 0.8, "seed": 0, "dtype": "auto", "max_length": None}


def _write(path, lines: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))


def test_evidence_from_samples(tmp_path):
    _write(tmp_path / "samples" / "mmlu.jsonl", [{"id": "a/0", "score": 1, "choices": ["A", "B", "C", "D"]},
                                                  {"id": "a/1", "score": 0.0, "choices": ["A", "B", "C", "D"]},
                                                  "{not json", {"id": "a/1", "score": 1}, {"score": 1}])
    _write(tmp_path / "samples" / "hellaswag.jsonl", [{"id": "7", "correct": True, "correct_norm": False}])
    _write(tmp_path / "samples" / "bpb.jsonl", [{"id": "doc1", "nll_bits": 900.5, "bytes": 300, "domain": "en"},
                                                 {"id": "doc2", "nll_bits": 10.0, "bytes": 0}])
    _write(tmp_path / "samples" / "humaneval.jsonl", [{"id": "HumanEval/0", "score": 0}])
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "scorecard.md").write_text("# Scorecard\n\nPrompting: chat, 200 samples per task.\n")
    results = {"bpb": {"bpb": 3.0}, "mmlu": {"acc": 0.5, "n": 2}, "hellaswag": {"acc_norm": 0.0},
               "ceval": "not available", "cmmlu": {"status": "not available", "n": 0}, "humaneval": {"pass@1": 0.0},
               "not_available": {"ceval": "no DSLLM_BENCHMARKS"}}  # the runner's list beside the results
    ev = from_evaluation(tmp_path, {"config": CONFIG, "counts": results})
    mmlu = ev["tasks"]["mmlu"]
    assert mmlu["scores"] == {"a/0": 1.0, "a/1": 0.0} and mmlu["choices"] == {"a/0": 4, "a/1": 4}
    assert ev["quarantined"]["mmlu"] == {"unparseable_line": 1, "duplicate_id": 1, "no_id": 1}
    assert mmlu["settings"] == {"limit": 200, "mode": "auto", "max_length": None, "dtype": "auto", "fewshot": 5,
                                "chat_fewshot": None, "kind": "choice", "prompting": "chat"}
    assert ev["tasks"]["hellaswag"]["scores"] == {"7": 0.0}  # headline acc_norm: the normalised verdict
    assert ev["tasks"]["humaneval"]["settings"]["max_new_tokens"] == 512
    assert "temperature" not in ev["tasks"]["humaneval"]["settings"]  # greedy: the temperature changes nothing
    assert ev["bpb"]["docs"] == {"doc1": [900.5, 300.0]} and ev["quarantined"]["bpb"] == {"no_nll_bits_or_bytes": 1}
    assert ev["not_available"] == ["ceval", "cmmlu"] and ev["no_samples"] == []


def test_unigram_bar_and_validation_bpb(tmp_path):
    (tmp_path / "val").mkdir()
    np.array([1, 1, 2, 2], dtype=np.uint16).tofile(tmp_path / "val" / "en.bin")  # 1 bit per token
    np.array([3, 3, 3, 3], dtype=np.uint16).tofile(tmp_path / "val" / "zh.bin")  # 0 bits per token
    val = {"en": {"file": "val/en.bin", "tokens": 4, "bytes": 8}, "zh": {"file": "val/zh.bin", "tokens": 4, "bytes": 4}}
    (tmp_path / "pack.json").write_text(json.dumps({"dtype": "uint16", "val": val}))
    bars = unigram_bpb(tmp_path)
    pooled = -(2 * 0.25 * math.log2(0.25) + 0.5 * math.log2(0.5))  # 1.5 bits per token over both buckets
    assert bars == pytest.approx({"en": 0.5, "zh": 0.0, "all": pooled * 8 / 12})
    assert val_bpb({"en": math.log(2), "zh": 2 * math.log(2), "code": 1.0}, val) == pytest.approx((4 + 8) / 12)
    assert val_bpb({}, val) is None


def test_reply_rates():
    rows = [{"prompt": "你好吗", "after": "我很好", "after_stopped_at_eos": True},
            {"prompt": "How are you?", "after": "我很好", "after_stopped_at_eos": False},
            {"prompt": "Name a color", "after": "Blue.", "after_stopped_at_eos": True},
            {"prompt": "写一首诗", "after": "", "after_stopped_at_eos": True}]
    assert reply_rates(rows) == {"language_match": 0.5, "stop_rate": 0.75, "replies": 4.0}
    assert reply_rates([]) == {}


def test_card_lists_sets_that_were_not_available(registry):
    from components.registry.lineage import walk

    lineage = walk(registry.uris["dpo"], registry.store)
    lineage.manifests["data"]["counts"]["decontam"] = {"gsm8k": 3, "ceval": "not available", "cmmlu": "not available"}
    text = "\n".join(card.data_section(lineage, registry.store))
    assert "3 contaminated documents dropped" in text
    assert "Not decontaminated against (evaluation sets not available when the data was built): ceval, cmmlu." in text
    assert card.numeric_total({"gsm8k": 2, "not_available": ["math", "ceval"]}) == (2, ["ceval", "math"])


def test_card_lists_the_data_stages_unavailable_sets(registry):
    """The data stage's own form: numbers in `decontam`, the sets it could not use in `decontam_unavailable`."""
    from components.registry.lineage import walk

    lineage = walk(registry.uris["dpo"], registry.store)
    counts = lineage.manifests["data"]["counts"]
    counts["decontam"], counts["decontam_unavailable"] = {"gsm8k": 3, "mmlu": 1}, ["ceval", "cmmlu"]
    text = "\n".join(card.data_section(lineage, registry.store))
    assert "4 contaminated documents dropped" in text
    assert "Not decontaminated against (evaluation sets not available when the data was built): ceval, cmmlu." in text


def test_a_task_counts_as_measured_when_its_headline_metric_is_a_number():
    assert available("hellaswag", {"acc_norm": 0.31, "acc": 0.30, "n": 10})
    assert not available("hellaswag", {"acc": 0.30, "n": 10})  # only the headline metric counts
    assert not available("mmlu", {"acc": float("nan"), "n": 0})
    assert not available("mmlu", {"status": "not available", "n": 0})
    assert not available("mmlu", "not available")
