"""Load the model to evaluate: an HF causal LM directory, a `dsllm://` artifact or `models:/NAME@ALIAS`.

An artifact directory that holds its model in `hf/` (the project's pretrain/sft/dpo outputs) is
read from there. The fingerprint that keys the result cache is content-based for directories
(config, tokenizer files, and each weight file's size with a hash of its first and last MiB, so
a 14 GB checkpoint is not read whole) and the resolved registry version for MLflow URIs.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from components.evaluate.lm import HFLM
from components.home import Home, mlflow_client, point_mlflow_at

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")


def resolve_dir(ref: str | Path, home: Home | None = None) -> Path:
    """The HF model directory behind a path or `dsllm://` URI (its `hf/` subfolder when present)."""
    text = str(ref)
    if text.startswith("dsllm://"):
        from components.artifacts import ArtifactStore

        path = ArtifactStore(home).resolve(text)
    else:
        path = Path(text).expanduser()
    if (path / "hf").is_dir():
        path = path / "hf"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"No Hugging Face model at {path} (config.json missing). Give a directory written by "
                                "save_pretrained, a dsllm:// model artifact, or models:/NAME@ALIAS.")
    return path.resolve()


def dir_fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode())
        if file.suffix in WEIGHT_SUFFIXES:
            size = file.stat().st_size
            with file.open("rb") as fh:
                head = fh.read(1 << 20)
                fh.seek(max(0, size - (1 << 20)))
                digest.update(f"{size}".encode() + head + fh.read())
        else:
            digest.update(file.read_bytes())
    return "dir:" + digest.hexdigest()[:32]


def mlflow_fingerprint(uri: str, home: Home | None = None) -> str:
    name, _, rest = uri.removeprefix("models:/").partition("/")
    client = mlflow_client(home)
    if "@" in name:
        name, alias = name.split("@", 1)
        version = client.get_model_version_by_alias(name, alias)
    else:
        version = client.get_model_version(name, rest)
    return f"mlflow:{name}/{version.version}/{version.run_id}"


def _dtype(name: str, device: str) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device == "cuda" else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def load_model(ref: str | Path, *, chat: bool | None = None, batch_size: int = 8, max_length: int | None = None,
               dtype: str = "auto", home: Home | None = None) -> HFLM:
    """An `HFLM` for `ref`; chat=None decides by whether the tokenizer has a chat template."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    text = str(ref)
    if text.startswith("models:/"):
        import mlflow

        home = home or Home.resolve()
        point_mlflow_at(home.mlflow_uri)
        parts = mlflow.transformers.load_model(text, return_type="components")
        model, tokenizer, fingerprint = parts["model"], parts["tokenizer"], mlflow_fingerprint(text, home)
        model = model.to(device=device, dtype=_dtype(dtype, device))
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = resolve_dir(text, home)
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=_dtype(dtype, device)).to(device)
        fingerprint = dir_fingerprint(path)
    fingerprint += f":{dtype}"
    return HFLM(model, tokenizer, fingerprint, chat=chat, batch_size=batch_size, max_length=max_length)
