"""What the registry holds, as plain rows: every version of the dsllm models with its aliases, gate decision
(verdict, reason, the approved version it was compared with, the thresholds it met), approver and key
metrics (for `dsllm models ls` and its `--json`, and anything else that shows the registry)."""

from __future__ import annotations

import time

from components.home import Home
from components.registry import audit
from components.registry.gate import key_metrics, run_metrics


def versions(name: str | None = None, *, home: Home | None = None) -> list[dict]:
    """One row per model version (newest first per model), optionally of one registered model only."""
    mc = audit.client(home)
    if name is not None:
        audit.require_model(mc, name)
    models = [mc.get_registered_model(name)] if name else mc.search_registered_models(order_by=["name ASC"])
    rows = []
    for model in models:
        aliases: dict[str, list[str]] = {}
        for alias, version in (model.aliases or {}).items():
            aliases.setdefault(str(version), []).append(alias)
        found = mc.search_model_versions(f"name = '{model.name}'")
        for mv in sorted(found, key=lambda v: int(v.version), reverse=True):
            rows.append(_row(mc, mv, sorted(aliases.get(str(mv.version), []))))
    return rows


def _row(mc, mv, aliases: list[str]) -> dict:
    metrics = run_metrics(mc, mv)
    tags = mv.tags
    return {"name": mv.name, "version": str(mv.version), "aliases": aliases, "gate": tags.get("dsllm.gate", ""),
            "reason": tags.get("dsllm.gate.reason", ""), "approver": tags.get("dsllm.approver", ""),
            "approved_at": tags.get("dsllm.approved_at", ""), "artifact": tags.get("dsllm.artifact", mv.source),
            "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(mv.creation_timestamp / 1000)),
            "metrics": {k: metrics[k] for k in key_metrics(mv) if k in metrics}, "run_id": mv.run_id,
            "baseline": tags.get("dsllm.gate.baseline", ""),
            "met": [m for m in tags.get("dsllm.gate.met", "").split("; ") if m]}
