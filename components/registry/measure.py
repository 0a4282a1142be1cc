"""What registration measures for the gate, from the artifacts of the lineage: the per-item evidence of the
evaluation, the better-than-trivial bar (unigram bpb of the validation text), the base model's validation
bpb and the chat replies' language-match and stop rates. Numbers become run metrics:

    trivial.unigram_bpb, trivial.unigram_bpb_<bucket>   the bar (bits per byte)
    train.pretrain.val_bpb                              the base model's validation loss as bits per byte
    chat.language_match, chat.stop_rate, chat.replies   over the chat model's held-out greedy replies
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from components.artifacts import ArtifactStore, parse_uri
from components.registry.baselines import chat_replies, unigram_bpb, val_bpb
from components.registry.evidence import from_evaluation
from components.registry.lineage import Lineage


@dataclass(frozen=True)
class Evaluation:
    """The evaluate artifact that scored the model being registered, read once: its directory and manifest."""

    path: Path
    manifest: dict

    @property
    def results(self) -> dict:
        """{task: {metric: value}}"""
        return self.manifest.get("counts", {})

    @property
    def scorecard(self) -> str | None:
        found = self.path / "report" / "scorecard.md"
        return found.read_text() if found.is_file() else None


def _artifact(store: ArtifactStore, uri: str | None) -> Path | None:
    if not uri:
        return None
    path = store.path(*parse_uri(uri))
    return path if path.is_dir() else None


def _pack(lineage: Lineage | None, eval_manifest: dict | None, store: ArtifactStore) -> Path | None:
    uri = (lineage.uris.get("pack") if lineage else None) or (eval_manifest or {}).get("inputs", {}).get("pack")
    path = _artifact(store, uri)
    return path if path is not None and (path / "pack.json").is_file() else None


def _replies(lineage: Lineage | None, store: ArtifactStore) -> dict[str, float]:
    for stage in ("dpo", "sft"):  # the chat model is the last alignment stage of its lineage
        path = _artifact(store, lineage.uris.get(stage)) if lineage else None
        if path is not None:
            return chat_replies(path)
    return {}


def measurements(kind: str, lineage: Lineage | None, evaluation: Evaluation | None, store: ArtifactStore
                 ) -> tuple[dict[str, float], dict | None]:
    """(run metrics, evidence or None without an evaluation) of a version about to be registered."""
    evidence = from_evaluation(evaluation.path, evaluation.manifest) if evaluation else None
    metrics: dict[str, float] = {}
    if (pack := _pack(lineage, evaluation.manifest if evaluation else None, store)) is not None:
        meta = json.loads((pack / "pack.json").read_text())
        bars = unigram_bpb(pack, meta)
        metrics |= {("trivial.unigram_bpb" if b == "all" else f"trivial.unigram_bpb_{b}"): v for b, v in bars.items()}
        if lineage is not None and (estimate := val_bpb(lineage.counts("pretrain").get("val_loss"), meta.get("val"))):
            metrics["train.pretrain.val_bpb"] = estimate
        if evidence is not None:
            evidence["trivial"] = {"unigram_bpb": bars}
    if kind == "chat":
        metrics |= {f"chat.{k}": v for k, v in _replies(lineage, store).items()}
    return metrics, evidence
