"""The model registry: register base and chat models in MLflow with a model card and lineage, gate them
(thresholds, better than trivial, no significant regression against `approved` on shared items), and move
aliases by hand with an audit trail.

    register(kind, model, evaluation=..., expected=...) -> ModelVersion      (register.py; measure.py, evidence.py)
    gate(name, version, thresholds, tolerance, alpha=...) -> GateDecision  (gate.py; compare.py, stats.py)
    promote(name, version, by, comment) / rollback(name, by, comment)      (audit.py)
    versions(name) -> rows for `dsllm models ls`                           (listing.py)
    gate_summary(name, version=None) -> the verdict and its reason         (summary.py; end-of-run summary)

No Prefect here: functions return the `AliasMove`s they made and the flows / CLI announce them.
"""

from components.registry.audit import APPROVED, PREVIOUS, AliasMove, promote, rollback
from components.registry.gate import GateDecision, MetricCheck, apply, check, gate, recorded, reject
from components.registry.listing import versions
from components.registry.register import register
from components.registry.summary import gate_summary

__all__ = ["APPROVED", "PREVIOUS", "AliasMove", "GateDecision", "MetricCheck", "apply", "check", "gate", "gate_summary", "promote",
           "recorded", "register", "reject", "rollback", "versions"]
