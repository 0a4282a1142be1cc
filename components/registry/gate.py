"""The approval gate: thresholds per metric, and no regression beyond a tolerance against `approved`.

`check(...)` only reads and returns a `GateDecision`; `apply(decision)` records it (tags
`dsllm.gate`, `dsllm.gate.reason`, `dsllm.gate.compared`) and, when it passed, moves `approved`
(the former holder becomes `previous`). `gate(...)` does both. A flow with human approval calls
`check`, asks a person, then `apply` or `reject`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

from mlflow.tracking import MlflowClient

from components.home import Home
from components.names import did_you_mean
from components.registry import audit
from components.registry.metrics import lower_is_better, metric_name

KEY_METRICS_TAG = "dsllm.key_metrics"
ALREADY_APPROVED = "already the approved version"


@dataclass
class MetricCheck:
    """One compared metric: the candidate's value, the threshold and the approved version's value."""

    metric: str
    value: float | None
    threshold: float | None = None
    baseline: float | None = None
    lower_is_better: bool = False
    ok: bool = True


@dataclass
class GateDecision:
    """The verdict on one model version; `reasons` says why it failed (or that every check passed)."""

    name: str
    version: str
    passed: bool
    reasons: list[str]
    compared: dict[str, MetricCheck] = field(default_factory=dict)
    baseline_version: str | None = None
    tolerance: float = 0.0
    moves: list[audit.AliasMove] = field(default_factory=list)
    """The alias moves `apply` made (empty until applied, and when rejected)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    def markdown(self) -> str:
        """The decision as a small markdown report (for the approval form and the flow's artifact)."""
        verdict = "**passed**" if self.passed else "**rejected**"
        base = f"approved v{self.baseline_version}" if self.baseline_version else "no approved version yet"
        lines = [f"### Gate: {self.name} v{self.version} {verdict}", "",
                 f"Compared with {base}; tolerance {self.tolerance:g}.", "",
                 "| metric | this version | threshold | approved | ok |", "|---|---|---|---|---|"]
        for c in self.compared.values():
            bound = "" if c.threshold is None else ("≤ " if c.lower_is_better else "≥ ") + f"{c.threshold:g}"
            lines.append(f"| {c.metric} | {_fmt(c.value)} | {bound} | {_fmt(c.baseline)} | {'yes' if c.ok else 'NO'} |")
        return "\n".join([*lines, "", *(f"- {r}" for r in self.reasons), ""])


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def run_metrics(mc: MlflowClient, mv) -> dict[str, float]:
    """The metrics logged on a version's registration run (finite values only)."""
    if not mv.run_id:
        return {}
    return {k: v for k, v in mc.get_run(mv.run_id).data.metrics.items() if math.isfinite(v)}


def key_metrics(mv) -> list[str]:
    return [m for m in mv.tags.get(KEY_METRICS_TAG, "").split(",") if m]


def _worse_by(value: float, baseline: float, lower: bool) -> float:
    return value - baseline if lower else baseline - value


def _thresholds(thresholds: dict[str, float], metrics: dict[str, float], compared: dict, reasons: list[str]) -> None:
    for raw, bound in thresholds.items():
        name = metric_name(raw)
        lower = lower_is_better(name)
        value = metrics.get(name)
        check = compared.setdefault(name, MetricCheck(name, value, lower_is_better=lower))
        check.threshold = float(bound)
        if value is None:
            check.ok = False
            reasons.append(f"{name} has a threshold but was not measured on this version."
                           f"{did_you_mean(name, metrics)}")
        elif (value > bound) if lower else (value < bound):
            check.ok = False
            reasons.append(f"{name} = {value:.4g} is {'above the maximum' if lower else 'below the minimum'} {bound:g}")


def _regressions(keys: list[str], metrics: dict[str, float], baseline: dict[str, float], baseline_version: str,
                 tolerance: float, compared: dict, reasons: list[str]) -> None:
    for name in keys:
        lower = lower_is_better(name)
        check = compared.setdefault(name, MetricCheck(name, metrics.get(name), lower_is_better=lower))
        check.baseline = baseline.get(name)
        if check.baseline is None:
            continue  # the approved version never measured it: nothing to regress from
        if check.value is None:
            check.ok = False
            reasons.append(f"{name} was measured on approved v{baseline_version} but not on this version")
        elif _worse_by(check.value, check.baseline, lower) > tolerance + 1e-12:
            check.ok = False
            reasons.append(f"{name} regressed: {check.value:.4g} against {check.baseline:.4g} on approved "
                           f"v{baseline_version} (worse by {_worse_by(check.value, check.baseline, lower):.4g}, "
                           f"tolerance {tolerance:g})")


