"""The gate's verdict in a few words, for the end-of-run summary and anything else that prints one line per model.

    gate_summary("dsllm-chat")          → the newest version's verdict
    gate_summary("dsllm-chat", "3")     → {"model", "version", "verdict", "reason", "approved", "baseline",
                                           "met", "comparison", "line"}

`verdict` is passed | rejected | pending; `approved` the version the `approved` alias (what the demo serves)
points at now; `comparison` one short string per compared metric, e.g. "bpb.bpb 2.88 vs 5.23 (-2.35, better)".
"""

from __future__ import annotations

from components.home import Home
from components.registry import audit
from components.registry.compare import MetricCheck
from components.registry.gate import recorded


def _short(c: MetricCheck) -> str:
    if c.check == "regression":
        if c.effect is None:
            return f"{c.metric}: {c.verdict}"
        return f"{c.metric} {c.value:.4g} vs {c.baseline:.4g} ({c.effect:+.3g}, {c.verdict}, n={c.n})"
    bar = "≤" if c.lower_is_better else "≥"
    shown = "–" if c.value is None else f"{c.value:.4g}"
    return f"{c.metric} {shown} ({c.check} {bar} {c.threshold:.4g}: {'ok' if c.ok else 'NOT met'})"


def _line(s: dict) -> str:
    serving = f"approved: v{s['approved']}" if s["approved"] else "nothing approved"
    return f"{s['model']} v{s['version']} {s['verdict']} ({serving}): {s['reason']}"


def gate_summary(name: str, version: str | int | None = None, *, home: Home | None = None) -> dict:
    """The recorded verdict on `version` (default: the newest) of a registered model, with its reason."""
    mc = audit.client(home)
    if version is None:
        audit.require_model(mc, name)
        found = mc.search_model_versions(f"name = '{name}'")
        if not found:
            raise ValueError(f"{name} has no versions yet.")
        version = max(int(v.version) for v in found)
    mv = audit.model_version(mc, name, version)
    decision = recorded(name, mv.version, home=home)
    tags = mv.tags
    out = {"model": name, "version": str(mv.version), "verdict": tags.get("dsllm.gate", "pending"),
           "reason": "; ".join(decision.reasons) if decision else "not gated yet",
           "approved": audit.alias_version(mc, name, audit.APPROVED),
           "baseline": decision.baseline_version if decision else None,
           "met": [m for m in tags.get("dsllm.gate.met", "").split("; ") if m],
           "comparison": [_short(c) for c in decision.compared.values()] if decision else []}
    out["line"] = _line(out)
    return out
