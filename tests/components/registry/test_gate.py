"""The gate and the manual moves against a real MLflow: thresholds, paired regressions on per-item samples, aliases,
the audit tags and the verdict summary."""

from __future__ import annotations

import json

import pytest

from components.registry import audit, check, gate, gate_summary, promote, recorded, register, rollback
from tests.components.registry.fixtures import evaluation, with_scores

pytestmark = pytest.mark.integration


def _mmlu(correct: int, n: int = 30, first: int = 0) -> list[dict]:
    """n MMLU sample records, items first.. first+n-1, the first `correct` of them right."""
    return [{"id": f"anatomy/{first + i}", "score": float(i < correct), "choices": ["A", "B", "C", "D"]}
            for i in range(n)]


def _version(registry, name: str, samples: dict | None = None, config: dict | None = None, **scores: float) -> str:
    """A new version of the registry's chat model scored `scores` (e.g. gsm8k=0.5), with per-item `samples`."""
    uris = registry.uris
    results = with_scores(**scores)
    for task, records in (samples or {}).items():
        results[task] = {**results.get(task, {}), "acc": sum(r["score"] for r in records) / len(records),
                         "n": len(records)}
    mv = register("chat", uris["dpo"], evaluation=evaluation(registry.store, uris, results, samples=samples,
                                                             config=config), name=name, home=registry.home)
    return str(mv.version)


def _aliases(registry, name: str) -> dict[str, str | None]:
    mc = audit.client(registry.home)
    return {alias: audit.alias_version(mc, name, alias) for alias in (audit.APPROVED, audit.PREVIOUS)}


def _tags(registry, name: str, version: str) -> dict[str, str]:
    return audit.client(registry.home).get_model_version(name, version).tags


def test_gate_pass_moves_approved_and_keeps_previous(registry, name):
    v1 = _version(registry, name, {"mmlu": _mmlu(15)})
    first = gate(name, v1, {"mmlu.acc": 0.25}, home=registry.home)
    assert first.passed and first.baseline_version is None and first.reasons[0].startswith("first approval: 2 ")
    assert [(m.alias, m.version, m.from_version) for m in first.moves] == [("approved", v1, None)]
    assert _aliases(registry, name) == {"approved": v1, "previous": None}
    met = _tags(registry, name, v1)["dsllm.gate.met"]
    assert met == "mmlu.acc ≥ 0.25; mmlu.acc: not significantly below chance"

    v2 = _version(registry, name, {"mmlu": _mmlu(25)})  # 10 items won, none lost
    second = gate(name, v2, {"mmlu.acc": 0.25}, home=registry.home)
    assert second.passed and second.baseline_version == v1
    row = second.compared["regression: mmlu.acc"]
    assert (row.baseline, row.value, row.n, row.verdict) == (0.5, pytest.approx(25 / 30), 30, "better")
    assert row.p_value == pytest.approx(0.5 ** 10) and row.low <= row.effect <= row.high
    assert "significantly better: mmlu.acc" in second.reasons[0]
    assert [(m.alias, m.version, m.from_version) for m in second.moves] == [("previous", v1, None),
                                                                           ("approved", v2, v1)]
    tags = _tags(registry, name, v2)
    assert tags["dsllm.gate"] == "passed" and tags["dsllm.approver"] == "gate" and tags["dsllm.gate.baseline"] == v1
    assert "one-sided α = 0.05" in tags["dsllm.gate.level"]
    assert [e["action"] for e in json.loads(tags["dsllm.history"])] == ["registered", "gate passed", "gate"]
    logged = audit.client(registry.home).download_artifacts(
        audit.client(registry.home).get_model_version(name, v2).run_id, "gate/decision.md", str(registry.home.root))
    assert "| regression | mmlu.acc | 30 | 0.8333 | 0.5 | +0.3333" in open(logged).read()


