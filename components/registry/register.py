"""Register a model version: the HF model and tokenizer logged with MLflow's transformers flavour, a model
card, lineage tags and the evaluation metrics.

One registration run (in the `dsllm` experiment, nested under the pipeline run when one is open)
holds the metrics and `model_card/` (model_card.md, scorecard.png, training-curve PNGs); the
model version gets the card as its description and the `dsllm.*` tags. Registering the same model
artifact with the same evaluation again returns the existing version instead of a duplicate.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers/huggingface_hub read it: never reach the hub

import importlib.metadata
import json
import shutil
import tempfile
from pathlib import Path
from typing import Literal

from components.artifacts import ArtifactStore, code_version, parse_uri
from components.home import Home, point_mlflow_at
from components.registry import audit, card
from components.registry.evidence import EVIDENCE_FILE
from components.registry.gate import KEY_METRICS_TAG
from components.registry.lineage import MODEL_STAGES, Lineage, expect, resolve_model, stage_runs
from components.registry.measure import Evaluation, measurements
from components.registry.metrics import eval_metrics, key_metrics, train_metrics

Kind = Literal["base", "chat"]
EXPERIMENT = "dsllm"  # the flows' experiment (flows/tracking.py), so registrations sit beside the pipeline runs
DESCRIPTION_LIMIT = 5000  # MLflow's SQL stores cap descriptions at 5000 characters
REQUIREMENTS = ("mlflow", "torch", "transformers", "tokenizers", "sentencepiece", "jinja2", "safetensors")
# report/*.png of these stages go to model_card/ as <stage>_<file>.png
CURVE_STAGES = ("pretrain", "sft", "dpo")


def pip_requirements() -> list[str]:
    """Exact pins of what loading the model needs (explicit, so MLflow does not guess and add torchvision)."""
    pins = []
    for package in REQUIREMENTS:
        try:
            pins.append(f"{package}=={importlib.metadata.version(package).split('+')[0]}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return pins


def _evaluation(uri: str | None, lineage: Lineage | None, store: ArtifactStore) -> Evaluation | None:
    """The evaluate artifact of this model (read once: its manifest serves the metrics, card and evidence)."""
    if uri is None:
        return None
    stage, key = parse_uri(uri)
    if stage != "evaluate":
        raise ValueError(f"{uri} is not an evaluate artifact (dsllm://evaluate/<key>)")
    path, manifest = store.resolve(uri), store.manifest(stage, key)
    scored = manifest.get("inputs", {}).get("model")
    if lineage is not None and scored != lineage.root:
        raise ValueError(f"{uri} evaluated {scored}, not {lineage.root}: pass the evaluation of this model")
    return Evaluation(path, manifest)


def _existing(mc, name: str, root: str | None, evaluation: str | None):
    """The version already registered for this model artifact and evaluation, if any."""
    if root is None:
        return None
    for mv in mc.search_model_versions(f"name = '{name}' and tag.`dsllm.artifact` = '{root}'"):
        if mv.tags.get("dsllm.evaluation", "") == (evaluation or ""):
            return mv
    return None


def lineage_tags(kind: Kind, lineage: Lineage | None, runs: dict[str, str], evaluation: str | None) -> dict[str, str]:
    """The `dsllm.*` tags of a version: artifact keys along the chain, config hash, code commit, run ids."""
    tags = {"dsllm.kind": kind, "dsllm.evaluation": evaluation or "", "dsllm.registered_by_code": code_version()}
    if lineage is None:
        return tags
    tags |= {"dsllm.artifact": lineage.root, "dsllm.config_hash": lineage.config_hash(),
             "dsllm.code_commit": lineage.code_commit}
    tags |= {f"dsllm.lineage.{stage}": lineage.key(stage) or "" for stage in lineage.uris}
    tags |= {f"dsllm.run.{stage}": run for stage, run in runs.items()}
    if evaluation:
        tags["dsllm.lineage.evaluate"] = parse_uri(evaluation)[1]
    return tags


def _card_files(lineage: Lineage | None, report: Path | None, card_text: str, out: Path, store: ArtifactStore) -> Path:
    """model_card/ as logged: the card, the scorecard PNG and every training-curve PNG of the lineage."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "model_card.md").write_text(card_text, encoding="utf-8")
    if report is not None and (report / "scorecard.png").is_file():
        shutil.copy(report / "scorecard.png", out / "scorecard.png")
    for stage in CURVE_STAGES if lineage else ():
        if stage in lineage.manifests:
            for png in sorted((store.path(*parse_uri(lineage.uris[stage])) / "report").glob("*.png")):
                shutil.copy(png, out / f"{stage}_{png.name}")
    return out


