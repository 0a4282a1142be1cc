"""What registration measures for the gate, from the artifacts of the lineage: the per-item evidence of the
evaluation, the better-than-trivial bar (unigram bpb of the validation text), the base model's validation
bpb and the chat replies' language-match and stop rates. Numbers become run metrics:

    trivial.unigram_bpb, trivial.unigram_bpb_<bucket>   the bar (bits per byte)
    train.pretrain.val_bpb                              the base model's validation loss as bits per byte
    chat.language_match, chat.stop_rate, chat.replies   over the chat model's held-out greedy replies
"""

from __future__ import annotations

import json
from pathlib import Path

from components.artifacts import ArtifactStore, parse_uri
from components.registry.baselines import chat_replies, unigram_bpb, val_bpb
from components.registry.evidence import from_evaluation
from components.registry.lineage import Lineage


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


def measurements(kind: str, lineage: Lineage | None, evaluation: str | None, store: ArtifactStore
                 ) -> tuple[dict[str, float], dict | None]:
    """(run metrics, evidence or None without an evaluation) of a version about to be registered."""
    evidence, manifest = None, None
    if evaluation:
        stage, key = parse_uri(evaluation)
        manifest = store.manifest(stage, key)
        evidence = from_evaluation(store.path(stage, key), manifest)
    metrics: dict[str, float] = {}
    if (pack := _pack(lineage, manifest, store)) is not None:
        bars = unigram_bpb(pack)
        metrics |= {("trivial.unigram_bpb" if b == "all" else f"trivial.unigram_bpb_{b}"): v for b, v in bars.items()}
        if lineage is not None and (estimate := val_bpb(lineage.counts("pretrain").get("val_loss"),
                                                        json.loads((pack / "pack.json").read_text()).get("val"))):
            metrics["train.pretrain.val_bpb"] = estimate
        if evidence is not None:
            evidence["trivial"] = {"unigram_bpb": bars}
    if kind == "chat":
        metrics |= {f"chat.{k}": v for k, v in _replies(lineage, store).items()}
    return metrics, evidence
