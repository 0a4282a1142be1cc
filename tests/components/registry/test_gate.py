"""The gate and the manual moves against a real MLflow: thresholds, regressions, aliases and the audit tags."""

from __future__ import annotations

import json

import pytest

from components.registry import audit, check, gate, promote, recorded, register, rollback
from tests.components.registry.fixtures import evaluation, with_scores

pytestmark = pytest.mark.integration


def _version(registry, name: str, **scores: float) -> str:
    """A new version of the registry's chat model scored `scores` (e.g. gsm8k=0.5)."""
    uris = registry.uris
    mv = register("chat", uris["dpo"], evaluation=evaluation(registry.store, uris, with_scores(**scores)), name=name,
                  home=registry.home)
    return str(mv.version)


def _aliases(registry, name: str) -> dict[str, str | None]:
    mc = audit.client(registry.home)
    return {alias: audit.alias_version(mc, name, alias) for alias in (audit.APPROVED, audit.PREVIOUS)}


def _tags(registry, name: str, version: str) -> dict[str, str]:
    return audit.client(registry.home).get_model_version(name, version).tags


def test_gate_pass_moves_approved_and_keeps_previous(registry, name):
    v1 = _version(registry, name, mmlu=0.5)
    first = gate(name, v1, {"mmlu.acc": 0.25}, 0.02, home=registry.home)
    assert first.passed and first.baseline_version is None
    assert [(m.alias, m.version, m.from_version) for m in first.moves] == [("approved", v1, None)]
    assert _aliases(registry, name) == {"approved": v1, "previous": None}

    v2 = _version(registry, name, mmlu=0.75)
    second = gate(name, v2, {"mmlu.acc": 0.25}, 0.02, home=registry.home)
    assert second.passed and second.baseline_version == v1
    assert second.compared["mmlu.acc"].baseline == 0.5 and second.compared["mmlu.acc"].value == 0.75
    assert [(m.alias, m.version, m.from_version) for m in second.moves] == [("previous", v1, None),
                                                                           ("approved", v2, v1)]
    assert _aliases(registry, name) == {"approved": v2, "previous": v1}
    tags = _tags(registry, name, v2)
    assert tags["dsllm.gate"] == "passed" and tags["dsllm.approver"] == "gate" and tags["dsllm.gate.baseline"] == v1
    assert [e["action"] for e in json.loads(tags["dsllm.history"])] == ["registered", "gate passed", "gate"]


def test_gate_fail_tags_the_reason_and_leaves_the_alias(registry, name):
    v1 = _version(registry, name, gsm8k=0.25)
    assert gate(name, v1, {}, 0.02, home=registry.home).passed
    v2 = _version(registry, name, gsm8k=0.0)
    decision = gate(name, v2, {"gsm8k.exact_match": 0.1, "gsm8k.accuracy": 0.0}, 1.0, home=registry.home)
    assert not decision.passed and decision.moves == []
    assert any("gsm8k.exact_match = 0 is below the minimum 0.1" in r for r in decision.reasons)
    assert any("gsm8k.accuracy has a threshold but was not measured" in r and "Did you mean 'gsm8k.exact_match'" in r
               for r in decision.reasons)
    tags = _tags(registry, name, v2)
    assert tags["dsllm.gate"] == "rejected" and "below the minimum" in tags["dsllm.gate.reason"]
    assert json.loads(tags["dsllm.gate.compared"])["gsm8k.exact_match"]["ok"] is False
    assert _aliases(registry, name) == {"approved": v1, "previous": None}
    kept = recorded(name, v2, home=registry.home)
    assert not kept.passed and kept.reasons == decision.reasons and not kept.compared["gsm8k.exact_match"].ok
    assert recorded(name, _version(registry, name, gsm8k=0.75), home=registry.home) is None  # still pending


