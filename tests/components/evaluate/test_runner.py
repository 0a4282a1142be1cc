"""evaluate() end to end with a tiny model, the result cache, the stage and the CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from components.artifacts import ArtifactStore
from components.config import EvalConfig
from components.evaluate.model import load_model
from components.evaluate.registry import TASKS
from components.evaluate.runner import evaluate
from components.evaluate.stage import STAGE
from components.evaluate.toy import toy_model
from tests.components.evaluate.test_bpb import write_pack

pytestmark = pytest.mark.unit
ALL = [name for name, task in TASKS.items() if task.kind not in ("bpb", "judge")]  # judged: test_judge*.py
FAST = EvalConfig(max_new_tokens=16, sandbox_timeout_s=5)


class Counting:
    """Wraps a model and counts the requests that reach it."""

    def __init__(self, lm):
        self.lm, self.calls = lm, 0

    def __getattr__(self, name):
        return getattr(self.lm, name)

    def loglikelihood(self, requests):
        self.calls += len(requests)
        return self.lm.loglikelihood(requests)

    def generate(self, requests, seed=0):
        self.calls += len(requests)
        return self.lm.generate(requests, seed)


def test_tiny_model_on_every_task_writes_samples_and_scorecard(catalog, toy_base, home, tmp_path):
    from transformers import AutoTokenizer

    pack = write_pack(tmp_path / "pack", AutoTokenizer.from_pretrained(toy_base))
    out = tmp_path / "out"
    results = evaluate(toy_base, ["bpb", *ALL], 2, pack=pack, out_dir=out, cfg=FAST, home=home, show_progress=False)
    assert list(results) == ["bpb", *ALL]
    for name, metrics in results.items():
        primary = metrics[TASKS[name].metric]
        assert (primary > 0) if name == "bpb" else (0.0 <= primary <= 1.0), (name, metrics)
        lines = (out / "samples" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
        assert len(lines) == (metrics["docs"] if name == "bpb" else metrics["n"])
        records = [json.loads(line) for line in lines]
        if name != "bpb":
            assert {"id", "prompt", "output", "extracted", "gold", "correct"} <= set(records[0])
        # what a paired test across model versions joins on, and the value it compares
        assert len({r["id"] for r in records}) == len(records), name
        assert all(isinstance(r["score"], float) for r in records), name
        if name != "bpb":
            mean = sum(r["score"] for r in records) / len(records)
            assert mean == pytest.approx(metrics[TASKS[name].metric]), name
    card = (out / "report" / "scorecard.md").read_text(encoding="utf-8")
    assert "| mmlu | acc |" in card and "DeepSeek 67B Base" in card and "71.3" in card
    assert "Prompting: **base**" in card and "Chat" not in card.split("## All metrics")[0].replace("DeepSeek's", "")
    assert (out / "report" / "scorecard.png").stat().st_size > 1000


def test_second_run_comes_from_the_cache(catalog, toy_base, home):
    counting = Counting(load_model(toy_base))
    first = evaluate(toy_base, "mmlu,gsm8k", 2, cfg=FAST, lm=counting, home=home, show_progress=False)
    calls = counting.calls
    assert calls == 4
    again = evaluate(toy_base, "mmlu,gsm8k", 2, cfg=FAST, lm=counting, home=home, show_progress=False)
    assert again == first and counting.calls == calls
    evaluate(toy_base, "mmlu", 3, cfg=FAST, lm=counting, home=home, show_progress=False)
    assert counting.calls == calls + 1  # only the new sample


def test_chat_models_are_prompted_through_their_template(catalog, toy_chat, home, tmp_path):
    results = evaluate(toy_chat, "ceval,gsm8k,humaneval", 1, cfg=FAST, out_dir=tmp_path, home=home,
                       show_progress=False)
    assert set(results) == {"ceval", "gsm8k", "humaneval"}
    record = json.loads((tmp_path / "samples" / "gsm8k.jsonl").read_text(encoding="utf-8"))
    assert record["prompt"].startswith("<s><|user|>") and record["prompt"].endswith("<|assistant|>")
    base = evaluate(toy_chat, "gsm8k", 1, cfg=FAST.model_copy(update={"mode": "base"}), out_dir=tmp_path / "b",
                    home=home, show_progress=False)
    assert base["gsm8k"]["n"] == 1
    assert json.loads((tmp_path / "b" / "samples" / "gsm8k.jsonl").read_text())["prompt"].startswith("Question:")


@pytest.mark.parametrize("stage, kind", [("pretrain", "base"), ("sft", "chat"), ("dpo", "chat")])
def test_prompting_follows_the_model_kind_not_the_tokenizer(catalog, home, stage, kind):
    """Every exported tokenizer has a chat template: a pretrained base model still gets base prompting."""
    store = ArtifactStore(home)
    model = store.build(stage, 1, {"toy": 1}, {}, lambda out: toy_model(out / "hf", chat=True) and {"params": 1})
    out = store.resolve(model.uri) / "eval"
    evaluate(model.uri, "gsm8k", 1, cfg=FAST, out_dir=out, home=home, show_progress=False)
    prompt = json.loads((out / "samples" / "gsm8k.jsonl").read_text())["prompt"]
    assert prompt.startswith("Question:" if kind == "base" else "<s><|user|>")
    card = (out / "report" / "scorecard.md").read_text()
    assert f"Prompting: **{kind}**" in card
    other = "Chat" if kind == "base" else "Base"
    assert f"DeepSeek 7B {kind.title()}" in card and f"DeepSeek 7B {other}" not in card
    # the directory (or its hf/ folder) says the same as the URI; an explicit mode still wins
    from components.evaluate.kind import model_kind

    assert model_kind(store.resolve(model.uri), home) == model_kind(store.resolve(model.uri) / "hf", home) == kind
    forced = evaluate(model.uri, "gsm8k", 1, cfg=FAST.model_copy(update={"mode": "chat"}), out_dir=out / "f",
                      home=home, show_progress=False)
    assert forced["gsm8k"]["n"] == 1
    assert json.loads((out / "f" / "samples" / "gsm8k.jsonl").read_text())["prompt"].startswith("<s><|user|>")


def test_registered_names_and_tags_give_the_kind(home):
    from components.evaluate.kind import _from_manifest, kind_of_name

    assert kind_of_name("dsllm-base") == "base" and kind_of_name("dsllm-chat") == "chat"
    assert kind_of_name("my-model") is None
    assert _from_manifest({"stage": "registered_model", "config": {"name": "dsllm-base"}}) == "base"
    assert _from_manifest({"stage": "registered_model", "config": {"name": "dsllm-chat"}}) == "chat"
    assert _from_manifest({"stage": "tokenizer"}) is None


def test_missing_data_skips_the_task_and_says_so(catalog, toy_base, home, tmp_path, monkeypatch, capsys):
    from components.evaluate import data

    def absent(split):
        raise data.MissingDataset("C-Eval files not found; put them in $DSLLM_BENCHMARKS/ceval")
    monkeypatch.setattr(data, "ceval", absent)
    results = evaluate(toy_base, "mmlu,ceval", 2, cfg=FAST, out_dir=tmp_path, home=home, show_progress=False)
    assert set(results) == {"mmlu", "not_available"} and results["mmlu"]["n"] == 2
    assert "DSLLM_BENCHMARKS" in results["not_available"]["ceval"]
    assert all(isinstance(v, int | float) for v in results["mmlu"].values())  # no strings among the numbers
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "ceval" in ln]
    assert len(lines) == 1 and "not available" in lines[0] and "DSLLM_BENCHMARKS" in lines[0]
    card = (tmp_path / "report" / "scorecard.md").read_text()
    assert "| ceval | | | not available |" in card and not (tmp_path / "samples" / "ceval.jsonl").exists()
    from components.evaluate.report import flat_metrics

    assert set(flat_metrics(results)) == {f"mmlu.{k}" for k in results["mmlu"]}


def test_bpb_without_a_pack_is_a_clear_error(catalog, toy_base, home):
    with pytest.raises(ValueError, match="needs a pack"):
        evaluate(toy_base, "bpb", cfg=FAST, home=home, show_progress=False)


def test_stage_evaluates_a_model_artifact_and_is_reused(catalog, home):
    store = ArtifactStore(home)
    model = store.build("pretrain", 1, {"toy": 1}, {}, lambda out: toy_model(out / "hf") and {"params": 1})
    cfg = FAST.model_copy(update={"tasks": ["arc_easy", "mbpp"], "limit": 2})
    result = STAGE.run(cfg, {"model": model.uri}, store)
    assert set(result.counts) == {"arc_easy", "mbpp"} and result.counts["mbpp"]["samples"] == 2
    out = store.resolve(result.uri)
    for path in ("report/scorecard.md", "report/scorecard.png", "samples/arc_easy.jsonl", "samples/mbpp.jsonl"):
        assert (out / path).is_file()
    assert STAGE.run(cfg.model_copy(update={"batch_size": 2}), {"model": model.uri}, store).cached


def test_cli_runs_and_refuses_unknown_tasks(catalog, toy_base, tmp_path):
    from dsllm.cli import app

    runner = CliRunner()
    ok = runner.invoke(app, ["eval", "--model", str(toy_base), "--tasks", "arc_challenge,gsm8k", "--limit", "1",
                             "--max-new-tokens", "8", "--out", str(tmp_path), "--no-mlflow"])
    assert ok.exit_code == 0, ok.output
    assert "arc_challenge" in ok.output and (tmp_path / "report" / "scorecard.md").is_file()
    bad = runner.invoke(app, ["eval", "--model", str(toy_base), "--tasks", "mmlu,gsm9k", "--no-mlflow"])
    assert bad.exit_code == 2 and "Did you mean 'gsm8k'" in bad.output
    bad_value = runner.invoke(app, ["eval", "--model", str(toy_base), "--n-samples", "0", "--no-mlflow"])
    assert bad_value.exit_code == 2 and "n-samples" in bad_value.output
    missing = runner.invoke(app, ["eval", "--model", str(tmp_path / "nope"), "--tasks", "mmlu", "--no-mlflow"])
    assert missing.exit_code == 1 and "config.json missing" in " ".join(missing.output.split())  # rich wraps lines
