"""The model card the demo shows next to the chat: read from the registry, never written.

For a registry version: its description (the model card markdown the register step wrote), its
aliases, its `dsllm.*` tags (lineage, gate decision, approver), the eval metrics of the run that
logged it and the PNGs that run keeps under `model_card/` (scorecard, training curves), downloaded
once into the home's cache. For a plain HF directory: the architecture from config.json and the
PNGs of the artifact's report/ folder when the directory is a dsllm artifact's hf/.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CARD_DIR = "model_card"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".svg")
_ARCH_KEYS = ("model_type", "num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads",
              "intermediate_size", "vocab_size", "max_position_embeddings")


@dataclass
class ModelCard:
    title: str
    facts: dict[str, str] = field(default_factory=dict)
    description: str = ""
    lineage: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    images: list[Path] = field(default_factory=list)
    error: str = ""  # what could not be read (the model still serves)


def registry_card(client, target, cache_root: Path) -> ModelCard:
    """The card of a registered version; a registry hiccup leaves a card that says so, never a failed load."""
    card = ModelCard(f"{target.name} v{target.version}")
    try:
        mv = client.get_model_version(target.name, target.version)
    except Exception as exc:  # the weights are loaded; a card is not worth refusing them for
        card.error = f"could not read the registry entry: {exc}"
        return card
    card.facts = {"model": str(target.name), "version": str(mv.version), "aliases": ", ".join(mv.aliases) or "-",
                  "served as": target.ref, "registered": _when(mv.creation_timestamp),
                  "run": mv.run_id or "-", "status": str(mv.status)}
    card.description = mv.description or ""
    card.lineage = {k: str(v) for k, v in sorted(mv.tags.items()) if k.startswith("dsllm.")}
    if mv.run_id:
        _add_run(card, client, mv.run_id, cache_root / str(target.name) / str(mv.version))
    return card


def _add_run(card: ModelCard, client, run_id: str, cache: Path) -> None:
    try:
        card.metrics = dict(sorted(client.get_run(run_id).data.metrics.items()))
        names = [f.path for f in client.list_artifacts(run_id, CARD_DIR) if not f.is_dir]
        if any(n.lower().endswith(IMAGE_SUFFIXES) for n in names):
            local = cache / CARD_DIR
            if not local.is_dir():
                cache.mkdir(parents=True, exist_ok=True)
                client.download_artifacts(run_id, CARD_DIR, str(cache))
            card.images = sorted(p for p in local.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    except Exception as exc:
        card.error = f"could not read run {run_id}: {exc}"


def dir_card(path: Path, cache_root: Path) -> ModelCard:
    """A card for an unregistered HF directory: architecture and, for a dsllm artifact, its report plots
    (copied into the cache, the one folder the web app serves files from)."""
    card = ModelCard(path.name if path.name != "hf" else path.parent.name, facts={"directory": str(path)})
    try:
        config = json.loads((path / "config.json").read_text())
        card.facts |= {k: str(config[k]) for k in _ARCH_KEYS if k in config}
    except (OSError, ValueError) as exc:
        card.error = f"could not read config.json: {exc}"
    report = path.parent / "report" if path.name == "hf" else path / "report"
    if report.is_dir():
        local = cache_root / "dirs" / hashlib.sha1(str(report).encode()).hexdigest()[:12]
        local.mkdir(parents=True, exist_ok=True)
        card.images = [Path(shutil.copy2(p, local / p.name)) for p in sorted(report.iterdir())
                       if p.suffix.lower() in IMAGE_SUFFIXES]
    readme = path / "README.md"
    card.description = readme.read_text(encoding="utf-8", errors="replace") if readme.is_file() else ""
    return card


def render(card: ModelCard) -> str:
    """The card as markdown: facts, the description, lineage and metrics tables."""
    parts = [f"## {card.title}", _table(card.facts, "field", "value")]
    if card.error:
        parts.append(f"> **Note:** {card.error}")
    if card.description:
        parts.append(card.description)
    if card.lineage:
        parts += ["### Lineage", _table(card.lineage, "tag", "value")]
    if card.metrics:
        parts += ["### Metrics of the registering run", _table({k: f"{v:.4g}" for k, v in card.metrics.items()},
                                                              "metric", "value")]
    return "\n\n".join(p for p in parts if p)


def _table(rows: dict[str, Any], left: str, right: str) -> str:
    if not rows:
        return ""
    lines = [f"| {left} | {right} |", "|---|---|"]
    lines += [f"| {k} | {_cell(v)} |" for k, v in rows.items()]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _when(millis: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(millis / 1000)) if millis else "-"