def test_regression_beyond_tolerance_is_rejected(registry, name):
    v1 = _version(registry, name, mmlu=0.5, bpb=8.0)
    gate(name, v1, {}, 0.1, home=registry.home)
    within = _version(registry, name, mmlu=0.45, bpb=8.05)  # worse, but by less than the tolerance
    assert gate(name, within, {}, 0.1, home=registry.home).passed
    worse = _version(registry, name, mmlu=0.2, bpb=9.0)
    decision = check(name, worse, {}, 0.1, home=registry.home)
    assert not decision.passed and decision.baseline_version == within
    assert {r.split(" ")[0] for r in decision.reasons} == {"mmlu.acc", "bpb.bpb"}  # accuracy down, bpb up
    assert decision.compared["bpb.bpb"].lower_is_better and not decision.compared["bpb.bpb"].ok
    assert _tags(registry, name, worse)["dsllm.gate"] == "pending"  # check alone writes nothing
    assert not gate(name, worse, {}, 0.1, home=registry.home).passed
    assert _aliases(registry, name) == {"approved": within, "previous": v1}
    assert "regressed" in _tags(registry, name, worse)["dsllm.gate.reason"]


def test_rollback_restores_previous(registry, name):
    v1, v2 = _version(registry, name, mmlu=0.5), _version(registry, name, mmlu=0.75)
    gate(name, v1, {}, 0.02, home=registry.home)
    gate(name, v2, {}, 0.02, home=registry.home)
    moves = rollback(name, by="ops", comment="answers in the wrong language", home=registry.home)
    assert [(m.alias, m.version, m.from_version, m.action) for m in moves] == [("approved", v1, v2, "rollback")]
    assert _aliases(registry, name) == {"approved": v1, "previous": None}
    restored, bad = _tags(registry, name, v1), _tags(registry, name, v2)
    assert restored["dsllm.approver"] == "ops" and restored["dsllm.approval_comment"] == "answers in the wrong language"
    assert json.loads(restored["dsllm.history"])[-1]["action"] == "rollback" and "dsllm.rolled_back" in bad
    with pytest.raises(ValueError, match="no 'previous' version to roll back to"):
        rollback(name, by="ops", home=registry.home)


def test_promote_overrides_a_rejection_with_an_audit_trail(registry, name):
    v1 = _version(registry, name, gsm8k=0.25)
    gate(name, v1, {}, 0.0, home=registry.home)
    v2 = _version(registry, name, gsm8k=0.0)
    assert not gate(name, v2, {}, 0.0, home=registry.home).passed
    moves = promote(name, v2, by="alice", comment="gsm8k sample of 4 is noise", home=registry.home)
    assert [(m.alias, m.version) for m in moves] == [("previous", v1), ("approved", v2)]
    tags = _tags(registry, name, v2)
    assert (tags["dsllm.approver"], tags["dsllm.approval_comment"]) == ("alice", "gsm8k sample of 4 is noise")
    assert tags["dsllm.approved_at"] and tags["dsllm.gate"] == "rejected"  # the gate's verdict stays on record
    history = json.loads(tags["dsllm.history"])
    assert [e["action"] for e in history] == ["registered", "gate rejected", "promote"] and history[-1]["by"] == "alice"
    with pytest.raises(ValueError, match="already the approved one"):
        promote(name, v2, by="alice", home=registry.home)


def test_unknown_models_and_versions_get_clear_errors(registry, name):
    v1 = _version(registry, name)
    with pytest.raises(ValueError, match=f"{name} has no version '42'; its versions are {v1}"):
        promote(name, 42, by="bob", home=registry.home)
    with pytest.raises(ValueError, match=f"No registered model '{name}x'. Did you mean '{name}'"):
        gate(name + "x", v1, home=registry.home)
    with pytest.raises(ValueError, match="no 'previous' version"):
        rollback(name, by="bob", home=registry.home)
    with pytest.raises(ValueError, match="tolerance must be >= 0"):
        check(name, v1, {}, -1, home=registry.home)
