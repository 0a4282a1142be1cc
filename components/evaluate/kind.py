"""What kind of model is being evaluated, base or chat, from where it came rather than its tokenizer.

Every tokenizer the project exports carries a chat template, so "has a chat template" says nothing
about a pretrained base model. The kind follows the model's origin instead:
- a stage artifact (`dsllm://<stage>/<key>`, its directory or its `hf/` subfolder, read from
  `manifest.json`): `pretrain` -> base; `sft`, `dpo` -> chat; `registered_model` -> by its name;
- a registered model (`models:/NAME@ALIAS` or a `registered_model` artifact): the version's
  `dsllm.kind` tag when the registry is at hand, else the name (`dsllm-base` / `dsllm-chat`, or a
  name ending in -base / -chat).
Anything else (a directory from elsewhere) is unknown: the tokenizer decides, as before.
"""

from __future__ import annotations

from pathlib import Path

from components.config import RegistryConfig
from components.integrity import ArtifactDamaged, artifact_near, read_manifest

BASE_STAGES, CHAT_STAGES = {"pretrain"}, {"sft", "dpo"}


def kind_of_name(name: str) -> str | None:
    defaults = RegistryConfig()
    if name == defaults.base_model or name.endswith("-base"):
        return "base"
    if name == defaults.chat_model or name.endswith("-chat"):
        return "chat"
    return None


def _from_manifest(manifest: dict) -> str | None:
    stage = manifest.get("stage")
    if stage in BASE_STAGES:
        return "base"
    if stage in CHAT_STAGES:
        return "chat"
    if stage == "registered_model":
        return kind_of_name(str(manifest.get("config", {}).get("name", "")))
    return None


def _manifest_near(path: Path) -> dict | None:
    """The manifest of the artifact `path` is or sits in (its hf/ folder); None when there is none or it is
    unreadable (the kind is then unknown, not an error)."""
    folder = artifact_near(path.resolve())
    try:
        return read_manifest(folder) if folder else None
    except ArtifactDamaged:
        return None


def _registry_kind(uri: str, home=None) -> str | None:
    name, _, rest = uri.removeprefix("models:/").partition("/")
    try:
        from components.home import mlflow_client

        client = mlflow_client(home)
        if "@" in name:
            version = client.get_model_version_by_alias(*name.split("@", 1))
        else:
            version = client.get_model_version(name, rest)
        tagged = version.tags.get("dsllm.kind")
    except Exception:  # noqa: BLE001 - no registry at hand: the name still tells
        tagged = None
    return tagged if tagged in ("base", "chat") else kind_of_name(name.split("@")[0])


def model_kind(ref, home=None) -> str | None:
    """"base", "chat" or None (unknown) for a model reference as `load_model` takes it."""
    text = str(ref)
    if text.startswith("models:/"):
        return _registry_kind(text, home)
    if text.startswith("dsllm://"):
        from components.artifacts import ArtifactStore, parse_uri

        stage, _ = parse_uri(text)
        if stage in BASE_STAGES | CHAT_STAGES:
            return "base" if stage in BASE_STAGES else "chat"
        path = ArtifactStore(home).resolve(text)
    else:
        path = Path(text).expanduser()
    manifest = _manifest_near(path)
    return _from_manifest(manifest) if manifest else None
