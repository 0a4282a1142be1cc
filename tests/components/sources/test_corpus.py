"""The corpus stage on local fixture files: parquet output, quarantine, counts, report, caps, keys."""

import json

import pyarrow.parquet as pq
import pytest

from components.artifacts import ArtifactStore
from components.config import SourcesConfig
from components.home import Home
from components.sources.catalog import local_source
from components.sources.corpus import STAGE
from components.sources.local import HubOfflineError

pytestmark = pytest.mark.unit


@pytest.fixture
def mixed(tmp_path):
    """A folder of good and bad local files."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "good.jsonl").write_text('{"text": "An English sentence."}\n{"text": "中文的句子。", "domain": "news"}\n'
                                     '{"text": "broken\n{"text": ""}\n', encoding="utf-8")
    (data / "book.txt").write_text("A whole book in one file.\n")
    (data / "blob.txt").write_bytes(b"\x89PNG\x00\x00binary")
    (data / "latin.txt").write_bytes("caf\xe9".encode("latin-1"))
    (data / "huge.txt").write_text("y" * 5000)
    return data


def _run(cfg, store):
    result = STAGE.run(cfg, {}, store)
    return result, store.resolve(result.uri)


def test_stage_writes_parquet_quarantine_counts_and_report(home, mixed):
    cfg = SourcesConfig(names=[], local_paths=[str(mixed)], max_doc_chars=1000)
    result, out = _run(cfg, ArtifactStore(home))
    name = local_source(str(mixed)).name
    table = pq.read_table(out / "docs" / f"{name}.parquet")
    assert table.column_names == ["id", "text", "lang", "domain", "source"]
    assert all(str(t) == "string" for t in table.schema.types)
    rows = table.to_pylist()
    assert [(r["id"].removeprefix(name + "/"), r["lang"], r["domain"]) for r in rows] == [
        ("book.txt/0", "en", "local"), ("good.jsonl/0", "en", "local"), ("good.jsonl/1", "zh", "news")]
    quarantine = [json.loads(line) for line in (out / "quarantine.jsonl").read_text().splitlines()]
    assert sorted((q["id"].removeprefix(name + "/"), q["reason"]) for q in quarantine) == [
        ("blob.txt", "binary"), ("good.jsonl/2", "malformed_json"), ("good.jsonl/3", "empty_text"),
        ("huge.txt/0", "too_long"), ("latin.txt", "invalid_utf8")]
    assert all(set(q) == {"source", "id", "reason", "sample"} and len(q["sample"]) <= 200 for q in quarantine)
    assert result.counts == {"docs": {name: 3}, "chars": {name: sum(len(r["text"]) for r in rows)},
                             "scanned": {name: 3},
                             "quarantined": {"binary": 1, "empty_text": 1, "invalid_utf8": 1,
                                             "malformed_json": 1, "too_long": 1}}
    report = (out / "report" / "sources.md").read_text()
    assert f"## {name}" in report and "A whole book in one file." in report and "too_long: 1" in report


def test_caps_are_deterministic_and_spread_over_files(home, tmp_path):
    data = tmp_path / "many"
    data.mkdir()
    for f in range(40):
        (data / f"part{f:02d}.jsonl").write_text(
            "".join(json.dumps({"text": f"file {f} doc {i} " + "w" * 80}) + "\n" for i in range(25)))
    store = ArtifactStore(home)
    cfg = SourcesConfig(names=[], local_paths=[str(data)], max_chars_per_source=5000)
    result, out = _run(cfg, store)
    name = local_source(str(data)).name
    ids = pq.read_table(out / "docs" / f"{name}.parquet").column("id").to_pylist()
    assert result.counts["chars"][name] <= 5000 and result.counts["scanned"][name] == 1000
    assert len({i.split("/")[1] for i in ids}) >= 20  # not the first file or two
    assert ids == sorted(ids, key=lambda i: (i.split("/")[1], int(i.split("/")[2])))  # in source order
    # same config, fresh store: the same documents
    other = ArtifactStore(Home.resolve(tmp_path / "other-home"))
    assert pq.read_table(_run(cfg, other)[1] / "docs" / f"{name}.parquet").column("id").to_pylist() == ids
    reseeded = pq.read_table(_run(cfg.model_copy(update={"seed": 1}), store)[1] / "docs" / f"{name}.parquet")
    assert reseeded.column("id").to_pylist() != ids
    capped = _run(cfg.model_copy(update={"max_docs_per_source": 7}), store)[0]
    assert capped.counts["docs"][name] == 7


def test_rerun_is_cached_and_a_changed_local_file_changes_the_key(home, tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"text": "one"}\n')
    cfg = SourcesConfig(names=[], local_paths=[str(path)])
    store = ArtifactStore(home)
    first = STAGE.run(cfg, {}, store)
    assert STAGE.run(cfg, {}, store).cached
    path.write_text('{"text": "two"}\n')
    second = STAGE.run(cfg, {}, store)
    assert not second.cached and second.key != first.key


def test_offline_hub_and_unknown_names_fail_before_any_work(home, mixed, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    store = ArtifactStore(home)
    with pytest.raises(HubOfflineError, match="someone/data"):
        STAGE.run(SourcesConfig(names=[], local_paths=[str(mixed)], hf_datasets=["someone/data"]), {}, store)
    with pytest.raises(ValueError, match="Did you mean 'milton'"):
        STAGE.run(SourcesConfig(names=["miltonn"], local_paths=[str(mixed)]), {}, store)
    assert list(home.artifacts.rglob("*.parquet")) == [] and store.list() == []
