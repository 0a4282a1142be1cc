"""What the laws may be trusted for: extrapolation flags (and --from-scaling-study refusing them), M's share
of the real training FLOPs, and the 10x check's verdict with the CLI's exit status."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from components.config import StudyConfig
from components.presets import load_config
from components.scaling import checks, recommend
from components.scaling.fit import PAPER, Law
from components.scaling.report import checks_md, markdown

pytestmark = pytest.mark.unit
LAWS = {name: Law(*PAPER[name]) for name in ("eta", "batch", "m", "d")}


@pytest.mark.parametrize("lr, batch, flagged", [
    (1e-2, 512, []), (3e-2, 1024, []),            # inside, or within the factor 2
    (4e-4, 512, ["lr"]), (1e-2, 4096, ["batch"]),  # 2.5x below / 4x above the range
])
def test_extrapolation_flags_values_beyond_the_factor(lr, batch, flagged):
    flags = checks.extrapolation({"lr": lr, "batch_tokens": batch}, {"lr": [1e-3, 3e-2], "batch": [128, 1024]}, 2.0)
    assert [a for a, v in flags["axes"].items() if v["flagged"]] == flagged
    assert flags["flagged"] == bool(flagged)
    assert (flagged[0] in checks.describe(flags)) if flagged else checks.describe(flags) == ""


def test_explored_range_ignores_diverged_runs():
    rows = [{"lr": 1e-3, "batch": 128, "loss": 3.0}, {"lr": 3e-2, "batch": 512, "loss": 3.1},
            {"lr": 1.0, "batch": 4096, "loss": math.nan}]
    assert checks.explored(rows) == {"lr": [1e-3, 3e-2], "batch": [128, 512]}


def test_clamp_holds_values_inside_their_range_and_keeps_what_the_law_said():
    held, moved = checks.clamp({"lr": 1.1e-4, "batch": 128}, {"lr": [1e-3, 3e-3], "batch": [64, 256]})
    assert held == {"lr": 1e-3, "batch": 128} and isinstance(held["batch"], int)
    assert moved == {"lr": {"law": 1.1e-4, "used": 1e-3, "range": [1e-3, 3e-3]}}
    assert checks.clamp({"lr": 1e-2, "batch": 1024}, {"batch": [64, 256]}) == ({"lr": 1e-2, "batch": 256}, {
        "batch": {"law": 1024, "used": 256, "range": [64, 256]}})
    assert checks.clamp({"lr": 3.0002e-3}, {"lr": [1e-3, 3e-3]})[1] == {}, "an end missed by rounding only is in"
    assert checks.describe_clamp({"within": "optima", "clamped": moved}) == \
        "lr 0.001 (the law: 0.00011), the nearest end of the near-optimal runs' 0.001–0.003"


def test_m_share_counts_the_head_as_omitted_compute():
    # 2 layers, d 64, seq 128: M = 72*2*64^2 + 12*2*64*128 = 786,432; head 6*1024*64 = 393,216
    assert checks.m_share(786_432, 64, 1024) == pytest.approx(2 / 3)
    record = {"budget": 1e10, "m": 786_432, "model": {"d_model": 64, "vocab_size": 1024}}
    small = {"budget": 1e10, "m": 43_008, "model": {"d_model": 16, "vocab_size": 1024}}  # 1x16: head dominates
    [row] = checks.budget_shares([record, small])
    assert row["m_share_max"] == pytest.approx(2 / 3) and row["omitted_max"] == pytest.approx(1 - 43_008 / 141_312)
    assert not row["meaningful"]
    assert checks.budget_shares([record])[0]["meaningful"]


@pytest.mark.parametrize("actual, status, words", [
    (3.50, "passed", ""),
    (3.60, "failed", "2.9% from the predicted"),      # inside the interval, but more than 2% off
    (3.70, "failed", "outside the predicted interval"),
])
def test_verdict_needs_the_interval_and_the_tolerance(actual, status, words):
    val = {"predicted": 3.5, "predicted_low": 3.4, "predicted_high": 3.65, "actual": actual}
    verdict = checks.verdict(val, 0.02)
    assert verdict["status"] == status and words in verdict["reason"]
    assert checks.verdict({"reason": "too few steps"}, 0.02)["status"] == "unchecked"


def _study(tmp_path, explored) -> dict:
    body = {"study": StudyConfig().model_dump(mode="json"), "seq_len": 128, "explored": explored,
            "laws": {k: v.as_dict() for k, v in LAWS.items()}, "recommendation": {"budget": 1e12}}
    (tmp_path / recommend.LAWS_FILE).write_text(json.dumps(body))
    return body


def test_from_scaling_study_refuses_an_extrapolated_recommendation_unless_forced(tmp_path):
    from dsllm.cli_scaling import recommended_overrides

    cfg = load_config("tiny")
    far = _study(tmp_path, {"lr": [1e-1, 3e-1], "batch": [128, 512]})  # the paper's lr at 1e12 is ~1e-2
    with pytest.raises(checks.ExtrapolationError, match=r"lr .* outside the explored 0.1–0.3"):
        recommend.overrides(far, cfg)
    assert any(o.startswith("pretrain.lr=") for o in recommend.overrides(far, cfg, force=True))
    allowed = load_config("tiny", overrides=["scaling.allow_extrapolation=true"])
    assert recommended_overrides(str(tmp_path), allowed)
    near = _study(tmp_path, {"lr": [3e-3, 3e-2], "batch": [128, 2048]})
    assert recommend.overrides(near, cfg)
    ran = CliRunner().invoke(_app(), ["scaling", "recommend", str(_write(tmp_path / "far", far)), "-p", "tiny"])
    assert ran.exit_code == 2 and "extrapolates" in ran.output and "--force" in ran.output
    ran = CliRunner().invoke(_app(), ["scaling", "recommend", str(tmp_path / "far"), "-p", "tiny", "--force"])
    assert ran.exit_code == 0 and "--set pretrain.lr=" in ran.output


def _write(folder, body):
    folder.mkdir()
    (folder / recommend.LAWS_FILE).write_text(json.dumps(body))
    return folder


def _app():
    from dsllm.cli import app

    return app


def _result(verdict: str, flagged: bool) -> dict:
    val = {"budget": 1e12, "compute": 9.9e11, "predicted": 3.5, "predicted_low": 3.4, "predicted_high": 3.6,
           "actual": 3.52 if verdict == "passed" else 3.8}
    val["relative_error"] = (val["predicted"] - val["actual"]) / val["actual"]
    rec = {"budget": 1e12, "n_layer": 2, "d_model": 40, "n_head": 5, "d_ffn": 112, "m": 3e5, "m_opt": 3e5,
           "tokens": 3_000_000, "batch_tokens": 512, "lr": 0.01, "warmup_steps": 1,
           "extrapolation": checks.extrapolation({"lr": 1e-4 if flagged else 1e-2, "batch_tokens": 512},
                                                 {"lr": [3e-3, 3e-2], "batch": [128, 512]}, 2.0)}
    law = {"coef": 1.0, "exponent": 0.5, "coef_ci": [0.9, 1.1], "exponent_ci": [0.4, 0.6], "points": 3}
    return {"study": StudyConfig().model_dump(mode="json"), "seq_len": 128, "laws": dict.fromkeys(
        ("eta", "batch", "m", "d", "loss"), law), "validation": val, "recommendation": rec, "seconds": 60,
        "counts": {"planned": 1}, "minima": [{"budget": 1e11, "m_opt": 1e5, "loss": 3.6, "fitted": True}],
        "brackets": [{"budget": 1e10, "bracketed": True, "runs": 9, "rounds": 1, "cap": 3, "reason": ""},
                     {"budget": 1e11, "bracketed": False, "runs": 12, "rounds": 1, "cap": 3,
                      "reason": "near-optimal run lr 0.01, batch 128 at the low end"}],
        "reach": {"hp": 100.0, "iso": 10.0}, "verdict": checks.verdict(val, 0.02),
        "m_share": {"grid": checks.budget_shares([{"budget": 1e10, "m": 786_432, "model": {"d_model": 64,
                                                                                         "vocab_size": 1024}}]),
                    "isoflop": checks.budget_shares([{"budget": 1e11, "m": 43_008, "model": {"d_model": 16,
                                                                                            "vocab_size": 1024}}]),
                    "validation": None}}


def test_report_names_unbracketed_budgets_flags_and_shares():
    text = "\n".join(checks_md(_result("failed", flagged=True)))
    assert "| 1e+11 | **no: not fitted** | 12 | near-optimal run lr 0.01, batch 128 at the low end |" in text
    assert "Flagged: lr 0.0001 lies 30.0× outside" in text and "100× the largest fitted grid budget" in text
    assert "| grid | 1e+10 | 67% | 33%–33% |" in text and "not a meaningful share" in text and "C = 1e+11" in text
    assert "Flagged" not in "\n".join(checks_md(_result("passed", flagged=False)))
    assert "10× check: the laws FAILED their check** (measured 3.8000 outside" in markdown(_result("failed", True))
    assert "check: the laws passed" in markdown(_result("passed", False))


def test_report_says_where_the_range_held_the_laws():
    result = _result("passed", flagged=False)
    moved = {"lr": {"law": 1.1e-4, "used": 1e-3, "range": [1e-3, 3e-3]}}
    result["recommendation"].update(within="optima", clamped=moved)
    result["isoflop_held"] = [{"budget": 1e10, "lr": {"law": 9e-3, "used": 3e-3, "range": [1e-3, 3e-3]}}]
    text = "\n".join(checks_md(result))
    assert "**Held inside the range (scaling.recommend_within = optima):** lr 0.001 (the law: 0.00011)" in text
    assert "IsoFLOP profile at C = 1e+10 trained with lr 0.003 (the law: 0.009)" in text
    assert "Held inside" not in "\n".join(checks_md(_result("passed", flagged=False)))


@pytest.mark.parametrize("verdict, code", [("passed", 0), ("failed", checks.FAILED_CHECK)])
def test_scaling_run_exit_status_is_the_verdict(verdict, code, tmp_path, monkeypatch):
    """The CLI around the flow: the study's laws.json decides the exit status (the flow itself is not run)."""
    import dsllm.cli
    import flows.scaling

    result = _result(verdict, flagged=False)
    (tmp_path / recommend.LAWS_FILE).write_text(json.dumps(result))
    monkeypatch.setattr(dsllm.cli, "use_services", lambda: None)
    monkeypatch.setattr(flows.scaling, "scaling_study",
                        lambda config: SimpleNamespace(path=str(tmp_path), uri="dsllm://scaling/x"))
    ran = CliRunner().invoke(_app(), ["scaling", "run", "--study", "tiny"])
    assert ran.exit_code == code, ran.output
    assert f"10x check: {verdict}" in ran.output and "C=1e+11 NOT bracketed" in ran.output


def test_scaling_run_exit_status_when_nothing_was_bracketed(monkeypatch):
    import dsllm.cli
    import flows.scaling

    def unbracketed(config):
        raise checks.NotBracketedError("grid budgets not bracketed: C = 1e+10: near-optimal run lr 0.01, batch 128")

    monkeypatch.setattr(dsllm.cli, "use_services", lambda: None)
    monkeypatch.setattr(flows.scaling, "scaling_study", unbracketed)
    ran = CliRunner().invoke(_app(), ["scaling", "run", "--study", "tiny"])
    assert ran.exit_code == checks.NOT_BRACKETED and "C = 1e+10" in ran.output
