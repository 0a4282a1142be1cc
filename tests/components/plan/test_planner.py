"""`dsllm plan`: the cluster presets fit their clusters, an impossible request fails naming its largest term."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from components.plan.accelerators import accelerator, from_device_name
from components.plan.planner import Cluster, DoesNotFit, check_fits, plan
from components.presets import load_config

pytestmark = pytest.mark.unit


def test_deepseek_7b_on_64_h100_fits_with_its_micro_batch():
    result = plan(load_config("deepseek_7b"), Cluster(accelerator("h100-80gb"), 64))
    assert result["fits"] and result["largest_micro_batch"]["fits_and_divides"] >= 4
    mem = result["memory"]
    assert mem["activations_by_mode"]["none"] > mem["activations_by_mode"]["selective"] > \
        mem["activations_by_mode"]["full"]
    assert 6.5e9 < result["params"] < 7.2e9  # DeepSeek LLM 7B
    days = result["speed"]["seconds"] / 86400
    assert 10 < days < 200 and result["speed"]["tokens"] == 2_000_000_000_000


def test_a_time_budget_bounds_the_planned_tokens():
    cfg = load_config("deepseek_7b", overrides=["pretrain.time_budget_min=1440"])  # a day on 64 H100s
    speed = plan(cfg, Cluster(accelerator("h100-80gb"), 64))["speed"]
    assert speed["seconds"] == pytest.approx(86400)
    assert speed["tokens"] == pytest.approx(86400 * speed["tokens_per_s"], rel=1e-6) and speed["tokens"] < 2e12


def test_deepseek_67b_needs_full_checkpointing_on_512_h100():
    cfg = load_config("deepseek_67b")
    cluster = Cluster(accelerator("h100-80gb"), 512)
    assert plan(cfg, cluster)["fits"]
    assert not plan(cfg, cluster, checkpointing="none")["fits"]
    assert not plan(cfg, cluster, strategy="ddp")["fits"]  # the fp32 states of 67B parameters on every GPU


def test_impossible_request_names_the_largest_term():
    with pytest.raises(DoesNotFit, match="largest term is optimizer"):
        check_fits(load_config("deepseek_67b"), Cluster(accelerator("rtx4090-24gb"), 8))


def test_cli_prints_the_plan_and_exits_2_when_it_cannot_fit():
    from dsllm.cli import app

    runner = CliRunner()
    ok = runner.invoke(app, ["plan", "-p", "deepseek_7b", "--gpus", "64", "--gpu", "h100-80gb"])
    assert ok.exit_code == 0, ok.output
    assert "fits: yes" in ok.output and "activations" in ok.output and "days" in ok.output
    as_json = json.loads(runner.invoke(app, ["plan", "-p", "deepseek_67b", "--gpus", "512", "--json"]).output)
    assert as_json["fits"] and as_json["layout"]["checkpointing"] == "full"
    bad = runner.invoke(app, ["plan", "-p", "deepseek_67b", "--gpus", "8", "--gpu", "rtx4090-24gb"])
    assert bad.exit_code == 2 and "largest term is optimizer" in bad.output.replace("\n", " ")
    unknown = runner.invoke(app, ["plan", "-p", "deepseek_7b", "--gpus", "8", "--gpu", "h100"])
    assert unknown.exit_code == 2 and "Did you mean" in unknown.output


def test_device_names_map_to_the_table():
    assert from_device_name("NVIDIA H100 80GB HBM3").name == "h100-80gb"
    assert from_device_name("NVIDIA A100-SXM4-40GB").name == "a100-40gb"
    assert from_device_name("NVIDIA GeForce RTX 4090").name == "rtx4090-24gb"
    assert from_device_name("Some Other GPU") is None


def test_study_recommendation_for_the_plans_budget(tmp_path):
    """With --study, the plan prints what the study's laws recommend for the config's C = M·D (here the paper's
    laws stand in for a finished study's laws.json)."""
    from components.config import StudyConfig
    from components.scaling.fit import PAPER, Law
    from dsllm.cli import app

    laws = {name: Law(coef, exponent).as_dict() for name, (coef, exponent) in PAPER.items()}
    rules = StudyConfig(head_dim=128, hp_d_model=128, aspect=128)  # shape rules that reach the 7B scale
    (tmp_path / "laws.json").write_text(json.dumps({"laws": laws, "study": rules.model_dump(mode="json")}))
    out = CliRunner().invoke(app, ["plan", "-p", "deepseek_7b", "--gpus", "64", "--study", str(tmp_path), "--json"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    rec = result["recommendation"]
    assert rec["budget"] == result["speed"]["compute"] == pytest.approx(8.46e22, rel=0.01)
    # the paper's laws at 8.5e22 FLOPs: M_opt ≈ 4e11 FLOPs/token, D_opt ≈ 2e11 tokens, lr ≈ 5e-4
    assert 1e11 < rec["m"] < 1e12 and 1e11 < rec["tokens"] < 5e11 and 2e-4 < rec["lr"] < 1e-3
