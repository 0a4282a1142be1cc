"""A real tiny pretraining run in Ray Train's local mode, through the stage: the loss falls, the
model loads with AutoModelForCausalLM and generates, curves reach MLflow, and a killed run resumes
from its checkpoint to the same result."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from components.artifacts import ArtifactStore
from components.config import PretrainStageConfig
from components.home import STAGE_RUN_ENV
from components.pretrain import stage
from components.pretrain.loop import Run
from components.pretrain.metrics import read
from components.pretrain.trainer import pretrain
from tests.components.pretrain.conftest import SEQ_LEN, tiny_model, tiny_train

pytestmark = pytest.mark.unit


def _config(inputs, **train) -> PretrainStageConfig:
    return PretrainStageConfig(model=tiny_model(inputs), pretrain=tiny_train(cpus_per_worker=1, **train),
                               seq_len=SEQ_LEN)


def _publish(store: ArtifactStore, name: str, source) -> str:
    return store.build(name, 1, {"fixture": name}, {},
                       lambda out: shutil.copytree(source, out, dirs_exist_ok=True) and {}).uri


def _mlflow_run(home):
    import mlflow

    client = mlflow.MlflowClient(home.mlflow_uri)
    experiment = client.create_experiment("test", artifact_location=home.mlflow_artifacts.as_uri())
    return client, client.create_run(experiment).info.run_id


def test_stage_trains_publishes_and_logs(inputs, home, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    client, run_id = _mlflow_run(home)
    monkeypatch.setenv(STAGE_RUN_ENV, run_id)
    store, cfg = ArtifactStore(home), _config(inputs, precision="bf16")  # bf16 weights, fp32 master copies
    uris = {name: _publish(store, name, path) for name, path in inputs.items()}
    result = stage.STAGE.run(cfg, uris, store)
    counts, out = result.counts, store.resolve(result.uri)

    records = read(out / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(1, 17))
    assert records[-1]["loss"] < records[0]["loss"] - 1.0
    assert {"loss", "lr", "grad_norm", "tokens_per_s", "mfu", "tokens"} <= set(records[-1])
    assert set(counts["val_loss"]) == {"code", "en", "zh"}
    assert counts["tokens"] == counts["steps"] * 512 == 16 * 512
    assert counts["final_loss"] == records[-1]["loss"]
    assert counts["compute"] == counts["flops_per_token"] * counts["tokens"]
    accounting = json.loads((out / "report" / "accounting.json").read_text())
    assert accounting["params"] == counts["params"]
    assert all((out / "report" / f).is_file() for f in ("loss.png", "lr.png"))
    assert not stage.checkpoint_dir(cfg, {n: store.resolve(u) for n, u in uris.items()}).exists()

    model = AutoModelForCausalLM.from_pretrained(out / "hf")
    assert model.dtype == torch.float32  # the master weights are published
    tokenizer = AutoTokenizer.from_pretrained(out / "hf")
    prompt = tokenizer("the quick", return_tensors="pt")
    generated = model.generate(**prompt, max_new_tokens=6, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert generated.shape[1] == prompt["input_ids"].shape[1] + 6
    assert tokenizer.chat_template

    history = client.get_metric_history(run_id, "loss")
    assert sorted(m.step for m in history) == list(range(1, 17))
    run = client.get_run(run_id)
    assert set(run.data.metrics) >= {"loss", "lr", "grad_norm", "mfu", "tokens_per_s", "val_loss/en"}
    assert int(run.data.params["accounting.params"]) == counts["params"]
    assert "config.json" in {Path(a.path).name for a in client.list_artifacts(run_id, "model")}


def test_key_covers_results_not_cadence(inputs):
    cfg = _config(inputs)
    key = stage.key_config
    assert key(cfg) == key(cfg.model_copy(update={"pretrain": tiny_train(eval_every=1, checkpoint_every=2,
                                                                            cpus_per_worker=1, micro_batch=4)}))
    assert key(cfg) != key(cfg.model_copy(update={"pretrain": tiny_train(cpus_per_worker=1, lr=1e-3)}))
    assert key(cfg) != key(cfg.model_copy(update={"seq_len": 64}))


def crash_after_step(monkeypatch, step: int):
    """Make every run raise "simulated crash" after `step` steps; returns the function that undoes it."""
    original = Run.train_step

    def dies(self):
        if self.step == step:
            raise RuntimeError("simulated crash")
        return original(self)

    monkeypatch.setattr(Run, "train_step", dies)
    return lambda: monkeypatch.setattr(Run, "train_step", original)


def test_killed_run_resumes_from_its_checkpoint(inputs, home, tmp_path, monkeypatch):
    model, train = tiny_model(inputs), tiny_train(cpus_per_worker=1, keep_checkpoints=True)

    def go(name):
        return pretrain(model, train, inputs["pack"], inputs["tokenizer"], tmp_path / f"out-{name}",
                        tmp_path / f"ckpt-{name}", progress=False)

    reference = go("whole")
    heal = crash_after_step(monkeypatch, 7)
    with pytest.raises(Exception, match="simulated crash"):
        go("killed")
    assert sorted(p.name for p in (tmp_path / "ckpt-killed").glob("step_*")) == ["step_00000005"]
    heal()
    resumed = go("killed")
    steps = [r["step"] for r in read(tmp_path / "out-killed" / "metrics.jsonl")]
    assert steps == list(range(1, 17))  # steps 6-7 were redone, not duplicated
    assert resumed["final_loss"] == pytest.approx(reference["final_loss"], rel=1e-5)
    assert resumed["val_loss"] == pytest.approx(reference["val_loss"], rel=1e-5)


def steps_take(monkeypatch, seconds) -> None:
    """Make every training step report `seconds` (or `seconds(step)`): the time budget reads the steps' timings."""
    original = Run.train_step

    def timed(self):
        record = original(self)
        return {**record, "step_s": seconds(record["step"]) if callable(seconds) else seconds}

    monkeypatch.setattr(Run, "train_step", timed)


