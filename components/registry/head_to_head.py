"""The approved model's head-to-head result in the registry: its model card (the version's description) gets
the pairwise section of the nightly evaluation, and a `dsllm.head_to_head` tag the numbers (win rate and
interval, wins/ties/losses, the opponent), so the card and the registry list show them."""

from __future__ import annotations

import json

from components.home import mlflow_client
from components.registry.card import with_head_to_head

TAG = "dsllm.head_to_head"


def record(name: str, version: str, section: list[str], metrics: dict, opponent: str,
           tracking_uri: str | None = None) -> str:
    """Write the section into version `version`'s card and the summary tag; the new card."""
    client = mlflow_client(tracking_uri=tracking_uri)
    card = with_head_to_head(client.get_model_version(name, version).description or "", section)
    client.update_model_version(name, version, description=card)
    summary = {k: metrics.get(k) for k in ("win_rate", "win_rate_low", "win_rate_high", "wins", "ties", "losses", "n")}
    client.set_model_version_tag(name, version, TAG, json.dumps({"opponent": opponent, **summary}))
    return card
