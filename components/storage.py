"""Object storage for artifacts, pack shards and checkpoints (local disk stays the default).

`DSLLM_ARTIFACTS_URI=s3://bucket/prefix` puts artifacts under `<uri>/artifacts/<stage>/<key>/` and
pretraining checkpoints under `<uri>/checkpoints/<key>/`; unset, everything stays in `DSLLM_HOME` as
before. Any fsspec URL works; S3 and S3-compatible servers go through s3fs, which reads the standard
AWS variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`) and
`AWS_ENDPOINT_URL` (MinIO, moto, Ceph). fsspec is the one library here because torch's distributed
checkpoint writes through it (`FsspecWriter`) and s3fs offers the conditional create (`If-None-Match`)
that the lease lock below needs; pyarrow's S3 filesystem has neither.

Object stores have no rename: a directory is uploaded file by file and its commit marker (an
artifact's manifest, a checkpoint's state.json) goes last, so a reader never sees a half-written one.
Readers that need random access (memmapped pack shards) copy a remote directory once into a local
cache (`materialize`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

URI_ENV = "DSLLM_ARTIFACTS_URI"
LEASE_S = 60.0  # a lock whose holder stopped renewing it for this long is stale
S3_READ_TIMEOUT_S = 300
"""How long an S3 request waits for the server's answer before the client sends it again. s3fs lowers
botocore's 60 s to 15 s. AWS S3 streams keep-alive bytes while it assembles a multipart upload (which
"can take several minutes"); moto and some S3-compatible stores stay silent until done. A 1.2 GB checkpoint
shard took moto 20-27 s under load: the client's retried CompleteMultipartUpload raced the first one, moto
closed the parts the retry was reading, and every retry got an HTTP 500. Only a stalled server makes the
client wait this long; connecting keeps s3fs's short timeout."""
FORWARDED_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_REGION", URI_ENV)
"""Non-secret settings handed to Ray workers; credentials come from the nodes (roles, their environment)."""


def is_remote(location: str | Path | None) -> bool:
    """True for a URL with a scheme other than file:// (s3://, gs://, memory://...)."""
    text = str(location or "")
    return "://" in text and not text.startswith("file://")


def root_uri() -> str | None:
    """The object-storage root from `$DSLLM_ARTIFACTS_URI`, or None for the local home."""
    uri = os.environ.get(URI_ENV, "").strip().rstrip("/")
    if uri and not is_remote(uri):
        raise ValueError(f"{URI_ENV}={uri!r} is not an object-storage URL (e.g. s3://bucket/prefix); "
                         "unset it to keep artifacts in DSLLM_HOME")
    return uri or None


def options(uri: str) -> dict:
    """fsspec options for `uri` (also for torch's FsspecWriter/Reader): S3 gets `S3_READ_TIMEOUT_S`."""
    if str(uri).split("://", 1)[0] in ("s3", "s3a"):
        return {"config_kwargs": {"read_timeout": S3_READ_TIMEOUT_S}}
    return {}


def filesystem(uri: str):
    """(fsspec filesystem, path inside it) for `uri`."""
    import fsspec

    try:
        return fsspec.core.url_to_fs(uri, **options(uri))
    except ImportError as exc:
        raise ImportError(f"{uri}: install the filesystem for this scheme (s3://: `pip install s3fs`)") from exc


def join(uri: str, *parts: str) -> str:
    return "/".join([uri.rstrip("/"), *parts])


def fresh(uri: str):
    """(filesystem, path) with the listing cache dropped: other processes write the same prefix."""
    fs, path = filesystem(uri)
    fs.invalidate_cache()
    return fs, path


def exists(uri: str) -> bool:
    fs, path = fresh(uri)
    return fs.exists(path)


def read_text(uri: str) -> str:
    fs, path = fresh(uri)
    return fs.cat_file(path).decode("utf-8")


def write_text(uri: str, text: str) -> None:
    fs, path = filesystem(uri)
    fs.pipe_file(path, text.encode("utf-8"))


