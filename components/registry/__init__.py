"""The model registry: register base and chat models in MLflow with a model card and lineage, gate them
(thresholds, no regression against `approved`), and move aliases by hand with an audit trail.

    register(kind, model, evaluation=..., expected=...) -> ModelVersion      (register.py)
    gate(name, version, thresholds, tolerance) -> GateDecision             (gate.py; check + apply)
    promote(name, version, by, comment) / rollback(name, by, comment)      (audit.py)
    versions(name) -> rows for `dsllm models ls`                           (listing.py)

No Prefect here: functions return the `AliasMove`s they made and the flows / CLI announce them.
"""

from components.registry.audit import APPROVED, PREVIOUS, AliasMove, promote, rollback
from components.registry.gate import GateDecision, MetricCheck, apply, check, gate, recorded, reject
from components.registry.listing import versions
from components.registry.register import register

__all__ = ["APPROVED", "PREVIOUS", "AliasMove", "GateDecision", "MetricCheck", "apply", "check", "gate", "promote",
           "recorded", "register", "reject", "rollback", "versions"]
