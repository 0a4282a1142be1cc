"""The scaling_study flow on the tiny preset's pack with the tiny study: laws with finite intervals, the
report, each trial an MLflow child run of the study's run, and the recommendation taken by the pipeline."""

from __future__ import annotations

import json
import math
from pathlib import Path

import mlflow
import pytest
from typer.testing import CliRunner

from components.presets import tiny_study
from flows import tracking
from tests.components.scaling.fixtures import linked_home, ray_two_cpus, tiny_artifacts, use_home  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.own_process]  # a fresh Ray of 2 CPUs for Tune


@pytest.fixture(scope="module")
def study(prefect_server, tiny_artifacts, shared_cache_home, tmp_path_factory):  # noqa: F811
    from flows.scaling import scaling_study

    root = tmp_path_factory.mktemp("scaling-home")
    linked_home(root, shared_cache_home, tiny_artifacts)
    with use_home(root) as home:
        result = scaling_study(preset="tiny", study=tiny_study(), overrides=[])
        yield result, home


def test_study_publishes_laws_report_and_validation(study):
    result, _ = study
    out = Path(result.path)
    laws = json.loads((out / "laws.json").read_text())
    for name in ("eta", "batch", "m", "d", "loss"):
        assert all(math.isfinite(v) for v in [*laws["laws"][name]["exponent_ci"], *laws["laws"][name]["coef_ci"]]), name
    val = laws["validation"]
    assert val["trained"] and math.isfinite(val["actual"]) and val["predicted_low"] <= val["predicted"] <= \
        val["predicted_high"]
    assert val["budget"] == pytest.approx(2 * 6e9)
    for name in ("scaling.md", "hp_grid.png", "isoflop.png", "laws.png", "loss_law.png", "laws.json"):
        assert (out / "report" / name).stat().st_size > 0, name
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    counts = laws["counts"]
    assert {r["id"] for r in records if r["status"] == "ok"} == {r["id"] for r in records}
    assert counts["failed"] == 0 and counts["trained"] + counts["cached"] == counts["planned"]
    assert {"hp", "iso", "validate"} == {r["kind"] for r in records}
    assert "DeepSeek" in (out / "report" / "scaling.md").read_text()
    assert result.counts["recommendation"]["n_layer"] >= 1


def test_study_brackets_its_grid_and_gives_a_verdict(study):
    """The tiny grid (2x2) is extended once through the real runner; its budgets are judged and named, the
    report carries the checks, the verdict follows the measured validation loss."""
    result, _ = study
    out = Path(result.path)
    laws = json.loads((out / "laws.json").read_text())
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [b["budget"] for b in laws["brackets"]] == [1.5e9, 3e9]
    assert all(b["bracketed"] or b["reason"] for b in laws["brackets"])
    extended = [r for r in records if r["kind"] == "hp" and r["extra"].get("round") == 1]
    assert bool(extended) == (laws["brackets"][0]["rounds"] == 1)
    for r in extended:  # one grid step past the 2x2 grid
        assert r["pretrain"]["lr"] not in (3e-3, 3e-2) or r["pretrain"]["batch_tokens"] not in (512, 1024)
    val, verdict = laws["validation"], laws["verdict"]
    inside = val["predicted_low"] <= val["actual"] <= val["predicted_high"]
    close = abs(val["actual"] - val["predicted"]) / val["predicted"] <= 0.02
    assert verdict["status"] == ("passed" if inside and close else "failed")
    assert result.counts["check_passed"] == int(verdict["status"] == "passed")
    text = (out / "report" / "scaling.md").read_text()
    assert "## Bracketing of the grid" in text and "M's share of the real compute" in text
    shares = laws["m_share"]["grid"] + laws["m_share"]["isoflop"]
    assert all(0 < b["m_share_min"] <= b["m_share_max"] < 1 for b in shares)


def _study_run(home):
    tracking.configure()
    [run] = mlflow.search_runs(filter_string="tags.`dsllm.stage` = 'scaling'", output_format="list")
    return run


def test_each_trial_is_a_child_run_of_the_study_run(study):
    result, home = study
    run = _study_run(home)
    children = mlflow.search_runs(filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'", output_format="list")
    records = [json.loads(line) for line in (Path(result.path) / "results.jsonl").read_text().splitlines()]
    assert sorted(c.data.tags["dsllm.trial"] for c in children) == sorted(r["id"] for r in records)
    assert all("loss" in c.data.metrics and c.info.status == "FINISHED" for c in children)
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "report")}
    assert {"report/scaling.md", "report/laws.png", "report/laws.json"} <= artifacts
    assert run.data.metrics["laws.m.exponent"] == pytest.approx(result.counts["laws"]["m"]["exponent"])


def test_pipeline_takes_the_recommendation_from_the_mlflow_run(study):
    from dsllm.cli import app

    result, home = study
    run_id = _study_run(home).info.run_id
    rec = result.counts["recommendation"]
    shown = CliRunner().invoke(app, ["scaling", "recommend", run_id, "--preset", "tiny"])
    assert shown.exit_code == 0, shown.output
    assert f"--set model.n_layer={rec['n_layer']}" in shown.output
    ran = CliRunner().invoke(app, ["pipeline", "--preset", "tiny", "--from-scaling-study", result.uri,
                                   "--set", "pretrain.seed=3", "--until", "corpus"])
    assert ran.exit_code == 0, ran.output
    tracking.configure()
    [pipeline_run] = mlflow.search_runs(filter_string="attributes.run_name = 'pipeline-tiny'",
                                        order_by=["start_time DESC"], max_results=1, output_format="list")
    params = pipeline_run.data.params
    assert (params["model.n_layer"], params["model.d_model"]) == (str(rec["n_layer"]), str(rec["d_model"]))
    assert params["pretrain.lr"] == str(rec["lr"]) and params["pretrain.seed"] == "3"
