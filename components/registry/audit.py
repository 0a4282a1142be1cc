"""Alias moves with an audit trail: promote, rollback and rejection, as MLflow model-version tags.

`approved` is what the demo serves; `previous` is the former `approved`, kept for rollback. Every
decision is recorded on the version it concerns: who (`dsllm.approver`), when, the comment, and
an entry in `dsllm.history` (a JSON list). Functions return the `AliasMove`s they made, so the
caller (a flow or the CLI) can announce each one; components never talk to Prefect.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from components.home import Home, mlflow_client
from components.names import did_you_mean

APPROVED, PREVIOUS = "approved", "previous"
TAG_VALUE_LIMIT = 5000  # MLflow's SQL stores cap tag values at 5000 characters
HISTORY_TAG = "dsllm.history"


@dataclass(frozen=True)
class AliasMove:
    """One alias now pointing at `version` (formerly at `from_version`, None when it was unset)."""

    name: str
    alias: str
    version: str
    from_version: str | None
    by: str
    action: str
    comment: str = ""
    time: str = ""


def client(home: Home | None = None) -> MlflowClient:
    """A client on the home's tracking store ($MLFLOW_TRACKING_URI when set); the registry uses the same URI."""
    return mlflow_client(home)


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def require_model(mc: MlflowClient, name: str) -> None:
    """A ValueError naming the registered models (with a did-you-mean) when `name` is not one of them."""
    try:
        mc.get_registered_model(name)
    except MlflowException:
        known = [m.name for m in mc.search_registered_models()]
        raise ValueError(f"No registered model {name!r}.{did_you_mean(name, known)} Known models: "
                         f"{', '.join(known) or 'none (register one first)'}.") from None


def model_version(mc: MlflowClient, name: str, version: str | int):
    """The version, or a ValueError naming the versions (or models) that exist."""
    require_model(mc, name)
    try:
        return mc.get_model_version(name, str(version))
    except MlflowException:
        known = sorted((str(v.version) for v in mc.search_model_versions(f"name = '{name}'")), key=int)
        raise ValueError(f"{name} has no version {str(version)!r}; its versions are {', '.join(known) or 'none'}.") from None


def alias_version(mc: MlflowClient, name: str, alias: str) -> str | None:
    """The version an alias points at, or None when the alias is not set."""
    try:
        return str(mc.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def history(mv) -> list[dict]:
    try:
        return json.loads(mv.tags.get(HISTORY_TAG, "[]"))
    except json.JSONDecodeError:
        return []


def record(mc: MlflowClient, name: str, version: str, entry: dict, tags: dict[str, str] | None = None) -> None:
    """Append `entry` to the version's history (oldest entries give way to the tag size limit) and set tags."""
    entries = [*history(mc.get_model_version(name, version)), entry]
    text = json.dumps(entries, ensure_ascii=False)
    while len(text) > TAG_VALUE_LIMIT and len(entries) > 1:
        entries = entries[1:]
        text = json.dumps(entries, ensure_ascii=False)
    for key, value in {**(tags or {}), HISTORY_TAG: text}.items():
        mc.set_model_version_tag(name, version, key, str(value)[:TAG_VALUE_LIMIT])


def _move(mc: MlflowClient, name: str, alias: str, version: str, by: str, action: str, comment: str,
          stamp: str) -> AliasMove:
    before = alias_version(mc, name, alias)
    mc.set_registered_model_alias(name, alias, str(version))
    return AliasMove(name, alias, str(version), before, by, action, comment, stamp)


def approve(mc: MlflowClient, name: str, version: str, by: str, comment: str, action: str) -> list[AliasMove]:
    """Move `approved` to `version` and the former holder to `previous`; record who, when and why."""
    stamp, holder = now(), alias_version(mc, name, APPROVED)
    if holder == version:
        return []
    moves = [_move(mc, name, PREVIOUS, holder, by, action, comment, stamp)] if holder else []
    moves.append(_move(mc, name, APPROVED, version, by, action, comment, stamp))
    record(mc, name, version, {"time": stamp, "action": action, "by": by, "comment": comment, "alias": APPROVED,
                               "replaced": holder},
           {"dsllm.approver": by, "dsllm.approved_at": stamp, "dsllm.approval_comment": comment})
    if holder:
        record(mc, name, holder, {"time": stamp, "action": f"superseded ({action})", "by": by, "alias": PREVIOUS,
                                  "by_version": version})
    return moves


def promote(name: str, version: str | int, by: str, comment: str = "", *, home: Home | None = None) -> list[AliasMove]:
    """Make `version` the approved one by hand (also over a gate rejection, which stays recorded)."""
    mc = client(home)
    this = str(model_version(mc, name, version).version)
    if alias_version(mc, name, APPROVED) == this:
        raise ValueError(f"{name} version {this} is already the approved one; nothing to promote.")
    return approve(mc, name, this, by, comment, "promote")


def rollback(name: str, by: str, comment: str = "", *, home: Home | None = None) -> list[AliasMove]:
    """approved ← previous. The rolled-back version loses `approved` for good: `previous` is removed, so a
    second rollback is an error rather than a return to the version just rolled back."""
    mc = client(home)
    require_model(mc, name)
    target, bad = alias_version(mc, name, PREVIOUS), alias_version(mc, name, APPROVED)
    if target is None:
        raise ValueError(f"{name} has no '{PREVIOUS}' version to roll back to (approved: {bad or 'none'}). "
                         f"Use `dsllm promote {name} VERSION` to choose a version.")
    stamp = now()
    move = _move(mc, name, APPROVED, target, by, "rollback", comment, stamp)
    mc.delete_registered_model_alias(name, PREVIOUS)
    record(mc, name, target, {"time": stamp, "action": "rollback", "by": by, "comment": comment, "alias": APPROVED,
                              "replaced": bad}, {"dsllm.approver": by, "dsllm.approved_at": stamp,
                                                 "dsllm.approval_comment": comment})
    if bad:
        record(mc, name, bad, {"time": stamp, "action": "rolled back", "by": by, "comment": comment},
               {"dsllm.rolled_back": stamp})
    return [move]
