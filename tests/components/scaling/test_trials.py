"""Trials on the tiny preset's real pack through Ray Tune and the project's pretraining: a killed study resumes
without retraining finished trials, and a failing trial is recorded with its reason and retried."""

from __future__ import annotations

import json
import math

import pytest

from components.artifacts import ArtifactStore
from components.presets import load_config, tiny_study
from components.scaling.plan import make_trial, plan_grid, shape
from components.scaling.tracking import TrialRuns
from components.scaling.trials import RESULTS, load_results, run_trials

pytestmark = [pytest.mark.integration, pytest.mark.own_process]  # a fresh Ray of 2 CPUs for Tune


@pytest.fixture
def inputs(tiny_artifacts, shared_cache_home):
    store = ArtifactStore(shared_cache_home)
    return store.resolve(tiny_artifacts["pack"]), store.resolve(tiny_artifacts["tokenizer"])


def _run(trials, work, inputs):
    return run_trials(trials, work, *inputs, "test", TrialRuns(None, None), concurrent=2, progress=False)


def test_killed_study_resumes_without_retraining_finished_trials(inputs, tmp_path):
    cfg = load_config("tiny")
    trials = plan_grid(tiny_study(), cfg.model, cfg.pretrain, cfg.pack.seq_len)[0][:3]
    first = _run(trials, tmp_path, inputs)
    assert sorted(r["id"] for r in first) == sorted(t.id for t in trials)
    for record in first:
        assert record["status"] == "ok" and math.isfinite(record["loss"]) and record["loss"] < math.log(1024)
        assert record["steps"] == record["tokens"] // record["pretrain"]["batch_tokens"]
        assert set(record["val_loss"]) == {"code", "en", "zh"}
        assert (tmp_path / "trials" / record["id"] / "metrics.jsonl").is_file()
        assert not (tmp_path / "trials" / record["id"] / "ckpt").exists()

    # killed after the first trial was recorded, halfway through writing the second line
    lines = (tmp_path / RESULTS).read_text().splitlines()
    (tmp_path / RESULTS).write_text(lines[0] + "\n" + lines[1][:40])
    kept = json.loads(lines[0])
    again = _run(trials, tmp_path, inputs)
    assert sorted(r["id"] for r in again) == sorted(t.id for t in trials if t.id != kept["id"])
    assert load_results(tmp_path)[kept["id"]] == kept
    assert _run(trials, tmp_path, inputs) == [], "a finished study trains nothing"


def test_failed_trial_is_recorded_with_its_reason_and_retried(inputs, tmp_path):
    cfg = load_config("tiny")
    wrong = shape(1, 32, 16).model(cfg.model).model_copy(update={"vocab_size": 999})  # not the pack's vocabulary
    trial = make_trial("hp", 3e9, wrong, cfg.pretrain, tiny_study(), cfg.pack.seq_len, 512, 1e-2)
    [record] = _run([trial], tmp_path, inputs)
    assert record["status"] == "error" and "model.vocab_size" in record["reason"]
    assert load_results(tmp_path) == {}, "failures do not count as finished"
    assert len(_run([trial], tmp_path, inputs)) == 1, "the next run retries it"
