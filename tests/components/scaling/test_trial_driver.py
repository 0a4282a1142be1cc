"""The Tune trial driver around the project's pretraining (plan and fit replaced): a trial logs to MLflow only as
the study's child run, never into the stage run whose id its actor inherits from the driver's environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.home import STAGE_RUN_ENV
from components.presets import load_config, tiny_study
from components.pretrain import trainer
from components.pretrain.loop import RunSpec
from components.scaling import trials
from components.scaling.plan import make_trial, shape

pytestmark = pytest.mark.unit


def test_a_trial_does_not_log_into_the_stage_run(tmp_path, monkeypatch):
    cfg = load_config("tiny")
    study = tiny_study().model_copy(update={"trial_workers": 1})
    trial = make_trial("hp", 3e9, shape(1, 32, 16).model(cfg.model), cfg.pretrain, study, cfg.pack.seq_len, 512, 1e-2)
    monkeypatch.setenv(STAGE_RUN_ENV, "the-stage-run")
    fitted, reported = [], []

    def fake_plan(model, pretrain, pack, tokenizer, ckpt):
        from components.home import stage_mlflow_run

        return RunSpec(model={}, pretrain={}, pack_dir=str(pack), ckpt_dir=str(ckpt), seq_len=32, total_steps=1,
                       mlflow_run_id=stage_mlflow_run()[0]), None

    def fake_fit(spec, progress=False):
        fitted.append(spec)
        Path(spec.ckpt_dir).mkdir(parents=True)
        record = '{"step": 1, "loss": 3.0, "tokens_per_s": 9.0, "val_loss": {"en": 3.1}}\n'
        (Path(spec.ckpt_dir) / "metrics.jsonl").write_text(record)

    monkeypatch.setattr(trainer, "plan", fake_plan)
    monkeypatch.setattr(trainer, "fit", fake_fit)
    monkeypatch.setattr(trials.tune, "report", reported.append)
    trials.drive({"trial": trial.as_dict(), "work_dir": str(tmp_path), "pack": "pack", "tokenizer": "tok"})
    assert fake_plan(None, None, "p", "t", "c")[0].mlflow_run_id == "the-stage-run"  # what plan alone would use
    assert [s.mlflow_run_id for s in fitted] == [None] and reported[0]["loss"] == 3.1
