"""Artifacts on a real S3-compatible server (moto on loopback): published with the manifest last, verified
there, reused by a machine with an empty home (downloaded and checked), rebuilt when the remote copy is
damaged; the lease lock takes over from a dead holder."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from components import storage
from components.artifacts import ArtifactStore
from components.home import Home

pytestmark = pytest.mark.integration


def _work(calls: list):
    def work(out):
        calls.append(out)
        (out / "shards").mkdir()
        (out / "shards" / "a.bin").write_bytes(b"\x01\x02" * 1000)
        return {"docs": 2}

    return work


def test_artifact_written_verified_and_reused_from_s3(s3_root, tmp_path):
    calls: list = []
    first = ArtifactStore(Home.resolve(tmp_path / "machine-a")).build("demo", 1, {"x": 1}, {}, _work(calls))
    remote = f"{s3_root}/artifacts/demo/{first.key}"
    assert sorted(storage.listdir(remote)) == ["manifest.json", "shards"]  # no local .verified stamp
    other = ArtifactStore(Home.resolve(tmp_path / "machine-b"))  # an empty home: only the bucket has it
    assert other.verify(first.uri) == {first.uri: []}
    again = other.build("demo", 1, {"x": 1}, {}, _work(calls))
    assert again.cached and len(calls) == 1 and again.counts == {"docs": 2}
    assert (other.resolve(first.uri) / "shards" / "a.bin").read_bytes() == b"\x01\x02" * 1000


def test_resolve_downloads_an_artifact_only_the_bucket_has(s3_root, tmp_path):
    built = ArtifactStore(Home.resolve(tmp_path / "a")).build("demo", 1, {"x": 2}, {}, _work([]))
    path = ArtifactStore(Home.resolve(tmp_path / "b")).resolve(built.uri)
    assert path.is_relative_to(tmp_path / "b") and json.loads((path / "manifest.json").read_text())["key"] == built.key


def test_damaged_remote_copy_is_reported_and_rebuilt(s3_root, tmp_path):
    calls: list = []
    built = ArtifactStore(Home.resolve(tmp_path / "a")).build("demo", 1, {"x": 3}, {}, _work(calls))
    storage.write_text(f"{s3_root}/artifacts/demo/{built.key}/shards/a.bin", "x" * 2000)  # same size, new bytes
    other = ArtifactStore(Home.resolve(tmp_path / "b"))
    assert "differs from the manifest" in other.verify(built.uri)[built.uri][0]
    rebuilt = other.build("demo", 1, {"x": 3}, {}, _work(calls))
    assert not rebuilt.cached and len(calls) == 2
    assert other.verify(built.uri) == {built.uri: []}  # the rebuild replaced the remote copy


def test_local_store_is_untouched_without_the_setting(home, monkeypatch):
    monkeypatch.delenv(storage.URI_ENV, raising=False)
    assert ArtifactStore(home).mirror is None


def test_a_file_path_is_refused_as_the_remote_root(monkeypatch):
    monkeypatch.setenv(storage.URI_ENV, "/tmp/somewhere")
    with pytest.raises(ValueError, match="not an object-storage URL"):
        storage.root_uri()


def test_lease_is_exclusive_and_taken_over_when_stale(s3_root):
    lock = f"{s3_root}/locks/k.lock"
    assert storage.create_exclusive(lock, json.dumps({"expires": time.time() - 1}))  # a dead holder's lease
    assert not storage.create_exclusive(lock, "{}")  # the conditional create refuses a second one
    order: list[str] = []
    with storage.lease(lock, poll_s=0.1):  # the stale lease is taken over
        waiter = threading.Thread(target=lambda: _hold(lock, order))
        waiter.start()
        time.sleep(1.0)
        order.append("first released")
    waiter.join(timeout=30)
    assert order == ["first released", "second held"]
    assert not storage.exists(lock)


def _hold(lock: str, order: list[str]) -> None:
    with storage.lease(lock, poll_s=0.1):
        order.append("second held")


def test_workers_get_the_endpoint_but_not_the_secrets(s3_root):
    from components.pretrain.trainer import worker_env

    env = worker_env()
    assert env["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:") and env[storage.URI_ENV] == s3_root
    assert "AWS_SECRET_ACCESS_KEY" not in env and "AWS_ACCESS_KEY_ID" not in env


def test_a_remote_pack_is_copied_once_and_checked(s3_root, tmp_path):
    source = tmp_path / "pack"
    (source / "train").mkdir(parents=True)
    (source / "train" / "0.bin").write_bytes(b"\x00" * 8)
    (source / "pack.json").write_text("{}")
    storage.upload_dir(source, f"{s3_root}/pack", last="pack.json")
    first = storage.materialize(f"{s3_root}/pack", tmp_path / "cache", "pack.json")
    storage.remove(f"{s3_root}/pack")  # a second call must not need the bucket
    assert storage.materialize(f"{s3_root}/pack", tmp_path / "cache", "pack.json") == first
    assert (first / "train" / "0.bin").read_bytes() == b"\x00" * 8
    with pytest.raises(FileNotFoundError, match="has no pack.json"):
        storage.materialize(f"{s3_root}/missing", tmp_path / "cache", "pack.json")


def test_a_slow_multipart_completion_is_sent_once(s3_root, slow_s3_completion):
    """An object in two parts, on a server slower to complete it than s3fs's default read timeout: the client
    waits for the answer instead of sending the completion again, and the object is whole."""
    fs, path = storage.filesystem(f"{s3_root}/big.bin")
    part = os.urandom(5 * 2**20)
    with fs.open(path, "wb", block_size=len(part)) as fh:
        fh.write(part)
        fh.write(part)
    assert len(slow_s3_completion) == 1
    assert fs.cat_file(path) == part * 2
