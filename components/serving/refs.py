"""What the demo serves: `models:/NAME@ALIAS`, `models:/NAME/VERSION`, a `dsllm://` model artifact or an HF dir.

`resolve(ref)` says which concrete model a reference points at *now* (an alias is read from the
registry on every call); `load(target)` loads exactly that model. An alias is never loaded by
name: `models:/NAME@ALIAS` is resolved to a version first and `models:/NAME/<that version>` is
loaded, so the label the demo shows and the weights it runs can never disagree, even when the
alias moves while a load is under way.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.home import Home, mlflow_client, point_mlflow_at
from components.serving.card import ModelCard, dir_card, registry_card

DEFAULT_REF = "models:/dsllm-chat@approved"
_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")


@dataclass(frozen=True)
class Target:
    """One concrete model a reference resolved to."""

    ref: str
    kind: str  # "registry" | "dir"
    ident: str  # what identifies the weights: "registry:NAME/VERSION" or "dir:PATH:FINGERPRINT"
    name: str | None = None
    alias: str | None = None
    version: str | None = None
    run_id: str | None = None
    path: str | None = None

    @property
    def label(self) -> str:
        """What a person reads: `dsllm-chat v3` or the directory."""
        return f"{self.name} v{self.version}" if self.kind == "registry" else str(self.path)

    @property
    def load_uri(self) -> str:
        return f"models:/{self.name}/{self.version}" if self.kind == "registry" else str(self.path)


@dataclass
class Served:
    """A loaded model: what generation uses. Held by reference, so a swap never pulls it from a reply."""

    target: Target
    model: Any
    tokenizer: Any
    context: int
    card: ModelCard
    loaded_at: float = field(default_factory=time.time)
    engine: Any = None  # its batching Engine, made by the slot that serves it


def parse(ref: str) -> dict[str, str | None]:
    """{"name", "alias", "version"} of a models:/ URI; a clear ValueError for a malformed one."""
    match = _MODELS_URI.match(ref.strip())
    if not match:
        raise ValueError(f"{ref!r} is not a registry model URI: use models:/NAME@ALIAS (e.g. {DEFAULT_REF}) "
                         "or models:/NAME/VERSION (e.g. models:/dsllm-chat/3).")
    return match.groupdict()


def registry_client(home: Home | None = None):
    """An MlflowClient on the home's tracking store ($MLFLOW_TRACKING_URI when set)."""
    return mlflow_client(home)


def resolve(ref: str, client=None, home: Home | None = None) -> Target:
    """The concrete model `ref` points at now."""
    ref = str(ref).strip()
    if ref.startswith("models:/"):
        return _resolve_registry(ref, client or registry_client(home))
    return _resolve_dir(ref, home)


def _resolve_registry(ref: str, client) -> Target:
    from mlflow.exceptions import MlflowException

    parts = parse(ref)
    name, alias = parts["name"], parts["alias"]
    try:
        mv = (client.get_model_version_by_alias(name, alias) if alias
              else client.get_model_version(name, parts["version"]))
    except MlflowException as exc:
        what = f"alias {alias!r}" if alias else f"version {parts['version']}"
        raise LookupError(f"The registry has no {what} of model {name!r} ({exc.message.splitlines()[0]}). "
                          f"Register and approve a model first (the pipeline's register and gate steps, or "
                          f"`dsllm promote`), or serve another reference.") from None
    return Target(ref, "registry", f"registry:{name}/{mv.version}", name=name, alias=alias,
                  version=str(mv.version), run_id=mv.run_id)


def _resolve_dir(ref: str, home: Home | None) -> Target:
    from components.evaluate.model import dir_fingerprint, resolve_dir

    path = resolve_dir(ref, home)
    return Target(ref, "dir", f"dir:{path}:{dir_fingerprint(path)}", path=str(path))


def load(target: Target, client=None, home: Home | None = None, dtype: str = "auto", card: bool = True,
         device: str | None = None) -> Served:
    """Load the model and tokenizer of `target` (evaluation mode) on `device` (default: the GPU if any) and its
    model card (`card=False`: none, for the engine process, which only generates)."""
    import torch

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    home = home or Home.resolve()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if target.kind == "registry":
        model, tok = _load_registry(target, home)
        card = registry_card(client or registry_client(home), target, home.cache / "demo") if card else None
    else:
        model, tok = _load_dir(Path(str(target.path)))
        card = dir_card(Path(str(target.path)), home.cache / "demo") if card else None
    model = model.to(device=device, dtype=_dtype(dtype, device)).eval()
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return Served(target, model, tok, context_length(model, tok), card)


def _load_registry(target: Target, home: Home):
    import mlflow

    point_mlflow_at(home.mlflow_uri)
    parts = mlflow.transformers.load_model(target.load_uri, return_type="components")
    return parts["model"], parts["tokenizer"]


def _load_dir(path: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def _dtype(name: str, device: str):
    import torch

    if name == "auto":
        from components.pretrain.runtime import native_bf16

        return torch.bfloat16 if native_bf16(torch.device(device)) else torch.float32
    choices = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name not in choices:
        raise ValueError(f"dtype {name!r} is not one of auto, {', '.join(choices)}.")
    return choices[name]


def context_length(model, tok) -> int:
    """How many tokens (prompt and reply together) the model reads: its position limit, or the
    tokenizer's when that is smaller and set (tokenizers without one report a huge sentinel)."""
    limit = int(getattr(model.config, "max_position_embeddings", 0) or 0) or 2048
    tok_limit = int(getattr(tok, "model_max_length", 0) or 0)
    return min(limit, tok_limit) if 0 < tok_limit < 10**8 else limit
