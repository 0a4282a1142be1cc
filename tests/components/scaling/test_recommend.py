"""From laws to a pretraining config: the shape nearest M_opt(C), whole batches, the `small` preset derived."""

from __future__ import annotations

import json
import math

import pytest

from components.config import StudyConfig
from components.model.accounting import flops_per_token
from components.presets import load_config
from components.scaling import recommend
from components.scaling.fit import PAPER, Law

pytestmark = pytest.mark.unit
LAWS = {name: Law(*PAPER[name]) for name in ("eta", "batch", "m", "d")}


def _study(tmp_path, **laws) -> dict:
    body = {"study": StudyConfig().model_dump(mode="json"), "seq_len": 128,
            "laws": {k: v.as_dict() for k, v in {**LAWS, **laws}.items()}, "recommendation": {"budget": 1e13}}
    (tmp_path / recommend.LAWS_FILE).write_text(json.dumps(body))
    return body


@pytest.mark.parametrize("budget", [1e13, 1e16, 1e19])
def test_recommendation_follows_the_laws(budget):
    rec = recommend.recommend(budget, LAWS, StudyConfig(), 256, 16 * 256)
    m_opt = LAWS["m"](budget)
    assert abs(math.log(rec["m"] / m_opt)) < 0.4, "the ladder shape nearest M_opt"
    assert rec["batch_tokens"] % (16 * 256) == 0 and rec["tokens"] % rec["batch_tokens"] == 0
    assert rec["tokens"] * rec["m"] <= budget < (rec["tokens"] + rec["batch_tokens"]) * rec["m"]
    assert rec["lr"] == pytest.approx(float(LAWS["eta"](budget)), rel=1e-3)
    assert rec["d_model"] % rec["n_head"] == 0 and 8 <= rec["d_model"] // rec["n_head"] <= 128


def test_small_preset_derived_from_a_study(tmp_path):
    """The `small` preset's compute (M·D) fed back: a valid config at the same budget, shaped by the laws."""
    small = load_config("small")
    budget = flops_per_token(small.model, small.pack.seq_len) * small.pretrain.total_tokens
    overrides = recommend.overrides(_study(tmp_path), small, budget)
    derived = load_config("small", overrides=overrides)
    assert derived.model.vocab_size == small.model.vocab_size  # the tokenizer stays the preset's
    assert small.pretrain.time_budget_min and derived.pretrain.time_budget_min is None  # the study's tokens, exactly
    m = flops_per_token(derived.model, derived.pack.seq_len)
    assert m * derived.pretrain.total_tokens <= budget
    assert abs(math.log(m / LAWS["m"](budget))) < 0.4
    assert derived.pretrain.batch_tokens % (small.pretrain.micro_batch * small.pack.seq_len) == 0


def test_load_reads_a_folder_and_explains_bad_references(tmp_path):
    _study(tmp_path)
    assert recommend.load(str(tmp_path))["laws"]["m"]["exponent"] == PAPER["m"][1]
    with pytest.raises(ValueError, match="not a scaling study"):
        recommend.load("nonsense")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="finished scaling study"):
        recommend.load(str(tmp_path / "empty"))


def test_recommendation_stays_inside_the_range_recommend_within_names():
    """At 1e12 the paper's eta law says lr ~9e-3; a study whose near-optimal runs spanned 1e-3-3e-3 recommends 3e-3
    (and says so), one told to follow the laws keeps the law's value."""
    ranges = {"explored": {"lr": [3e-4, 1e-2], "batch": [32, 512]}, "optima": {"lr": [1e-3, 3e-3], "batch": [64, 256]}}
    law_lr, law_batch = float(LAWS["eta"](1e12)), float(LAWS["batch"](1e12))
    rec = recommend.recommend(1e12, LAWS, StudyConfig(), 32, 32, ranges)
    assert rec["lr"] == 3e-3 and rec["clamped"]["lr"]["law"] == pytest.approx(law_lr, rel=1e-3)
    assert rec["batch_tokens"] == 256 and rec["clamped"]["batch"]["law"] > 256 and law_batch > 256
    explored = recommend.recommend(1e12, LAWS, StudyConfig(recommend_within="explored"), 32, 32, ranges)
    assert explored["lr"] == pytest.approx(law_lr, rel=1e-3) and explored["batch_tokens"] == 512
    free = recommend.recommend(1e12, LAWS, StudyConfig(recommend_within="laws"), 32, 32, ranges)
    assert free["clamped"] == {} and free["lr"] == pytest.approx(law_lr, rel=1e-3)


def test_overrides_apply_the_stored_range(tmp_path):
    """--from-scaling-study holds the lr inside the study's stored optima; a study from before them is unchanged."""
    small = load_config("small")
    body = _study(tmp_path)
    before = recommend.overrides(body, small)
    held = recommend.overrides({**body, "optima": {"lr": [1e-4, 2e-4], "batch": [1, 10**9]}}, small)
    assert "pretrain.lr=0.0002" in held and "pretrain.lr=0.0002" not in before
    assert [o for o in held if not o.startswith("pretrain.lr=")] == [o for o in before if not o.startswith("pretrain.lr=")]
