"""The approval gate: thresholds, better than trivial, and no *significant* regression against `approved`.

`check(...)` only reads and returns a `GateDecision`; `apply(decision)` records it (tags `dsllm.gate`,
`dsllm.gate.reason`, `dsllm.gate.compared`, `dsllm.gate.met`, `dsllm.gate.level`; the whole decision as
`gate/decision.json` on the registration run) and, when it passed, moves `approved` (the former holder
becomes `previous`). `gate(...)` does both. A flow with human approval calls `check`, asks a person, then
`apply` or `reject`. The comparisons themselves are in compare.py, their statistics in stats.py.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from components.home import Home
from components.names import did_you_mean
from components.registry import audit
from components.registry.compare import MetricCheck, Policy, regressions, trivial_checks
from components.registry.evidence import EVIDENCE_FILE
from components.registry.metrics import lower_is_better, metric_name

KEY_METRICS_TAG = "dsllm.key_metrics"
ALREADY_APPROVED = "already the approved version"


@dataclass
class GateDecision:
    """The verdict on one model version; `reasons` says why it failed (or what passed)."""

    name: str
    version: str
    passed: bool
    reasons: list[str]
    compared: dict[str, MetricCheck] = field(default_factory=dict)
    baseline_version: str | None = None
    tolerance: float = 0.0
    moves: list[audit.AliasMove] = field(default_factory=list)
    """The alias moves `apply` made (empty until applied, and when rejected)."""
    alpha: float = 0.05
    min_items: int = 20
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @property
    def level(self) -> str:
        return (f"paired tests, one-sided α = {self.alpha:g} ({1 - 2 * self.alpha:.0%} intervals), at least "
                f"{self.min_items} shared items, tolerance {self.tolerance:g}")

    @property
    def met(self) -> list[str]:
        """The thresholds and bars of triviality this version cleared (what a first approval records)."""
        return [f"{c.metric} {'≤' if c.lower_is_better else '≥'} {c.threshold:.4g}" if c.check == "threshold" else
                f"{c.metric}: {c.verdict}" for c in self.compared.values() if c.check != "regression" and c.ok]

    def markdown(self) -> str:
        """The decision as a small markdown report (for the approval form, the flow's artifact and the tags)."""
        verdict = "**passed**" if self.passed else "**rejected**"
        base = f"approved v{self.baseline_version}" if self.baseline_version else "no approved version yet"
        lines = [f"### Gate: {self.name} v{self.version} {verdict}", "", f"Compared with {base}; {self.level}; "
                 "effect = this version − approved; p one-sided in the direction of the verdict.", "",
                 "| check | metric | n | this version | approved / bar | effect [interval] | p | verdict |",
                 "|---|---|---|---|---|---|---|---|"]
        for c in self.compared.values():
            bar = c.baseline if c.check == "regression" else c.threshold
            effect = "" if c.effect is None else f"{c.effect:+.4g} [{c.low:+.3g}, {c.high:+.3g}]"
            lines.append(f"| {c.check} | {c.metric} | {'' if c.n is None else c.n} | {_fmt(c.value)} | {_fmt(bar)} | "
                         f"{effect} | {'' if c.p_value is None else f'{c.p_value:.3g}'} | "
                         f"{c.verdict or ('ok' if c.ok else 'NO')} |")
        return "\n".join([*lines, "", *(f"- {r}" for r in self.reasons), *(f"- note: {n}" for n in self.notes), ""])


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def run_metrics(mc: MlflowClient, mv) -> dict[str, float]:
    """The metrics logged on a version's registration run (finite values only)."""
    if not mv.run_id:
        return {}
    return {k: v for k, v in mc.get_run(mv.run_id).data.metrics.items() if math.isfinite(v)}


def run_evidence(mc: MlflowClient, mv) -> dict | None:
    """The per-item evidence logged at registration (None for versions registered without it)."""
    if not mv.run_id:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = mc.download_artifacts(mv.run_id, EVIDENCE_FILE, tmp)
        except (MlflowException, OSError):
            return None
        return json.loads(Path(path).read_text(encoding="utf-8"))


def key_metrics(mv) -> list[str]:
    return [m for m in mv.tags.get(KEY_METRICS_TAG, "").split(",") if m]


def _thresholds(thresholds: dict[str, float], metrics: dict[str, float], compared: dict, reasons: list[str]) -> None:
    for raw, bound in thresholds.items():
        name = metric_name(raw)
        lower, value = lower_is_better(name), metrics.get(name)
        ok = value is not None and ((value <= bound) if lower else (value >= bound))
        compared[f"threshold: {name}"] = MetricCheck(name, value, float(bound), lower_is_better=lower, ok=ok,
                                                     check="threshold", verdict="met" if ok else "NOT met")
        if value is None:
            reasons.append(f"{name} has a threshold but was not measured on this version.{did_you_mean(name, metrics)}")
        elif not ok:
            reasons.append(f"{name} = {value:.4g} is {'above the maximum' if lower else 'below the minimum'} {bound:g}")


def _reason(c: MetricCheck, holder: str | None) -> str:
    if c.check == "trivial":
        bar = "the unigram entropy of the validation text" if c.metric.endswith("bpb") else "chance"
        tail = f" (binomial p = {c.p_value:.3g}, n = {c.n})" if c.p_value is not None else ""
        return f"{c.metric} = {c.value:.4g} is {c.verdict.replace(' the unigram entropy of the validation text', '')}" \
               f" {bar} {c.threshold:.4g}{tail}: no better than trivial"
    return (f"{c.metric} regressed significantly: {c.value:.4g} against {c.baseline:.4g} on approved v{holder} "
            f"(effect {c.effect:+.4g}, interval [{c.low:+.3g}, {c.high:+.3g}], {c.test}, p = {c.p_value:.3g}, "
            f"n = {c.n})")


def check(name: str, version: str | int, thresholds: dict[str, float] | None = None, tolerance: float = 0.0, *,
          alpha: float = 0.05, min_items: int = 20, trivial: bool = True, bpb_bar: bool = True,
          home: Home | None = None) -> GateDecision:
    """Judge a version without changing anything: every threshold met, better than trivial (when `trivial`), and
    no task or bpb significantly worse (one-sided `alpha`, by more than `tolerance`) than the `approved` version on
    the items both scored with the same settings. `bpb_bar=False` leaves bpb out of the trivial bars."""
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
    policy, mc = Policy(alpha, min_items, tolerance, trivial, bpb_bar), audit.client(home)
    mv = audit.model_version(mc, name, version)
    this = str(mv.version)
    metrics, evidence, compared, reasons = run_metrics(mc, mv), run_evidence(mc, mv), {}, []
    _thresholds(thresholds or {}, metrics, compared, reasons)
    for c in trivial_checks(metrics, evidence, policy):
        compared[f"trivial: {c.metric}"] = c
    holder = audit.alias_version(mc, name, audit.APPROVED)
    if holder and holder != this:
        base_mv = mc.get_model_version(name, holder)
        for c in regressions(evidence, run_evidence(mc, base_mv), policy):
            compared[f"regression: {c.metric}"] = c
    reasons += [_reason(c, holder) for c in compared.values() if not c.ok and c.check != "threshold"]
    passed = not reasons
    if passed:
        reasons = [ALREADY_APPROVED if holder == this else _passed(compared, holder)]
    notes = [f"not available: {', '.join(evidence['not_available'])}"] if evidence and evidence["not_available"] else []
    return GateDecision(name, this, passed, reasons, compared, holder if holder != this else None, tolerance,
                        alpha=alpha, min_items=min_items, notes=notes)


def _passed(compared: dict[str, MetricCheck], holder: str | None) -> str:
    bars = [c for c in compared.values() if c.check != "regression"]
    if not holder:
        return f"first approval: {_count(len(bars), 'bar')} met, no approved version to compare with"
    tested = [c for c in compared.values() if c.check == "regression" and c.p_value is not None]
    better = [c.metric for c in tested if c.verdict == "better"]
    return (f"{_count(len(bars), 'bar')} met; no significant regression against approved v{holder} in "
            f"{_count(len(tested), 'paired comparison')}" + (f" (significantly better: {', '.join(better)})"
                                                             if better else ""))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def recorded(name: str, version: str | int, *, home: Home | None = None) -> GateDecision | None:
    """The decision already recorded on a version (dsllm.gate passed or rejected), or None when it is pending."""
    mc = audit.client(home)
    tags = audit.model_version(mc, name, version).tags
    if tags.get("dsllm.gate") not in ("passed", "rejected"):
        return None
    try:
        rows = json.loads(tags.get("dsllm.gate.compared") or "{}")
    except json.JSONDecodeError:  # written before the compact form, and cut at the tag limit
        rows = {}
    known = set(MetricCheck.__dataclass_fields__)
    compared = {k: MetricCheck(**{"value": None, **{f: x for f, x in v.items() if f in known}}) for k, v in rows.items()}
    return GateDecision(name, str(version), tags["dsllm.gate"] == "passed", tags.get("dsllm.gate.reason", "").split("; "),
                        compared, tags.get("dsllm.gate.baseline") or None)


def _compact(decision: GateDecision) -> str:
    """The table as JSON within MLflow's tag limit: unset fields dropped, numbers rounded, then rows cut."""
    rows = {k: {f: round(x, 6) if isinstance(x, float) else x for f, x in asdict(c).items() if x not in (None, "")}
            for k, c in decision.compared.items()}
    text = json.dumps(rows, ensure_ascii=False)
    while len(text) > audit.TAG_VALUE_LIMIT and rows:
        rows.pop(next(reversed(rows)))
        text = json.dumps(rows, ensure_ascii=False)
    return text


def _decision_tags(decision: GateDecision, verdict: str, reasons: list[str]) -> dict[str, str]:
    return {"dsllm.gate": verdict, "dsllm.gate.reason": "; ".join(reasons), "dsllm.gate.time": audit.now(),
            "dsllm.gate.compared": _compact(decision), "dsllm.gate.baseline": decision.baseline_version or "",
            "dsllm.gate.met": "; ".join(decision.met), "dsllm.gate.level": decision.level}


def _log_decision(mc: MlflowClient, decision: GateDecision) -> None:
    """The whole decision (table, reasons, level) as gate/decision.{json,md} on the version's registration run."""
    run_id = mc.get_model_version(decision.name, decision.version).run_id
    if run_id:
        mc.log_dict(run_id, json.loads(decision.to_json()), "gate/decision.json")
        mc.log_text(run_id, decision.markdown(), "gate/decision.md")


def apply(decision: GateDecision, by: str = "gate", comment: str = "", *, home: Home | None = None
          ) -> list[audit.AliasMove]:
    """Record the decision on the version; when it passed, move `approved` to it (returns the moves)."""
    if not decision.passed:
        reject(decision, decision.reasons, by=by, comment=comment, home=home)
        return []
    mc = audit.client(home)
    tags = _decision_tags(decision, "passed", decision.reasons)
    _log_decision(mc, decision)
    audit.record(mc, decision.name, decision.version, {"time": tags["dsllm.gate.time"], "action": "gate passed",
                                                        "by": by, "comment": comment}, tags)
    decision.moves = audit.approve(mc, decision.name, decision.version, by, comment, "gate")
    return decision.moves


def reject(decision: GateDecision, reasons: list[str], by: str = "gate", comment: str = "", *,
           home: Home | None = None) -> None:
    """Tag the version rejected with the reasons (a person's rejection of a passing version too); aliases stay."""
    mc = audit.client(home)
    tags = _decision_tags(decision, "rejected", reasons)
    _log_decision(mc, decision)
    audit.record(mc, decision.name, decision.version, {"time": tags["dsllm.gate.time"], "action": "gate rejected",
                                                        "by": by, "comment": comment, "reasons": reasons}, tags)


def gate(name: str, version: str | int, thresholds: dict[str, float] | None = None, tolerance: float = 0.0, *,
         alpha: float = 0.05, min_items: int = 20, trivial: bool = True, bpb_bar: bool = True, by: str = "gate",
         home: Home | None = None) -> GateDecision:
    """`check`, then `apply`: pass → `approved` moves here (the former holder becomes `previous`); fail → the
    version is tagged dsllm.gate=rejected with dsllm.gate.reason, and no alias moves."""
    decision = check(name, version, thresholds, tolerance, alpha=alpha, min_items=min_items, trivial=trivial,
                     bpb_bar=bpb_bar, home=home)
    apply(decision, by=by, home=home)
    return decision