def _tokenizer(hf_dir: Path, kind: Kind):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    if kind == "chat" and not tokenizer.chat_template:
        raise ValueError(f"{hf_dir}: a chat model's tokenizer needs a chat template (register it as kind='base', or "
                         "pass the sft/dpo artifact)")
    return tokenizer


def _components(hf_dir: Path, tokenizer) -> dict:
    from transformers import AutoModelForCausalLM

    return {"model": AutoModelForCausalLM.from_pretrained(hf_dir, dtype="auto"), "tokenizer": tokenizer}


def parameters(hf_dir: Path) -> dict[str, int]:
    """Parameter counts from the saved config alone (the model is built on the meta device: no weights read)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from components.model.build import count_parameters

    with torch.device("meta"):
        return count_parameters(AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(hf_dir)))


def _logged_source(mc, root: str | None):
    """A version (of any name) that already holds this model artifact's weights, so they are not copied again."""
    if root is None:
        return None
    found = mc.search_model_versions(f"tag.`dsllm.artifact` = '{root}'", max_results=1)
    return found[0] if found else None


def _experiment(mc, home: Home, parent_run_id: str | None) -> str:
    if parent_run_id:
        return mc.get_run(parent_run_id).info.experiment_id
    found = mc.get_experiment_by_name(EXPERIMENT)
    if found is not None:
        return found.experiment_id
    location = None if home.mlflow_uri.startswith("http") else home.mlflow_artifacts.as_uri()
    return mc.create_experiment(EXPERIMENT, artifact_location=location)


def register(kind: Kind, model: str | Path, *, evaluation: str | None = None, name: str | None = None,
             expected: dict[str, str] | None = None, parent_run_id: str | None = None, home: Home | None = None):
    """Log and register a model; returns the new (or already registered) `ModelVersion`.

    kind: "base" (a pretrain artifact; registered as dsllm-base) or "chat" (a dpo or sft artifact; dsllm-chat).
    model: a dsllm:// artifact URI (its lineage is walked from the manifests), an artifact directory, or a plain
        HF directory (no lineage).
    evaluation: the dsllm://evaluate/<key> artifact that scored this model (metrics, scorecard, key metrics).
    name: the registered model name (default dsllm-base / dsllm-chat).
    expected: stage → URI the lineage must contain (e.g. the pipeline's data and tokenizer artifacts).
    parent_run_id: MLflow run to nest the registration run under (default: the active run, if any).
    The weights are logged once per model artifact: registering it again with another evaluation (or under
    another name) makes a new version of the already logged model.
    """
    if kind not in ("base", "chat"):
        raise ValueError(f"kind must be 'base' or 'chat', not {kind!r}")
    home = home or Home.resolve()
    store, mc, name = ArtifactStore(home), audit.client(home), name or f"dsllm-{kind}"
    hf_dir, lineage = resolve_model(model, store)
    if lineage is not None:
        expect(lineage, expected or {})
    scored = _evaluation(evaluation, lineage, store)
    results = scored.results if scored else {}
    root = lineage.root if lineage else None
    if (found := _existing(mc, name, root, evaluation)) is not None:
        return found
    tokenizer = _tokenizer(hf_dir, kind)  # checks the chat template before anything is written
    runs = stage_runs(mc, lineage, {"evaluate": evaluation} if evaluation else None) if lineage else {}
    text = card.model_card(name, kind, hf_dir, parameters(hf_dir), lineage,
                           scored.scorecard if scored else None, runs, store)
    measured, evidence = measurements(kind, lineage, scored, store)
    metrics = eval_metrics(results) | train_metrics(
        {s: lineage.counts(s) for s in MODEL_STAGES if lineage and s in lineage.manifests}) | measured
    tags = lineage_tags(kind, lineage, runs, evaluation) | {KEY_METRICS_TAG: ",".join(key_metrics(results, metrics))}
    return _log(mc, home, name, tags, metrics, text, parent_run_id,
                lambda tmp: _card_files(lineage, scored.path / "report" if scored else None, text, tmp, store),
                _logged_source(mc, root),
                lambda: _components(hf_dir, tokenizer), root or str(hf_dir), evidence)


