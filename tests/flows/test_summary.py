"""The end-of-run summary and `--until`: the verdicts and reasons come from the registry's tags, the demo line
says which version is served and why, and the CLI accepts exactly the flow's stages before starting anything."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from typer.testing import CliRunner

from components.home import mlflow_client
from components.registry import gate_summary
from flows import summary
from flows.stages import PIPELINE_STAGES, check_until

pytestmark = pytest.mark.unit
REASON = "bpb regressed: 5.3 against 4.1 on approved v1"


@pytest.fixture
def registry(home):
    """dsllm-chat v1 approved, v2 rejected with a reason, as the gate records them."""
    mc = mlflow_client(home)
    mc.create_registered_model(summary.CHAT)
    for version, verdict, reason in (("1", "passed", "every check passed"), ("2", "rejected", REASON)):
        mc.create_model_version(summary.CHAT, f"file://{home.root}/nowhere/{version}",
                                tags={"dsllm.gate": verdict, "dsllm.gate.reason": reason})
    mc.set_registered_model_alias(summary.CHAT, "approved", "1")
    return mc


def test_serving_reason_names_the_rejected_newer_version_and_its_reason(registry):
    assert summary.serving_reason(registry) == f"v1: v2 was rejected by the gate: {REASON}"
    registry.set_registered_model_alias(summary.CHAT, "approved", "2")
    assert summary.serving_reason(registry).startswith("v2: the newest version, approved")


def test_serving_reason_without_an_approved_version(registry):
    registry.delete_registered_model_alias(summary.CHAT, "approved")
    assert summary.serving_reason(registry).startswith("nothing: no version of dsllm-chat is approved")


def test_summary_lists_stages_verdicts_demo_and_urls(registry, monkeypatch):
    monkeypatch.setenv("DSLLM_DEMO_PORT", "9")  # nothing listens: the demo is reported as not running
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    report = summary.RunSummary("tiny")
    report.stage("data", cached=True, seconds=1.5, artifact="dsllm://data/abc")
    report.stage("pretrain", cached=False, seconds=12.25, artifact="dsllm://pretrain/def")
    report.finish({summary.CHAT: gate_summary(summary.CHAT, "2")})  # what register_and_gate hands on
    out = io.StringIO()
    Console(file=out, width=250).print(report.table())
    text = out.getvalue()
    for expected in ("reused dsllm://data/abc", "built dsllm://pretrain/def", "12.2", "13.8",
                     f"gate rejected: {REASON}", "@approved → v1", "not running", "v1: v2 was rejected by the gate",
                     "MLflow UI", "mlflow ui --backend-store-uri sqlite:///", "Prefect UI"):
        assert expected in text, expected
    assert f"| dsllm-chat v2 | gate rejected: {REASON}" in report.markdown()


def test_until_accepts_exactly_the_flow_stages():
    from flows.pipeline import BUILDS, REGISTER

    assert PIPELINE_STAGES == (*(step.stage for step in BUILDS), REGISTER.stage) == (*PIPELINE_STAGES[:-1], "register")
    assert check_until("register") == "register"
    with pytest.raises(ValueError, match="Did you mean 'register'"):
        check_until("registr")


def test_cli_checks_until_before_starting_anything(monkeypatch):
    import flows.pipeline
    from dsllm import cli

    called = []
    monkeypatch.setattr(cli, "use_services", lambda: called.append("services"))
    monkeypatch.setattr(flows.pipeline, "pipeline", lambda **kw: called.append(kw["until"]))
    runner = CliRunner()
    bad = runner.invoke(cli.app, ["pipeline", "-p", "tiny", "--until", "registr"])
    assert bad.exit_code == 2 and "registr" in bad.output and called == []
    ok = runner.invoke(cli.app, ["pipeline", "-p", "tiny", "--until", "register"])
    assert ok.exit_code == 0, ok.output
    assert called == ["services", "register"]


def test_cli_prints_what_was_built_when_a_stage_fails(monkeypatch):
    import flows.pipeline
    from dsllm import cli

    def failing(**kw):
        summary.LAST = summary.RunSummary("tiny")
        summary.LAST.stage("corpus", cached=True, seconds=0.5, artifact="dsllm://corpus/abc")
        summary.LAST.stage("data", cached=False, seconds=3.0, artifact="(see the error above)", status="failed")
        raise RuntimeError("data broke")

    monkeypatch.setattr(cli, "use_services", lambda: None)
    monkeypatch.setattr(flows.pipeline, "pipeline", failing)
    result = CliRunner().invoke(cli.app, ["pipeline", "-p", "tiny"], env={"COLUMNS": "200"})
    assert isinstance(result.exception, RuntimeError)
    assert "reused dsllm://corpus/abc" in result.output and "failed (see the error above)" in result.output


def test_demo_line_says_a_demo_still_on_the_old_version_switches_at_its_next_check(registry, monkeypatch):
    from components.services import demo as demo_proc

    # the fixture has v1 approved and v2 rejected; now v2 passes and takes @approved
    registry.set_model_version_tag(summary.CHAT, "2", "dsllm.gate", "passed")
    registry.set_model_version_tag(summary.CHAT, "2", "dsllm.gate.reason", "6 bars met")
    registry.set_registered_model_alias(summary.CHAT, "approved", "2")
    served = {"version": "1", "label": "dsllm-chat v1"}
    monkeypatch.setattr(demo_proc, "served", lambda cfg, timeout: served)
    line = summary.demo_line(registry)
    assert "until its next check loads v2" in line and "v2: the newest version, approved (6 bars met)" in line, line
    assert "moved back" not in line
    served["version"] = "2"
    assert summary.demo_line(registry).endswith("v2: the newest version, approved (6 bars met)")


def test_demo_deploy_with_nothing_approved_says_why_and_runs_no_flow(registry, monkeypatch):
    """`make pipeline` ends on `dsllm demo deploy`: when the gate approved nothing, its last words are the gate's
    reasons and what to do, not a flow's traceback."""
    import flows.demo
    from dsllm import cli

    called = []
    monkeypatch.setattr(cli, "use_services", lambda: None)
    monkeypatch.setattr(flows.demo, "deploy_demo", lambda **kw: called.append(kw))
    registry.delete_registered_model_alias(summary.CHAT, "approved")
    result = CliRunner().invoke(cli.app, ["demo", "deploy"], env={"COLUMNS": "250"})
    assert result.exit_code == 1 and called == []
    text = " ".join(result.output.split())
    assert "The demo has nothing to serve: no version of dsllm-chat is approved" in text
    assert f"v2 was rejected by the gate: {REASON}" in text and "dsllm promote dsllm-chat N" in text
    registry.set_registered_model_alias(summary.CHAT, "approved", "1")
    CliRunner().invoke(cli.app, ["demo", "deploy"])  # approved again: the flow runs
    assert called == [{"model": summary.CHAT, "alias": "approved"}]
