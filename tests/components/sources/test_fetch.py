"""Pinned downloads against a real HTTP server on loopback: a wrong pin fails loudly and caches
nothing; a right pin is cached and then served without the network."""

import functools
import hashlib
import io
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from components.sources import archives
from components.sources.catalog import Source, iter_records
from components.sources.fetch import Archive, ChecksumError, download, extract
from components.sources.readers import lines

pytestmark = pytest.mark.unit


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def served(tmp_path):
    """A tar.gz archive served over HTTP on 127.0.0.1; yields (url, sha256, stop)."""
    root = tmp_path / "www"
    root.mkdir()
    payload = "first line\n第二行\n".encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("pkg-1.0/data/lines.txt")
        info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))
    (root / "pkg-1.0.tar.gz").write_bytes(buf.getvalue())
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stopped = []

    def stop():
        if not stopped:
            server.shutdown()
            server.server_close()
            stopped.append(True)

    url = f"http://127.0.0.1:{server.server_address[1]}/pkg-1.0.tar.gz"
    yield url, hashlib.sha256(buf.getvalue()).hexdigest(), stop
    stop()


def _cache_files(home):
    return [p for p in (home.cache / "downloads").rglob("*") if p.is_file()] \
        if (home.cache / "downloads").exists() else []


def test_wrong_checksum_fails_loudly_and_caches_nothing(home, served):
    url, actual, _ = served
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as err:
        download(Archive("pkg", url, wrong, "pkg-1.0.tar.gz"), home)
    assert "'pkg'" in str(err.value) and actual in str(err.value) and wrong in str(err.value)
    assert _cache_files(home) == []
    assert not (home.cache / "extracted" / wrong).exists()
    with pytest.raises(ChecksumError):
        extract(Archive("pkg", url, wrong, "pkg-1.0.tar.gz"), home)
    assert _cache_files(home) == []


def test_right_checksum_downloads_once_then_works_without_the_network(home, served):
    url, actual, stop = served
    pinned = Archive("pkg", url, actual, "pkg-1.0.tar.gz")
    path = download(pinned, home)
    assert path.is_file() and path.parent.name == actual
    tree = extract(pinned, home)
    stop()  # from here on the URL does not answer
    assert download(pinned, home) == path
    assert extract(pinned, home) == tree
    assert (tree / "pkg-1.0/data/lines.txt").read_text(encoding="utf-8") == "first line\n第二行\n"


def test_a_damaged_cached_file_is_replaced(home, served):
    url, actual, _ = served
    pinned = Archive("pkg", url, actual, "pkg-1.0.tar.gz")
    path = download(pinned, home)
    path.write_bytes(b"truncated")
    assert hashlib.sha256(download(pinned, home).read_bytes()).hexdigest() == actual


def test_unreachable_server_names_the_source_and_where_to_put_the_file(home, served):
    url, actual, stop = served
    stop()
    with pytest.raises(RuntimeError, match=f"Archive 'pkg': could not download.*sha256 {actual}"):
        download(Archive("pkg", url, actual, "pkg-1.0.tar.gz"), home)
    assert _cache_files(home) == []


def test_a_catalog_source_with_a_wrong_pin_fails_naming_the_source(home, served, monkeypatch):
    url, actual, stop = served
    src = Source("pkg_lines", "archive", "en", "test", "test", "pkg", ("pkg-*/data/lines.txt",), reader=lines)
    monkeypatch.setitem(archives.ARCHIVES, "pkg", Archive("pkg", url, "f" * 64, "pkg-1.0.tar.gz"))
    with pytest.raises(ChecksumError, match=f"Source 'pkg_lines': Archive 'pkg'.*{actual}.*{'f' * 64}"):
        list(iter_records(src, home))
    assert _cache_files(home) == []
    monkeypatch.setitem(archives.ARCHIVES, "pkg", Archive("pkg", url, actual, "pkg-1.0.tar.gz"))
    first = [r.text for r in iter_records(src, home)]
    stop()
    assert [r.text for r in iter_records(src, home)] == first == ["first line", "第二行"]
