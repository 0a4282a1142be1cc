"""Where a model came from: its artifact chain, read from the manifests, and the MLflow runs that built it.

Every artifact's `manifest.json` names its inputs by URI, so the chain is walked backwards from the
model: dpo → sft → pretrain → pack + tokenizer → data → corpus. The lineage holds each stage's
artifact key, manifest (counts, config, code version) and, when the flows built it, the MLflow run
(the stage run is tagged `dsllm.artifact_uri`, see flows/tracking.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from components.artifacts import MANIFEST, ArtifactStore, canonical, parse_uri, uri_for
from components.integrity import artifact_near

MODEL_STAGES = ("pretrain", "sft", "dpo")
"""Stages whose artifacts hold a model in hf/."""


@dataclass
class Lineage:
    """The artifact chain behind one model: stage → URI and stage → manifest (when still on disk)."""

    root: str
    uris: dict[str, str] = field(default_factory=dict)
    manifests: dict[str, dict] = field(default_factory=dict)

    def key(self, stage: str) -> str | None:
        return parse_uri(self.uris[stage])[1] if stage in self.uris else None

    def counts(self, stage: str) -> dict:
        return self.manifests.get(stage, {}).get("counts", {})

    def config(self, stage: str) -> dict:
        return self.manifests.get(stage, {}).get("config", {})

    @property
    def missing(self) -> list[str]:
        """Stages named by an input whose artifact is gone (garbage-collected); their inputs are unknown."""
        return sorted(set(self.uris) - set(self.manifests))

    @property
    def code_commit(self) -> str:
        """The git commit of the code that built the model artifact."""
        return self.manifests.get(parse_uri(self.root)[0], {}).get("code_version", "unknown")

    def config_hash(self) -> str:
        """sha256 (16 hex digits) over every stage's result-changing config along the chain."""
        configs = {stage: m.get("config") for stage, m in sorted(self.manifests.items())}
        return hashlib.sha256(json.dumps(canonical(configs), sort_keys=True).encode()).hexdigest()[:16]


def walk(uri: str, store: ArtifactStore | None = None) -> Lineage:
    """The lineage of the artifact at `uri`, following every manifest's inputs (a stage seen twice, e.g. the
    tokenizer via pack and via pretrain, must be the same artifact: the chain is consistent)."""
    store = store or ArtifactStore()
    store.resolve(uri)  # a clear error when the root itself is missing
    lineage, todo = Lineage(root=uri), [uri]
    while todo:
        current = todo.pop()
        stage, key = parse_uri(current)
        if lineage.uris.setdefault(stage, current) != current:
            raise ValueError(f"Inconsistent lineage of {uri}: stage {stage} appears as {lineage.uris[stage]} "
                             f"and {current}")
        if stage in lineage.manifests or not store.is_done(stage, key):
            continue
        lineage.manifests[stage] = store.manifest(stage, key)
        todo += list(lineage.manifests[stage].get("inputs", {}).values())
    return lineage


def expect(lineage: Lineage, expected: dict[str, str]) -> None:
    """Check the chain uses the given artifacts (e.g. the pipeline's data and tokenizer URIs); adds the ones the
    chain cannot name itself (an input was garbage-collected)."""
    for stage, want in expected.items():
        if not want:
            continue
        got = lineage.uris.setdefault(parse_uri(want)[0], want)
        if got != want:
            raise ValueError(f"{lineage.root} was not built from {want} ({stage}): its lineage names {got}. "
                             "Pass the URIs of one pipeline run.")


def resolve_model(model: str | Path, store: ArtifactStore | None = None) -> tuple[Path, Lineage | None]:
    """(HF model directory, lineage) for a dsllm:// URI, an artifact directory or a plain HF directory."""
    store = store or ArtifactStore()
    if isinstance(model, str) and model.startswith("dsllm://"):
        return _hf_dir(store.resolve(model), model), walk(model, store)
    path = Path(model).expanduser().resolve()
    if (artifact := artifact_near(path)) is not None:
        return _hf_dir(artifact, str(artifact)), _artifact_lineage(artifact, store)
    return _hf_dir(path, str(path)), None


def _artifact_lineage(artifact: Path, store: ArtifactStore) -> Lineage:
    """The full lineage when the directory is in `store`; else only its own manifest (another home's artifact)."""
    manifest = json.loads((artifact / MANIFEST).read_text())
    stage, key = manifest["stage"], manifest["key"]
    uri = uri_for(stage, key)
    if store.path(stage, key).resolve() == artifact:
        return walk(uri, store)
    return Lineage(uri, {stage: uri}, {stage: manifest})


def _hf_dir(path: Path, label: str) -> Path:
    for candidate in (path / "hf", path):
        if (candidate / "config.json").is_file():
            return candidate
    raise FileNotFoundError(f"{label} holds no Hugging Face model (no config.json in {path} or {path / 'hf'}); "
                            "pass a pretrain, sft or dpo artifact, or a directory written by save_pretrained")


def stage_runs(client, lineage: Lineage, extra: dict[str, str] | None = None) -> dict[str, str]:
    """stage → id of the MLflow run that built that artifact (flows tag it dsllm.artifact_uri), plus
    `pipeline` → the parent pipeline run of the model's stage run, where these exist."""
    uris = {**lineage.uris, **(extra or {})}
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs: dict[str, str] = {}
    for stage, uri in sorted(uris.items()):
        found = client.search_runs(experiments, f"tags.`dsllm.artifact_uri` = '{uri}'",
                                   order_by=["attributes.start_time ASC"], max_results=50) if experiments else []
        built = [r for r in found if r.data.tags.get("dsllm.cached") == "false"] or found
        if built:
            runs[stage] = built[0].info.run_id
            parent = built[0].data.tags.get("mlflow.parentRunId")
            if parent and uri == lineage.root:
                runs["pipeline"] = parent
    return runs