def _log(mc, home: Home, name: str, tags: dict, metrics: dict, text: str, parent_run_id: str | None, card_dir,
         logged, load, origin: str, evidence: dict | None = None):
    """The registration run (metrics, model_card/, the weights unless `logged` already holds them) and the new
    version pointing at the logged model, created with its description and tags in one call."""
    import mlflow

    parent_run_id = parent_run_id or (mlflow.active_run().info.run_id if mlflow.active_run() else None)
    point_mlflow_at(home.mlflow_uri)
    run = mc.create_run(_experiment(mc, home, parent_run_id), run_name=f"register-{name}",
                        tags={**tags, "dsllm.stage": "register",
                              **({"mlflow.parentRunId": parent_run_id} if parent_run_id else {})})
    if mlflow.active_run() is None:  # an experiment made active earlier in this process must not refuse our run
        mlflow.set_experiment(experiment_id=run.info.experiment_id)
    with mlflow.start_run(run_id=run.info.run_id, nested=mlflow.active_run() is not None), \
            tempfile.TemporaryDirectory() as tmp:
        if metrics:
            mlflow.log_metrics(metrics)
        mlflow.log_artifacts(str(card_dir(Path(tmp) / "card")), "model_card")
        if evidence is not None:  # what a later gate pairs item by item
            mlflow.log_dict(evidence, EVIDENCE_FILE)
        if logged is None:
            info = _log_model(load(), text)
            source, model_id = info.model_uri, info.model_id
        else:
            source, model_id = logged.source, logged.model_id
            mlflow.set_tag("dsllm.weights_from_run", logged.run_id)
    if not mc.search_registered_models(f"name = '{name}'"):
        mc.create_registered_model(name, description=f"dsllm {tags['dsllm.kind']} models; the demo serves @approved.")
    history = json.dumps([{"time": audit.now(), "action": "registered", "by": "register", "comment": origin}])
    mv = mc.create_model_version(name, source, run_id=run.info.run_id, description=_description(text, run.info.run_id),
                                 model_id=model_id, tags={**{k: str(v)[:audit.TAG_VALUE_LIMIT] for k, v in tags.items()},
                                                          "dsllm.gate": "pending", audit.HISTORY_TAG: history})
    return mc.get_model_version(name, str(mv.version))


def _description(text: str, run_id: str) -> str:
    """The card as the version's description, cut to MLflow's limit with a pointer to the whole card."""
    if len(text) <= DESCRIPTION_LIMIT:
        return text
    return text[:DESCRIPTION_LIMIT - 200] + (f"\n\n… (cut at {DESCRIPTION_LIMIT} characters; the whole card is "
                                             f"model_card/model_card.md on run {run_id})")


def _log_model(components: dict, text: str):
    import mlflow
    from huggingface_hub import ModelCard

    return mlflow.transformers.log_model(
        transformers_model=components, name="model", task="text-generation",
        pip_requirements=pip_requirements(), model_card=ModelCard(card.front_matter(text)))
