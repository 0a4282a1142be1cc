"""The register_and_gate flow on a real Prefect server (test harness) and MLflow: both models registered and
approved, the alias events on the server, and the human approval pause resumed with a typed input."""

from __future__ import annotations

import threading
import time

import pytest

from components.artifacts import ArtifactStore
from components.config import RegistryConfig
from components.registry import audit
from flows.registry import EVENT, register_and_gate
from tests.components.registry.fixtures import build_lineage, evaluation, with_scores

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def toy_models(tmp_path_factory):
    return tmp_path_factory.mktemp("toy-models")


@pytest.fixture
def lineage(home, toy_models, prefect_server):
    return build_lineage(ArtifactStore(home), toy_models)


def _uris(uris: dict[str, str], **overrides) -> dict[str, str]:
    return {"pretrain_uri": uris["pretrain"], "dpo_uri": uris["dpo"], "evaluate_uri": uris["evaluate"],
            "data_uri": uris["data"], "tokenizer_uri": uris["tokenizer"], **overrides}


def _events(model: str, since: float, wait_s: float = 60, want: int = 1) -> list:
    """The alias events of `model` the server has stored (it persists them a moment after they arrive)."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventResourceFilter
    from prefect.types._datetime import from_timestamp

    query = EventFilter(event=EventNameFilter(name=[EVENT]), occurred=EventOccurredFilter(since=from_timestamp(since)),
                        resource=EventResourceFilter(labels={"dsllm.model": model}))
    deadline = time.monotonic() + wait_s
    with get_client(sync_client=True) as client:
        while True:
            found = client.read_events(filter=query, limit=50).events  # the server refuses the default 100
            if len(found) >= want or time.monotonic() > deadline:
                return found
            time.sleep(1)


def test_flow_registers_gates_and_announces_alias_moves(lineage, home):
    since = time.time() - 1
    result = register_and_gate(**_uris(lineage), cfg=RegistryConfig(thresholds={"gsm8k.exact_match": 0.0}))
    assert result["dsllm-chat"]["passed"] and result["dsllm-base"]["passed"]
    assert result["dsllm-chat"]["approved"] == result["dsllm-chat"]["version"] == "1"
    summary = result["dsllm-chat"]["summary"]
    assert (summary["verdict"], summary["approved"]) == ("passed", "1") and summary["reason"].startswith("first approval")
    assert summary["met"] == ["gsm8k.exact_match ≥ 0"]
    mc = audit.client(home)
    assert audit.alias_version(mc, "dsllm-chat", "approved") == "1"
    assert audit.alias_version(mc, "dsllm-base", "approved") == "1"
    again = register_and_gate(**_uris(lineage), cfg=RegistryConfig(thresholds={"gsm8k.exact_match": 0.0}))
    assert again["dsllm-chat"] | {"run_id": None} == result["dsllm-chat"] | {"run_id": None}  # gated before: kept
    events = _events("dsllm-chat", since, wait_s=5, want=2)
    assert len(events) == 1, "a re-run of the same artifacts moves no alias"
    resource = events[0].resource
    assert (resource.id, resource["dsllm.alias"], resource["dsllm.version"]) == ("mlflow.model.dsllm-chat", "approved", "1")
    assert events[0].payload["from_version"] is None and events[0].payload["by"] == "gate"
    assert _events("dsllm-base", since)[0].resource["dsllm.model"] == "dsllm-base"


def _run_in_thread(kwargs: dict) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def target():
        try:
            out["result"] = register_and_gate(**kwargs)
        except BaseException as exc:  # the test reports it
            out["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, out


def _paused_run(started: float, wait_s: float = 240):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterStartTime
    from prefect.types._datetime import from_timestamp

    deadline = time.monotonic() + wait_s
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
                start_time=FlowRunFilterStartTime(after_=from_timestamp(started))))
            paused = [r for r in runs if r.state and r.state.is_paused()]
            if paused:
                return paused[0]
            time.sleep(1)
    raise AssertionError("the flow never paused for approval")


def _approve_through_the_form(kwargs: dict, answer: dict) -> dict:
    """Run the flow, wait for its pause, check the form shows the scorecard, resume it with `answer`."""
    from prefect.flow_runs import resume_flow_run
    from prefect.input.actions import read_flow_run_input
    from prefect.input.run_input import keyset_from_paused_state

    started = time.time() - 1
    thread, out = _run_in_thread(kwargs)
    run = _paused_run(started)
    description = read_flow_run_input(keyset_from_paused_state(run.state)["description"], flow_run_id=run.id)
    assert "## Approve dsllm-chat" in description and "gsm8k" in description and "## Training compute" in description
    resume_flow_run(run.id, run_input=answer)
    thread.join(timeout=300)
    assert "error" not in out, out.get("error")
    return out["result"]


def test_human_approval_pauses_and_resumes_with_typed_input(lineage, home, monkeypatch):
    from flows import registry as registry_flow

    monkeypatch.setattr(registry_flow, "APPROVAL_POLL_S", 1)  # notice the resume within a second
    cfg = RegistryConfig(require_human_approval=True)
    approved = _approve_through_the_form(_uris(lineage, cfg=cfg),
                                         {"approve": True, "comment": "reads well", "approver": "alice"})
    assert approved["dsllm-chat"]["approved"] == "1"
    mc = audit.client(home)
    tags = mc.get_model_version("dsllm-chat", "1").tags
    assert (tags["dsllm.approver"], tags["dsllm.approval_comment"]) == ("alice", "reads well") and tags["dsllm.approved_at"]

    other = evaluation(ArtifactStore(home), lineage, with_scores(gsm8k=0.5))
    rejected = _approve_through_the_form(_uris(lineage, evaluate_uri=other, cfg=cfg),
                                         {"approve": False, "comment": "too chatty", "approver": "bob"})
    assert not rejected["dsllm-chat"]["passed"] and rejected["dsllm-chat"]["reasons"] == ["rejected by bob: too chatty"]
    assert audit.alias_version(mc, "dsllm-chat", "approved") == "1"
    assert mc.get_model_version("dsllm-chat", "2").tags["dsllm.gate"] == "rejected"


def test_cli_promote_announces_the_move_when_prefect_is_up(lineage, home, monkeypatch):
    from prefect.settings import PREFECT_API_URL
    from typer.testing import CliRunner

    from components.registry import gate, register
    from dsllm.cli import app

    store = ArtifactStore(home)
    for scores in ({"gsm8k": 0.25}, {"gsm8k": 0.0}):
        mv = register("chat", lineage["dpo"], evaluation=evaluation(store, lineage, with_scores(**scores)))
        gate("dsllm-chat", mv.version, {"gsm8k.exact_match": 0.1}, 0.0)  # v1 approved, v2 rejected (below the bar)
    monkeypatch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())
    since = time.time() - 1
    result = CliRunner().invoke(app, ["promote", "dsllm-chat", "2", "--by", "dave", "--comment", "hand-checked"])
    assert result.exit_code == 0 and "announced 2 alias move(s)" in result.output, result.output
    events = _events("dsllm-chat", since, want=2)
    moved = {e.resource["dsllm.alias"]: (e.resource["dsllm.version"], e.payload["by"], e.payload["action"])
             for e in events}
    assert moved == {"approved": ("2", "dave", "promote"), "previous": ("1", "dave", "promote")}
