"""Checking a published artifact against its manifest.

The manifest records every file's size and sha256, and a sha256 of itself (so an edited manifest is
damage too). Reuse runs the quick check: sizes always, and the checksum of each file whose size or
mtime differs from the `.verified` stamp written when the artifact was published (or last fully
verified): a file rewritten in place (zeroed, patched) gets a new mtime and is hashed again, while
an untouched pack of many GB is not re-read on every run (see benchmarks/artifact_verify.py).
`dsllm artifacts verify` runs the full check: every checksum.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

MANIFEST = "manifest.json"
STAMP = ".verified"
SELF_SUM = "manifest_sha256"
_SKIP = {MANIFEST, STAMP}


class ArtifactDamaged(RuntimeError):
    """A published artifact no longer matches its manifest (or its manifest cannot be read)."""


def sha256_file(path: Path) -> str:
    with path.open("rb") as fh:
        return sha256_stream(fh)


def sha256_stream(fh) -> str:
    """The sha256 of an open binary file (local or an fsspec object), read in 1 MiB chunks."""
    digest = hashlib.sha256()
    for chunk in iter(lambda: fh.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()


def payload_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name not in _SKIP)


def describe_files(directory: Path) -> tuple[dict[str, str], dict[str, int]]:
    """({relative path: sha256}, {relative path: bytes}) of every file but the manifest and stamp."""
    sums, sizes = {}, {}
    for path in payload_files(directory):
        rel = str(path.relative_to(directory))
        sums[rel], sizes[rel] = sha256_file(path), path.stat().st_size
    return sums, sizes


def seal(manifest: dict) -> dict:
    """The manifest with the sha256 of its own content (without that field) added."""
    body = {k: v for k, v in manifest.items() if k != SELF_SUM}
    return {**body, SELF_SUM: _self_sum(body)}


def _self_sum(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def read_manifest(directory: Path) -> dict:
    """The parsed manifest of `directory`; ArtifactDamaged naming the file when it is unreadable or edited."""
    path = directory / MANIFEST
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ArtifactDamaged(f"{path}: unreadable manifest ({exc})") from None
    return parse_manifest(text, str(path))


def parse_manifest(text: str, path: str) -> dict:
    """The manifest in `text` (read from `path`, named in errors), its own checksum checked."""
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ArtifactDamaged(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files", {}), dict):
        raise ArtifactDamaged(f"{path}: not an artifact manifest")
    expected = manifest.get(SELF_SUM)
    if expected is not None and _self_sum({k: v for k, v in manifest.items() if k != SELF_SUM}) != expected:
        raise ArtifactDamaged(f"{path}: the manifest was edited (its own checksum does not match)")
    return manifest


def artifact_near(path: Path) -> Path | None:
    """The artifact directory `path` is or sits directly in (e.g. its hf/ folder): the one holding a manifest."""
    return next((folder for folder in (path, path.parent) if (folder / MANIFEST).is_file()), None)


def write_stamp(directory: Path, files: list[str]) -> None:
    """Record each file's (size, mtime) as verified now."""
    stamp = {}
    for rel in files:
        st = (directory / rel).stat()
        stamp[rel] = [st.st_size, st.st_mtime_ns]
    (directory / STAMP).write_text(json.dumps(stamp))


def _read_stamp(directory: Path) -> dict:
    try:
        return json.loads((directory / STAMP).read_text())
    except (OSError, ValueError):
        return {}


def problems(directory: Path, full: bool = False) -> list[str]:
    """What is wrong with the artifact in `directory` ([] = intact); `full` hashes every file."""
    try:
        manifest = read_manifest(directory)
    except ArtifactDamaged as exc:
        return [str(exc)]
    sums, sizes = manifest.get("files", {}), manifest.get("sizes", {})
    stamp = {} if full else _read_stamp(directory)
    found, hashed = [], []
    for rel, digest in sums.items():
        path = directory / rel
        try:
            st = path.stat()
        except OSError:
            found.append(f"{path}: missing")
            continue
        if rel in sizes and st.st_size != sizes[rel]:
            found.append(f"{path}: {st.st_size} bytes, the manifest says {sizes[rel]}")
        elif stamp.get(rel) != [st.st_size, st.st_mtime_ns]:
            hashed.append(rel)
            if sha256_file(path) != digest:
                found.append(f"{path}: content differs from the manifest's sha256")
    if not found and hashed:
        _try_stamp(directory, list(sums))
    return found


def _try_stamp(directory: Path, files: list[str]) -> None:
    try:
        write_stamp(directory, files)
    except OSError:  # a read-only store is still verified, only again next time
        pass


def remote_problems(uri: str, full: bool = False) -> list[str]:
    """What is wrong with the artifact at the object-storage `uri` ([] = intact): sizes from the listing,
    and with `full` every file's sha256 streamed from the store."""
    from components import storage

    fs, root = storage.fresh(uri)
    try:
        manifest = parse_manifest(fs.cat_file(f"{root}/{MANIFEST}").decode("utf-8"), f"{uri}/{MANIFEST}")
    except (OSError, UnicodeDecodeError) as exc:
        return [f"{uri}/{MANIFEST}: unreadable manifest ({exc})"]
    except ArtifactDamaged as exc:
        return [str(exc)]
    found = []
    for rel, digest in manifest.get("files", {}).items():
        path = f"{root}/{rel}"
        try:
            size = fs.info(path)["size"]
        except FileNotFoundError:
            found.append(f"{uri}/{rel}: missing")
            continue
        if size != manifest.get("sizes", {}).get(rel, size):
            found.append(f"{uri}/{rel}: {size} bytes, the manifest says {manifest['sizes'][rel]}")
        elif full:
            with fs.open(path, "rb") as fh:
                if sha256_stream(fh) != digest:
                    found.append(f"{uri}/{rel}: content differs from the manifest's sha256")
    return found
