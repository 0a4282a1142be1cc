"""`dsllm models ls | promote | rollback` on a real MLflow registry in the test home (no Prefect running: the
moves still happen, with a warning that no event was sent)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from components.artifacts import ArtifactStore
from components.home import Home
from components.registry import audit, gate, register
from tests.components.registry.fixtures import build_lineage, evaluation, with_scores

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory):
    """One home for the module: dsllm-chat v1 approved by the gate, v2 rejected by it (gsm8k below the bar).
    The mistakes test changes nothing, so it runs first and the moves test after it."""
    with pytest.MonkeyPatch.context() as mp:
        for var in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI"):
            mp.delenv(var, raising=False)
        home = Home.resolve(tmp_path_factory.mktemp("cli-registry") / "home")
        mp.setenv("DSLLM_HOME", str(home.root))
        store = ArtifactStore(home)
        uris = build_lineage(store, tmp_path_factory.mktemp("toy-models"))
        for scores in ({"gsm8k": 0.25}, {"gsm8k": 0.0}):
            mv = register("chat", uris["dpo"], evaluation=evaluation(store, uris, with_scores(**scores)), home=home)
            gate("dsllm-chat", mv.version, {"gsm8k.exact_match": 0.1}, 0.0, home=home)
        yield home


@pytest.fixture(autouse=True)
def _terminal_console(monkeypatch):
    from rich.console import Console

    from dsllm import cli_registry

    monkeypatch.setattr(cli_registry, "console", Console(width=80))  # an 80-column terminal


def _run(*args: str):
    from dsllm.cli import app

    return CliRunner().invoke(app, list(args))


MISTAKES = [(("promote", "dsllm-chat", "9"), "dsllm-chat has no version '9'; its versions are 1, 2"),
            (("promote", "dsllm-chta", "1"), "Did you mean 'dsllm-chat'"),
            (("rollback", "dsllm-chat"), "no 'previous' version to roll back to"),
            (("models", "ls", "nosuch"), "No registered model 'nosuch'")]


def test_mistakes_exit_1_with_a_clear_message(two_versions):
    for args, message in MISTAKES:
        result = _run(*args)
        assert result.exit_code == 1 and message in " ".join(result.output.split()), (args, result.output)
    assert audit.alias_version(audit.client(two_versions), "dsllm-chat", "approved") == "1"


def test_ls_promote_rollback(two_versions):
    mc = audit.client(two_versions)
    listed = _run("models", "ls")
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert max(len(line) for line in lines) <= 80, listed.output
    flat = " ".join(listed.output.split())
    assert "dsllm-chat 2 rejected" in flat and "1 approved passed" in flat, listed.output
    assert "gsm8k.exact_match=0.25" in flat and "gsm8k.exact_match = 0 is below the minimum 0.1" in flat
    as_json = _run("models", "ls", "--json")
    rows = json.loads(as_json.output)
    assert [(r["version"], r["gate"], r["aliases"]) for r in rows] == [("2", "rejected", []), ("1", "passed", ["approved"])]
    assert rows[0]["baseline"] == "1" and rows[1]["met"] == ["gsm8k.exact_match ≥ 0.1"] and rows[0]["artifact"]

    promoted = _run("promote", "dsllm-chat", "2", "--by", "carol", "--comment", "noise in a 4-sample eval")
    assert promoted.exit_code == 0, promoted.output
    assert "dsllm-chat@approved → v2 (was 1)" in promoted.output and "No Prefect API reachable" in promoted.output
    tags = mc.get_model_version("dsllm-chat", "2").tags
    assert (tags["dsllm.approver"], tags["dsllm.approval_comment"]) == ("carol", "noise in a 4-sample eval")

    rolled = _run("rollback", "dsllm-chat", "--by", "carol")
    assert rolled.exit_code == 0 and "dsllm-chat@approved → v1 (was 2)" in rolled.output
    assert audit.alias_version(mc, "dsllm-chat", "approved") == "1"
