"""The `registered_model` stage: one MLflow model version downloaded as a Hugging Face directory.

cfg: a `RegisteredModelConfig` (name, version, run_id), resolved from an alias by the caller
(`resolve_version`); the stage is not part of the pipeline, so it has no section of the `PipelineConfig`. A registered version never changes, so the artifact
is keyed by these three and downloaded once; the evaluate stage then takes it like any model
artifact (`dsllm://registered_model/<key>`, the model in `hf/`).

The MLflow transformers flavor stores the weights in `model/` and the tokenizer in
`components/tokenizer/`; both are copied into `hf/` without loading the model (a 67B model is never
materialised just to be saved again). A version stored some other way is loaded with
`mlflow.transformers.load_model(..., return_type="components")` and saved with `save_pretrained`.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from pydantic import Field

from components.artifacts import StageSpec
from components.config import StageConfig
from components.home import Home, mlflow_client, point_mlflow_at


def resolve_version(name: str, alias: str, tracking_uri: str | None = None) -> dict[str, Any] | None:
    """{"name", "version", "run_id", "tags"} of `name@alias`; None when the model or alias does not exist."""
    from mlflow.exceptions import MlflowException

    client = mlflow_client(tracking_uri=tracking_uri)
    try:
        version = client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise
    return {"name": name, "version": str(version.version), "run_id": version.run_id, "tags": dict(version.tags)}


class RegisteredModelConfig(StageConfig):
    """One registered model version (resolve an alias first with `resolve_version(name, alias)`)."""

    name: str = Field(min_length=1)
    """The registered model's name."""
    version: str = Field(min_length=1)
    """Its version number."""
    run_id: str = Field(min_length=1)
    """The MLflow run the version was logged from."""


def work(cfg: RegisteredModelConfig, inputs: dict[str, Path], out_dir: Path) -> dict:
    import mlflow

    uri, tracking = f"models:/{cfg.name}/{cfg.version}", Home.resolve().mlflow_uri
    # the version's own artifact location, from this home's registry (a models:/ URI would go through
    # whatever registry the process was last pointed at)
    source = mlflow_client(tracking_uri=tracking).get_model_version_download_uri(cfg.name, cfg.version)
    hf = out_dir / "hf"
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=tmp, tracking_uri=tracking))
        if (local / "model" / "config.json").is_file():
            shutil.copytree(local / "model", hf)
            if (local / "components" / "tokenizer").is_dir():
                shutil.copytree(local / "components" / "tokenizer", hf, dirs_exist_ok=True)
        else:
            point_mlflow_at(tracking)
            parts = mlflow.transformers.load_model(uri, return_type="components")
            parts["model"].save_pretrained(hf)
            parts["tokenizer"].save_pretrained(hf)
    files = [p for p in hf.rglob("*") if p.is_file()]
    return {"files": len(files), "bytes": sum(p.stat().st_size for p in files)}


STAGE = StageSpec("registered_model", 1, work, config=RegisteredModelConfig)  # keyed by the whole config
