"""Content-addressed stage outputs.

A stage output lives at `<home>/artifacts/<stage>/<key>/`. The key hashes the stage name, its
logic version, the config fields that change the result and the keys of its inputs: never a
physical path, so the same work on another machine gets the same key. Work happens in a
temporary sibling directory; `manifest.json` is written last and the directory is renamed into
place, so a crashed stage leaves no half-finished artifact and a finished one is never redone.

One process builds a key at a time (a file lock per key under `artifacts/.locks/`); a second one
waits and reuses the result. Before reuse the artifact is checked against its manifest
(`components.integrity`); a damaged one is moved aside to `<key>.damaged-<time>` and rebuilt, never
deleted in place, since another process may be reading it.

With `DSLLM_ARTIFACTS_URI` set, the store is mirrored on object storage (`components.artifact_mirror`):
published artifacts are uploaded (manifest last), missing ones are downloaded and checked before a
rebuild is considered, and the per-key lock is also a lease object in the bucket.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from components import integrity, storage
from components.artifact_mirror import Mirror
from components.faults import disk_full, is_disk_full
from components.home import Home
from components.integrity import MANIFEST, ArtifactDamaged, describe_files, read_manifest, seal

URI_SCHEME = "dsllm://"
log = logging.getLogger("dsllm.artifacts")
__all__ = ["MANIFEST", "ArtifactDamaged", "ArtifactStore", "StageResult", "StageSpec"]


def canonical(value: Any) -> Any:
    """A JSON-able, order-independent form of configs and plain values."""
    if isinstance(value, BaseModel):
        return canonical(value.model_dump(mode="json"))
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    return value


def stage_key(stage: str, version: int, config: Any, input_keys: dict[str, str]) -> str:
    """The content key of a stage output (24 hex digits of sha256)."""
    payload = json.dumps({"stage": stage, "version": version, "config": canonical(config),
                          "inputs": dict(sorted(input_keys.items()))}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def uri_for(stage: str, key: str) -> str:
    return f"{URI_SCHEME}{stage}/{key}"


def parse_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith(URI_SCHEME) or uri.count("/") != 3:
        raise ValueError(f"Not an artifact URI: {uri!r} (expected {URI_SCHEME}<stage>/<key>)")
    stage, key = uri[len(URI_SCHEME):].split("/")
    return stage, key


def code_version() -> str:
    """The git commit of the checkout (with '+dirty' when modified), or 'unknown'."""
    root = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def file_checksums(directory: Path) -> dict[str, str]:
    return describe_files(directory)[0]


@dataclass
class StageResult:
    """What a stage hands on: its URI, key, counts and whether it came from the cache."""

    stage: str
    key: str
    uri: str
    path: str
    counts: dict[str, Any] = field(default_factory=dict)
    cached: bool = False


@dataclass(frozen=True)
class StageSpec:
    """A stage as components define it and flows run it.

    The contract, one rule for every stage: `work(cfg, inputs, out_dir) -> counts` and `key_config(cfg)` take
    one typed config, an instance of `config`, and nothing else; `section(pipeline_cfg)` picks that config out of
    a `PipelineConfig` (a section of it, or for pretrain and scaling a small object built from a few), so the
    spec alone says what its stage reads. A stage the pipeline does not run (`registered_model`) has no section:
    its caller builds the config. `work` gets the input artifacts as absolute paths and writes into `out_dir` (a
    report/ subfolder there is logged to MLflow by the flow); `key_config` picks the config fields that change
    the result (default: the whole config). `tests/flows/test_stages.py` holds every declared stage to this.
    """

    name: str
    version: int
    work: Callable[[Any, dict[str, Path], Path], dict[str, Any]]
    key_config: Callable[[Any], Any] = lambda cfg: cfg
    config: type[BaseModel] = field(kw_only=True)
    section: Callable[[Any], BaseModel] | None = field(default=None, kw_only=True)

    def of(self, pipeline_cfg: Any) -> BaseModel:
        """This stage's config picked out of a `PipelineConfig`."""
        if self.section is None:
            raise ValueError(f"Stage {self.name} is not part of the pipeline: build its {self.config.__name__} "
                             "yourself")
        return self.section(pipeline_cfg)

    def key(self, store: ArtifactStore, cfg: Any, inputs: dict[str, str]) -> str:
        return store.key(self.name, self.version, self.key_config(self._checked(cfg)), inputs)

    def run(self, cfg: Any, inputs: dict[str, str], store: ArtifactStore | None = None) -> StageResult:
        """Build (or reuse) this stage's artifact for `cfg` and the input artifact URIs."""
        store = store or ArtifactStore()
        paths = {name: store.resolve(uri) for name, uri in inputs.items()}
        return store.build(self.name, self.version, self.key_config(self._checked(cfg)), inputs,
                           lambda out: self.work(cfg, paths, out))

    def _checked(self, cfg: Any) -> Any:
        """`cfg` when it is this stage's config; a clear error (before any work) when it is another shape."""
        if not isinstance(cfg, self.config):
            hint = " (pick it with the spec's `of(pipeline_config)`)" if self.section else ""
            raise TypeError(f"Stage {self.name} takes a {self.config.__name__}, not a {type(cfg).__name__}{hint}")
        return cfg