def test_time_budget_sets_the_run_length_and_a_resume_keeps_it(inputs, home, tmp_path, monkeypatch):
    from components.pretrain import budget
    from components.pretrain.schedule import lr_factor

    client, run_id = _mlflow_run(home)
    monkeypatch.setenv(STAGE_RUN_ENV, run_id)
    model = tiny_model(inputs)
    train = tiny_train(cpus_per_worker=1, total_tokens=32 * 512, time_budget_min=0.5, keep_checkpoints=True)
    steps_take(monkeypatch, 2.0)  # 30 s of 2-s steps: about 15 less what evaluations and checkpoints cost
    heal = crash_after_step(monkeypatch, 7)
    with pytest.raises(Exception, match="simulated crash"):
        pretrain(model, train, inputs["pack"], inputs["tokenizer"], tmp_path / "out", tmp_path / "ckpt",
                 progress=False)
    decision = budget.read(tmp_path / "ckpt")  # decided after the 4 timed steps, revised at the evaluation of step 5
    assert decision.decided_at == 5 and decision.step_s == 2.0
    assert decision.steps == budget.steps_in_budget(30 - decision.elapsed_s, decision.per_step_s, 5, 32)
    assert 12 <= decision.steps <= 19
    heal()
    steps_take(monkeypatch, 0.5)  # a faster machine now: the resumed run keeps the decision all the same
    counts = pretrain(model, train, inputs["pack"], inputs["tokenizer"], tmp_path / "out", tmp_path / "ckpt",
                      progress=False)

    records = read(tmp_path / "out" / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(1, decision.steps + 1))
    assert counts["steps"] == counts["budget.steps"] == decision.steps
    assert counts["tokens"] == decision.steps * 512
    # the schedule is the decided length's: the multi-step drops at 80% and 90% of it
    assert [r["lr"] for r in records] == pytest.approx(
        [3e-3 * lr_factor(r["step"] - 1, decision.steps, 3) for r in records])
    assert records[-1]["lr"] == pytest.approx(3e-4)
    assert json.loads((tmp_path / "out" / budget.FILE).read_text())["steps"] == decision.steps
    params = client.get_run(run_id).data.params
    assert int(params["run.total_steps"]) == int(params["budget.steps"]) == decision.steps


def test_time_budget_is_revised_when_the_steps_slow_down(inputs, tmp_path, monkeypatch):
    from components.pretrain import budget

    train = tiny_train(cpus_per_worker=1, total_tokens=48 * 512, time_budget_min=1.0, keep_checkpoints=True)
    steps_take(monkeypatch, lambda step: 2.0 if step <= 5 else 4.0)  # the machine gets busy after step 5
    counts = pretrain(tiny_model(inputs), train, inputs["pack"], inputs["tokenizer"], tmp_path / "out",
                      tmp_path / "ckpt", progress=False)
    lengths = [r["total_steps"] for r in read(tmp_path / "out" / "metrics.jsonl")]
    first, final = lengths[4], lengths[-1]  # decided at step 4 (in step 5's record), revised at evaluations
    assert 26 <= first <= 33 and 16 <= final <= 25  # 60 s at 2 s a step, then the rest at 4 s
    assert counts["steps"] == final == budget.read(tmp_path / "ckpt").steps
    assert len(set(lengths[final // 2:])) == 1  # no revision in the second half of the run


def test_time_budget_is_in_the_key_only_when_set(inputs):
    cfg = _config(inputs)
    assert "time_budget_min" not in stage.key_config(cfg)["pretrain"]  # keys of runs without a budget unchanged
    budgeted = _config(inputs, time_budget_min=20)
    assert stage.key_config(budgeted)["pretrain"]["time_budget_min"] == 20
    assert stage.key_config(budgeted) != stage.key_config(_config(inputs, time_budget_min=30))
