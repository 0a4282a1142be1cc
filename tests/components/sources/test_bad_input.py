"""Bad local input, exactly: one quarantine entry per bad line or file, each with its reason, every good
document in the corpus artifact, and the quarantine read back with the discipline it was written with."""

import json
import os

import pyarrow.parquet as pq
import pytest

from components.artifacts import ArtifactStore
from components.config import SourcesConfig
from components.data.report import upstream_counts
from components.sources.catalog import local_source
from components.sources.corpus import STAGE
from components.sources.readers import MAX_LINE_BYTES

pytestmark = pytest.mark.unit

GOOD = [f"Good document number {i}: the river runs past the old mill." for i in range(6)]


@pytest.fixture
def bad_folder(tmp_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    lines = [json.dumps({"text": t}).encode() for t in GOOD[:4]]
    lines.insert(1, b'{"text": "broken, with a NEL \xc2\x85 and a LINE SEPARATOR \xe2\x80\xa8 inside')  # malformed
    lines.insert(3, b'{"text": "not utf-8 \xff\xfe here"}')  # invalid UTF-8
    lines.insert(4, b"[1, 2, 3")  # malformed
    with (folder / "mixed.jsonl").open("wb") as fh:
        fh.write(b"\n".join(lines[:5]) + b"\n")
        fh.write(b'{"text": "' + b"a" * (100 * 2**20) + b'"}\n')  # a 100 MB line
        fh.write(b"\n".join(lines[5:]) + b"\n")
    (folder / "random.jsonl").write_bytes(os.urandom(2**20))  # 1 MB of random bytes
    (folder / "random.bin").write_bytes(os.urandom(2**10))  # a format no reader takes: reported, not read
    (folder / "empty.jsonl").write_bytes(b"")
    (folder / "blank.txt").write_text("  \n\n")
    (folder / "doc_a.txt").write_text(GOOD[4])
    (folder / "doc_b.jsonl").write_text(json.dumps({"text": GOOD[5]}) + "\n")
    return folder


def test_bad_folder_yields_one_entry_per_bad_line_or_file(home, bad_folder, capsys):
    assert 100 * 2**20 > MAX_LINE_BYTES
    result = STAGE.run(SourcesConfig(names=[], local_paths=[str(bad_folder)]), {}, ArtifactStore(home))
    out = ArtifactStore(home).resolve(result.uri)
    name = local_source(str(bad_folder)).name
    with (out / "quarantine.jsonl").open("rb") as fh:
        entries = [json.loads(line) for line in fh]
    where = sorted((e["id"].removeprefix(name + "/"), e["reason"]) for e in entries)
    assert where == [("blank.txt", "empty"), ("empty.jsonl", "empty"), ("mixed.jsonl/1", "malformed_json"),
                     ("mixed.jsonl/3", "invalid_utf8"), ("mixed.jsonl/4", "malformed_json"),
                     ("mixed.jsonl/5", "too_long"), ("random.bin", "unsupported_format"), ("random.jsonl", "binary")]
    expected = {"binary": 1, "empty": 2, "invalid_utf8": 1, "malformed_json": 2, "too_long": 1,
                "unsupported_format": 1}
    assert result.counts["quarantined"] == expected
    texts = pq.read_table(out / "docs" / f"{name}.parquet").column("text").to_pylist()
    assert sorted(texts) == sorted(GOOD), "every good document reaches the corpus artifact"
    assert upstream_counts(out) == expected, "read back line by line as written (U+0085/U+2028 inside a sample)"
    line = next(ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("[corpus] quarantined"))
    assert line.startswith("[corpus] quarantined: 8 (binary 1, empty 2, invalid_utf8 1, malformed_json 2, too_long 1, "
                           "unsupported_format 1)")


def test_upstream_counts_never_split_inside_a_sample(tmp_path):
    samples = ["a\x85b", "c\u2028d", "e\x1cf\x1dg\x1eh", "i\rj", "k\x0bl\x0cm"]
    with (tmp_path / "quarantine.jsonl").open("w", encoding="utf-8") as fh:
        for s in samples:
            fh.write(json.dumps({"reason": "binary", "sample": s}, ensure_ascii=False) + "\n")
    assert upstream_counts(tmp_path) == {"binary": len(samples)}
