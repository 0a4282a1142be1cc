"""The `register_and_gate` flow: register the base and chat models in MLflow, gate them, optionally ask a person
in the Prefect UI, and announce every alias move as the Prefect event `dsllm.model.alias.moved` (the
deploy_demo deployment is triggered by it). The registry logic lives in components/registry.
"""

from __future__ import annotations

from typing import Any

import mlflow
from prefect import flow, get_run_logger, pause_flow_run, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE
from prefect.events import emit_event
from prefect.input import RunInput
from pydantic import Field

from components import registry
from components.config import RegistryConfig
from components.home import Home
from components.registry import AliasMove, GateDecision
from components.registry.gate import ALREADY_APPROVED

EVENT = "dsllm.model.alias.moved"
APPROVAL_POLL_S = 5
"""How often a paused flow checks whether it was resumed (Prefect's default is 10 s)."""


class Approval(RunInput):
    """The form a person fills in to approve or reject a chat model that passed the automatic checks."""

    approve: bool = Field(default=False, description="Approve: the demo will serve this version")
    comment: str = Field(default="", description="Why (recorded on the model version)")
    approver: str = Field(default="", description="Your name (recorded as dsllm.approver)")


def alias_resource(move: AliasMove) -> dict[str, str]:
    """The event's resource, as the contract with the deploy_demo trigger fixes it."""
    return {"prefect.resource.id": f"mlflow.model.{move.name}", "dsllm.model": move.name, "dsllm.alias": move.alias,
            "dsllm.version": str(move.version)}


def announce_alias_move(move: AliasMove):
    """Emit `dsllm.model.alias.moved` for one alias move (returns the Event, or None when events are off)."""
    return emit_event(EVENT, resource=alias_resource(move),
                      payload={"from_version": move.from_version, "by": move.by, "action": move.action,
                               "comment": move.comment, "time": move.time})


def mlflow_link(name: str, version: str, run_id: str | None) -> str:
    """A link to the version in the MLflow UI when a server tracks, else where to find it locally."""
    uri = Home.resolve().mlflow_uri
    if uri.startswith("http"):
        return f"{uri.rstrip('/')}/#/models/{name}/versions/{version}"
    return f"{name} v{version} (run {run_id}) in {uri}; browse with `mlflow ui --backend-store-uri {uri}`"


@task(cache_policy=NONE)
def register_model(kind: str, model_uri: str, evaluation: str | None, expected: dict[str, str], name: str,
                   parent_run_id: str | None) -> dict[str, Any]:
    mv = registry.register(kind, model_uri, evaluation=evaluation, name=name, expected=expected,
                           parent_run_id=parent_run_id)
    return {"name": name, "version": str(mv.version), "run_id": mv.run_id, "description": mv.description}


@task(cache_policy=NONE)
def check_model(name: str, version: str, thresholds: dict[str, float], cfg: RegistryConfig) -> GateDecision:
    return registry.check(name, version, thresholds, cfg.tolerance, alpha=cfg.alpha, min_items=cfg.min_shared_items,
                          trivial=cfg.better_than_trivial, bpb_bar=cfg.bpb_bar_for(name))


@task(cache_policy=NONE)
def record_decision(decision: GateDecision, approval: Approval | None) -> GateDecision:
    """Apply the gate's verdict, or the person's: approve moves `approved`, reject tags the version."""
    if approval is None:
        registry.apply(decision)
        return decision
    who = approval.approver.strip() or "prefect-ui"
    if approval.approve:
        registry.apply(decision, by=who, comment=approval.comment)
    else:
        decision.passed = False
        decision.reasons = [f"rejected by {who}: {approval.comment or 'no comment'}"]
        registry.reject(decision, decision.reasons, by=who, comment=approval.comment)
    return decision


def ask_a_person(decision: GateDecision, registered: dict[str, Any], cfg: RegistryConfig) -> Approval:
    """Pause until someone submits the approval form (its description shows the gate and the scorecard)."""
    logger = get_run_logger()
    text = (f"## Approve {decision.name} v{decision.version}?\n\n{decision.markdown()}\n"
            f"{mlflow_link(decision.name, decision.version, registered['run_id'])}\n\n{registered['description']}")
    logger.info("waiting up to %d s for a person to approve %s v%s in the Prefect UI", cfg.approval_timeout_s,
                decision.name, decision.version)
    form = Approval.with_initial_data(description=text, approve=False, comment="", approver="")
    return pause_flow_run(wait_for_input=form, timeout=cfg.approval_timeout_s, poll_interval=APPROVAL_POLL_S)


def gate_model(registered: dict[str, Any], thresholds: dict[str, float], cfg: RegistryConfig, human: bool
               ) -> GateDecision:
    """Check, ask a person when required (only for a version that passed), record, announce the moves. A version
    gated before (a re-run of a finished pipeline) keeps its decision: re-gating it could move `approved` back
    to it; `dsllm promote` is the way to choose it again."""
    logger = get_run_logger()
    name, version = registered["name"], registered["version"]
    if (earlier := registry.recorded(name, version)) is not None:
        logger.info("%s v%s was gated before (%s: %s); aliases stay as they are", name, version,
                    "passed" if earlier.passed else "rejected", "; ".join(earlier.reasons))
        return earlier
    decision = check_model(name, version, thresholds, cfg)
    asking = human and decision.passed and decision.reasons != [ALREADY_APPROVED]
    decision = record_decision(decision, ask_a_person(decision, registered, cfg) if asking else None)
    for move in decision.moves:
        announce_alias_move(move)
        logger.info("alias %s of %s → v%s (was %s); event %s emitted", move.alias, move.name, move.version,
                    move.from_version or "unset", EVENT)
    logger.info("%s\n%s", decision.markdown(), mlflow_link(name, version, registered["run_id"]))
    create_markdown_artifact(markdown=decision.markdown(), key=f"gate-{name}".lower().replace(".", "-").replace("_", "-"),
                             description=f"Gate decision for {name} v{version}")
    return decision


@flow(name="register_and_gate", log_prints=True)
def register_and_gate(pretrain_uri: str, dpo_uri: str, evaluate_uri: str, data_uri: str | None = None,
                      tokenizer_uri: str | None = None, cfg: RegistryConfig = RegistryConfig()) -> dict[str, dict]:
    """Register the base model (pretrain artifact) and the chat model (dpo artifact, scored by the evaluate
    artifact), gate both, and move their `approved` aliases; with cfg.require_human_approval the chat model
    waits for a person's approval in the Prefect UI. Re-running it on the same artifacts registers and moves
    nothing new. Returns, per model name: version, passed, reasons, approved (the alias holder now), run_id and
    summary (components.registry.summary.gate_summary: the verdict, its reason and the comparison in short)."""
    expected = {"data": data_uri, "tokenizer": tokenizer_uri}
    parent = mlflow.active_run().info.run_id if mlflow.active_run() else None
    base = register_model("base", pretrain_uri, None, expected, cfg.base_model, parent)
    chat = register_model("chat", dpo_uri, evaluate_uri, expected, cfg.chat_model, parent)
    decisions = {cfg.base_model: gate_model(base, cfg.base_thresholds, cfg, human=False),
                 cfg.chat_model: gate_model(chat, cfg.thresholds, cfg, human=cfg.require_human_approval)}
    mc = registry.audit.client()
    return {name: {"version": d.version, "passed": d.passed, "reasons": d.reasons,
                   "approved": registry.audit.alias_version(mc, name, registry.APPROVED),
                   "run_id": (base if name == cfg.base_model else chat)["run_id"],
                   "summary": registry.gate_summary(name, d.version)} for name, d in decisions.items()}