def remove(uri: str) -> None:
    fs, path = fresh(uri)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def listdir(uri: str) -> list[str]:
    """Names directly under `uri` ([] when there is nothing)."""
    fs, path = fresh(uri)
    try:
        return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(path, detail=False))
    except FileNotFoundError:
        return []


def upload_dir(local: Path, uri: str, last: str, skip: tuple[str, ...] = ()) -> None:
    """Copy the files of `local` (but `skip`) to `uri`, the commit marker `last` after all others; an old
    marker there is removed first, so nobody reads the old marker with new files."""
    fs, path = filesystem(uri)
    if fs.exists(f"{path}/{last}"):
        fs.rm_file(f"{path}/{last}")
    files = sorted(p for p in local.rglob("*") if p.is_file() and p.name not in (last, *skip))
    for file in files:
        fs.put_file(str(file), f"{path}/{file.relative_to(local).as_posix()}")
    fs.put_file(str(local / last), f"{path}/{last}")


def download_dir(uri: str, local: Path) -> None:
    """Copy every object under `uri` into the (new) directory `local`."""
    fs, path = fresh(uri)
    for remote in fs.find(path):
        target = local / remote[len(path):].lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(remote, str(target))


def materialize(uri: str, cache: Path, marker: str) -> Path:
    """A local copy of the remote directory `uri` (complete once `marker` is there), downloaded once per
    cache under a file lock so the workers of one node share it."""
    from filelock import FileLock

    local = cache_path(uri, cache)
    if (local / marker).is_file():
        return local
    local.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(local) + ".lock"):
        if not (local / marker).is_file():
            tmp = local.with_name(f"{local.name}.tmp-{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            try:
                download_dir(uri, tmp)
                if not (tmp / marker).is_file():
                    raise FileNotFoundError(f"{uri} has no {marker}: it is not a finished artifact")
                tmp.rename(local)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return local


def cache_path(uri: str, cache: Path, kind: str = "remote") -> Path:
    """A local folder under `cache/kind` for `uri` (`materialize`'s copies: "remote"; a run's local files: "runs")."""
    return cache / kind / hashlib.sha256(uri.encode()).hexdigest()[:24]


def create_exclusive(uri: str, text: str) -> bool:
    """Create object `uri` only when it does not exist (S3 `If-None-Match: *`); False when it did."""
    fs, path = filesystem(uri)
    try:
        fs.pipe_file(path, text.encode("utf-8"), mode="create")
    except FileExistsError:
        return False
    return True


@contextlib.contextmanager
def lease(uri: str, poll_s: float = 1.0, lease_s: float = LEASE_S) -> Iterator[None]:
    """Hold the lock object `uri` across machines: a conditional create takes it, a thread renews it every
    lease_s / 3, and a lock not renewed for lease_s (a killed holder) is taken over. The takeover of a stale
    lock is not atomic (S3 has no conditional delete): two waiters that find it stale in the same instant may
    both delete it, then only one create wins, unless one deletes the other's fresh lock. Leases keep that
    window to one poll after a holder died."""
    owner = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}:{time.time()}"
    while not create_exclusive(uri, _lease_body(owner, lease_s)):
        _drop_if_stale(uri)
        time.sleep(poll_s)
    stop = threading.Event()
    renew = threading.Thread(target=_renew, args=(uri, owner, lease_s, stop), daemon=True)
    renew.start()
    try:
        yield
    finally:
        stop.set()
        renew.join()
        remove(uri)


def _lease_body(owner: str, lease_s: float) -> str:
    return json.dumps({"owner": owner, "expires": time.time() + lease_s})


def _renew(uri: str, owner: str, lease_s: float, stop: threading.Event) -> None:
    while not stop.wait(lease_s / 3):
        write_text(uri, _lease_body(owner, lease_s))


def _drop_if_stale(uri: str) -> None:
    try:
        expires = json.loads(read_text(uri)).get("expires", 0)
    except FileNotFoundError:
        return
    except ValueError:  # unreadable: treat as a holder that died while writing it
        expires = 0
    if expires < time.time():
        remove(uri)