def test_gate_fail_tags_the_reason_and_leaves_the_alias(registry, name):
    v1 = _version(registry, name, gsm8k=0.25)
    assert gate(name, v1, {}, home=registry.home).passed
    v2 = _version(registry, name, gsm8k=0.0)
    decision = gate(name, v2, {"gsm8k.exact_match": 0.1, "gsm8k.accuracy": 0.0}, home=registry.home)
    assert not decision.passed and decision.moves == []
    assert any("gsm8k.exact_match = 0 is below the minimum 0.1" in r for r in decision.reasons)
    assert any("gsm8k.accuracy has a threshold but was not measured" in r and "Did you mean 'gsm8k.exact_match'" in r
               for r in decision.reasons)
    tags = _tags(registry, name, v2)
    assert tags["dsllm.gate"] == "rejected" and "below the minimum" in tags["dsllm.gate.reason"]
    assert json.loads(tags["dsllm.gate.compared"])["threshold: gsm8k.exact_match"]["ok"] is False
    assert _aliases(registry, name) == {"approved": v1, "previous": None}
    kept = recorded(name, v2, home=registry.home)
    assert not kept.passed and kept.reasons == decision.reasons and not kept.compared["threshold: gsm8k.exact_match"].ok
    assert recorded(name, _version(registry, name, gsm8k=0.75), home=registry.home) is None  # still pending


def test_only_a_significant_regression_on_like_items_blocks(registry, name):
    v1 = _version(registry, name, {"mmlu": _mmlu(20)})
    gate(name, v1, {}, home=registry.home)
    noise = _version(registry, name, {"mmlu": _mmlu(17)})  # 3 lost, none won: p = 1/8, not significant
    decision = gate(name, noise, {}, home=registry.home)
    assert decision.passed and decision.compared["regression: mmlu.acc"].verdict == "no significant difference"
    unlike = check(name, _version(registry, name, {"mmlu": _mmlu(8)}, config={"limit": 30}), {}, home=registry.home)
    assert unlike.passed and unlike.compared["regression: mmlu.acc"].verdict == \
        "not comparable: settings differ (limit 4 → 30)"
    few = check(name, _version(registry, name, {"mmlu": _mmlu(1, n=4)}), {}, home=registry.home)
    assert few.passed and few.compared["regression: mmlu.acc"].verdict == "inconclusive: 4 shared items (< 20)"
    worst = _version(registry, name, {"mmlu": _mmlu(5)})  # 12 lost, none won; not below chance
    rejected = gate(name, worst, {}, home=registry.home)
    assert not rejected.passed and rejected.baseline_version == noise
    assert rejected.reasons == [rejected.reasons[0]] and rejected.reasons[0].startswith(
        "mmlu.acc regressed significantly: 0.1667 against 0.5667 on approved")
    assert "McNemar exact (12 lost, 0 won)" in rejected.reasons[0] and "p = 0.000244" in rejected.reasons[0]
    assert _aliases(registry, name) == {"approved": noise, "previous": v1}
    assert "regressed significantly" in _tags(registry, name, worst)["dsllm.gate.reason"]


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
    assert not gate(name, v2, {"gsm8k.exact_match": 0.1}, 0.0, home=registry.home).passed
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
    with pytest.raises(ValueError, match="alpha must be in"):
        check(name, v1, {}, alpha=0.7, home=registry.home)
    with pytest.raises(ValueError, match=f"No registered model '{name}x'"):
        gate_summary(name + "x", home=registry.home)


def test_summary_says_the_verdict_and_why(registry, name):
    v1 = _version(registry, name, gsm8k=0.25)
    assert gate_summary(name, home=registry.home)["verdict"] == "pending"
    gate(name, v1, {}, home=registry.home)
    v2 = _version(registry, name, gsm8k=0.0)
    gate(name, v2, {"gsm8k.exact_match": 0.1}, home=registry.home)
    summary = gate_summary(name, home=registry.home)
    assert (summary["version"], summary["verdict"], summary["approved"], summary["baseline"]) == (v2, "rejected", v1, v1)
    assert summary["reason"] == "gsm8k.exact_match = 0 is below the minimum 0.1"
    assert summary["line"] == f"{name} v{v2} rejected (approved: v{v1}): {summary['reason']}"
    assert "gsm8k.exact_match 0 (threshold ≥ 0.1: NOT met)" in summary["comparison"]
    assert gate_summary(name, v1, home=registry.home)["reason"].startswith("first approval")