class ArtifactStore:
    """Reads and writes stage outputs under a home directory."""

    def __init__(self, home: Home | None = None):
        self.home = home or Home.resolve()
        self.root = self.home.artifacts
        self.mirror = Mirror(uri) if (uri := storage.root_uri()) else None

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def resolve(self, uri: str) -> Path:
        """The directory of a finished artifact; a clear error when it is missing or its manifest unreadable."""
        path = self.path(*parse_uri(uri))
        if not (path / MANIFEST).is_file() and self.mirror:
            with self.lock(*parse_uri(uri)):
                if not (path / MANIFEST).is_file():
                    self.mirror.pull(*parse_uri(uri), path)
        if not (path / MANIFEST).is_file():
            raise FileNotFoundError(f"Artifact {uri} is not in {self.root} (was it garbage-collected? "
                                    "re-run the pipeline to rebuild it)")
        read_manifest(path)
        return path

    def is_done(self, stage: str, key: str) -> bool:
        return (self.path(stage, key) / MANIFEST).is_file()

    def manifest(self, stage: str, key: str) -> dict:
        return read_manifest(self.path(stage, key))

    def problems(self, stage: str, key: str, full: bool = False) -> list[str]:
        """What is wrong with a finished artifact ([] = intact); see `components.integrity`."""
        return integrity.problems(self.path(stage, key), full)

    def result(self, stage: str, key: str, cached: bool) -> StageResult:
        manifest = self.manifest(stage, key)
        return StageResult(stage, key, uri_for(stage, key), str(self.path(stage, key)),
                           manifest.get("counts", {}), cached)

    def key(self, stage: str, version: int, config: Any, inputs: dict[str, str]) -> str:
        """The key `build` would use: input URIs contribute only their keys."""
        return stage_key(stage, version, config, {name: parse_uri(uri)[1] for name, uri in inputs.items()})

    @contextlib.contextmanager
    def lock(self, stage: str, key: str) -> Iterator[None]:
        """The one-builder lock of an artifact (a file lock in the home): held while it is checked or built."""
        from filelock import FileLock, Timeout

        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(locks / f"{stage}-{key}.lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            log.warning("%s: another process is building it; waiting for it to finish", uri_for(stage, key))
            lock.acquire()
        try:
            with self.mirror.lock(stage, key) if self.mirror else contextlib.nullcontext():
                yield
        finally:
            lock.release()

    def build(self, stage: str, version: int, config: Any, inputs: dict[str, str],
              work: Callable[[Path], dict[str, Any]]) -> StageResult:
        """Run `work(tmp_dir) -> counts` unless an intact artifact exists; publish it atomically.

        `inputs` maps input names to artifact URIs; their keys (not paths) enter the hash. One process builds
        a key at a time; a damaged artifact is moved aside (never deleted: a reader may hold it) and rebuilt.
        """
        key = self.key(stage, version, config, inputs)
        final = self.path(stage, key)
        with self.lock(stage, key):
            if self.is_done(stage, key):
                if not (found := self.problems(stage, key)):
                    os.utime(final / MANIFEST)  # last use, for gc
                    if self.mirror and not self.mirror.is_done(stage, key):  # an upload cut short
                        self.mirror.push(final, stage, key)
                    return self.result(stage, key, cached=True)
                log.warning("%s is damaged, rebuilding it: %s", uri_for(stage, key), "; ".join(found))
            if final.exists():
                self.quarantine(stage, key)
            if self.mirror and self.mirror.pull(stage, key, final):
                return self.result(stage, key, cached=True)
            tmp = final.with_name(f"{key}.tmp-{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)  # our own pid's leftover: nobody else reads it
            tmp.mkdir(parents=True)
            try:
                counts = work(tmp) or {}
                self._publish(tmp, final, {"stage": stage, "key": key, "version": version, "inputs": inputs,
                                           "config": canonical(config), "counts": canonical(counts)})
            except BaseException as exc:
                named = disk_full(exc, tmp) if is_disk_full(exc) else None  # space left before the cleanup
                shutil.rmtree(tmp, ignore_errors=True)  # never reused: a retry starts afresh (and frees the disk)
                if named is not None:
                    raise named from exc
                raise
            if self.mirror:
                self.mirror.push(final, stage, key)
        return self.result(stage, key, cached=False)

    @staticmethod
    def _publish(tmp: Path, final: Path, manifest: dict) -> None:
        sums, sizes = describe_files(tmp)
        manifest = seal({**manifest, "files": sums, "sizes": sizes, "code_version": code_version(),
                         "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
        integrity.write_stamp(tmp, list(sums))
        tmp.rename(final)

    def quarantine(self, stage: str, key: str) -> Path:
        """Move a damaged artifact aside to `<key>.damaged-<time>` (gc removes it) and return where."""
        final = self.path(stage, key)
        aside = final.with_name(f"{key}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
        final.rename(aside)
        log.warning("moved %s aside to %s", final, aside)
        return aside

    def list(self) -> list[dict]:
        """Every published artifact: stage, key, uri, size, created, last use; `damaged` says why when it is."""
        rows = []
        for manifest_path in sorted(self.root.glob(f"*/*/{MANIFEST}")):
            folder = manifest_path.parent
            if ".tmp-" in folder.name:
                continue
            row = {"stage": folder.parent.name, "key": folder.name, "uri": uri_for(folder.parent.name, folder.name),
                   "bytes": sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()),
                   "created": "", "last_used": manifest_path.stat().st_mtime, "damaged": ""}
            try:
                row["created"] = read_manifest(folder).get("created", "")
            except ArtifactDamaged as exc:
                row["damaged"] = str(exc)
            if ".damaged-" in folder.name:
                row["damaged"] = row["damaged"] or f"{folder}: moved aside as damaged"
            rows.append(row)
        return rows

    def verify(self, uri: str | None = None) -> dict[str, list[str]]:
        """{uri: problems} from a full check (every checksum) of one artifact or all of them."""
        if uri is not None:
            stage, key = parse_uri(uri)
            local = self.path(stage, key).is_dir()
            remote = self.mirror is not None and self.mirror.is_done(stage, key)
            if not local and not remote:
                raise FileNotFoundError(f"Artifact {uri} is not in {self.root} (see `dsllm artifacts ls`)")
            return {uri: (self.problems(stage, key, full=True) if local else [])
                    + (self.mirror.problems(stage, key, full=True) if remote else [])}
        return {row["uri"]: self.problems(row["stage"], row["key"], full=True) or ([row["damaged"]] if row["damaged"]
                                                                                    else []) for row in self.list()}

    def gc(self, older_than_days: float | None = None, dry_run: bool = False) -> list[Path]:
        """Remove unfinished leftovers, damaged artifacts (moved aside or with an unreadable manifest) and, with
        `older_than_days`, artifacts unused for that long."""
        doomed = [p for p in self.root.glob("*/*") if p.is_dir() and not _owner_alive(p)
                  and (".tmp-" in p.name or not (p / MANIFEST).is_file())]
        doomed += [self.path(row["stage"], row["key"]) for row in self.list() if row["damaged"]]
        if older_than_days is not None:
            cutoff = time.time() - older_than_days * 86400
            doomed += [m.parent for m in self.root.glob(f"*/*/{MANIFEST}") if m.stat().st_mtime < cutoff
                       and m.parent not in doomed]
        if not dry_run:
            for path in doomed:
                shutil.rmtree(path, ignore_errors=True)
        return doomed


def _owner_alive(path: Path) -> bool:
    """True for a `<key>.tmp-<pid>` work directory whose process still runs."""
    _, _, pid = path.name.partition(".tmp-")
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