def check(name: str, version: str | int, thresholds: dict[str, float] | None = None, tolerance: float = 0.0, *,
          home: Home | None = None) -> GateDecision:
    """Judge a version without changing anything: every threshold met, and no key metric worse than the current
    `approved` version's by more than `tolerance` (in the metric's units)."""
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    mc = audit.client(home)
    mv = audit.model_version(mc, name, version)
    this = str(mv.version)
    metrics, compared, reasons = run_metrics(mc, mv), {}, []
    _thresholds(thresholds or {}, metrics, compared, reasons)
    holder = audit.alias_version(mc, name, audit.APPROVED)
    if holder and holder != this:
        base_mv = mc.get_model_version(name, holder)
        keys = list(dict.fromkeys(key_metrics(mv) + key_metrics(base_mv)))
        _regressions(keys, metrics, run_metrics(mc, base_mv), holder, tolerance, compared, reasons)
    passed = not reasons
    if passed:
        reasons = [ALREADY_APPROVED if holder == this else
                   f"all {len(compared)} checks passed against approved v{holder}" if holder else
                   f"first approval: {len(thresholds or {})} thresholds met, no approved version to compare with"]
    return GateDecision(name, this, passed, reasons, compared, holder if holder != this else None, tolerance)


def recorded(name: str, version: str | int, *, home: Home | None = None) -> GateDecision | None:
    """The decision already recorded on a version (dsllm.gate passed or rejected), or None when it is pending."""
    mc = audit.client(home)
    tags = audit.model_version(mc, name, version).tags
    if tags.get("dsllm.gate") not in ("passed", "rejected"):
        return None
    compared = {k: MetricCheck(**v) for k, v in json.loads(tags.get("dsllm.gate.compared") or "{}").items()}
    return GateDecision(name, str(version), tags["dsllm.gate"] == "passed", tags.get("dsllm.gate.reason", "").split("; "),
                        compared, tags.get("dsllm.gate.baseline") or None)


def _decision_tags(decision: GateDecision, verdict: str, reasons: list[str]) -> dict[str, str]:
    compared = {k: asdict(v) for k, v in decision.compared.items()}
    return {"dsllm.gate": verdict, "dsllm.gate.reason": "; ".join(reasons), "dsllm.gate.time": audit.now(),
            "dsllm.gate.compared": json.dumps(compared)[:audit.TAG_VALUE_LIMIT],
            "dsllm.gate.baseline": decision.baseline_version or ""}


def apply(decision: GateDecision, by: str = "gate", comment: str = "", *, home: Home | None = None
          ) -> list[audit.AliasMove]:
    """Record the decision on the version; when it passed, move `approved` to it (returns the moves)."""
    if not decision.passed:
        reject(decision, decision.reasons, by=by, comment=comment, home=home)
        return []
    mc = audit.client(home)
    tags = _decision_tags(decision, "passed", decision.reasons)
    audit.record(mc, decision.name, decision.version, {"time": tags["dsllm.gate.time"], "action": "gate passed",
                                                        "by": by, "comment": comment}, tags)
    decision.moves = audit.approve(mc, decision.name, decision.version, by, comment, "gate")
    return decision.moves


def reject(decision: GateDecision, reasons: list[str], by: str = "gate", comment: str = "", *,
           home: Home | None = None) -> None:
    """Tag the version rejected with the reasons (a person's rejection of a passing version too); aliases stay."""
    mc = audit.client(home)
    tags = _decision_tags(decision, "rejected", reasons)
    audit.record(mc, decision.name, decision.version, {"time": tags["dsllm.gate.time"], "action": "gate rejected",
                                                        "by": by, "comment": comment, "reasons": reasons}, tags)


def gate(name: str, version: str | int, thresholds: dict[str, float] | None = None, tolerance: float = 0.0, *,
         by: str = "gate", home: Home | None = None) -> GateDecision:
    """`check`, then `apply`: pass → `approved` moves here (the former holder becomes `previous`); fail → the
    version is tagged dsllm.gate=rejected with dsllm.gate.reason, and no alias moves."""
    decision = check(name, version, thresholds, tolerance, home=home)
    apply(decision, by=by, home=home)
    return decision
