"""A corpus with every kind of bad input next to valid documents (shared by the ingest and stage tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from components.data.samples import write_docs

VALID_EN = [
    "The river rises in the northern hills and flows south through a wide valley of farms and small towns.",
    "A railway was built along the valley at the end of the nineteenth century, and with it came new mills.",
    "Most of the people who live there have worked the land for generations, and they know the weather well.",
    "In spring the water is high and the fields along the banks are often flooded, which is good for the soil.",
    "The market still opens every Saturday morning in the old square by the church, as it has for centuries.",
]
VALID_ZH = ["长江是中国最长的河流，发源于青藏高原，流经十一个省级行政区，最后在上海注入东海，全长六千三百多公里。",
            "沿江分布着许多重要的城市，例如重庆、武汉和南京，它们都是历史悠久的文化名城，吸引了大量的游客前来参观。",
            "近年来，人们越来越重视长江的生态保护，开始实施禁渔和退耕还林等措施，希望让这条母亲河恢复生机和活力。"]
BIG_CHARS = 100 * 1024 * 1024


def write_bad_corpus(root: Path, big: bool = True) -> dict[str, int]:
    """Writes root/docs/*; returns the expected quarantine count per reason."""
    docs = root / "docs"
    docs.mkdir(parents=True)
    write_docs(docs / "good_zh.parquet", "good_zh", VALID_ZH, "zh", "news")
    lines = [json.dumps({"id": f"en-{i}", "text": t, "lang": "en", "domain": "web"}).encode()
             for i, t in enumerate(VALID_EN)]
    bad = [b'{"id": "broken", "text": "unterminated',                       # malformed JSON
           b'{"id": "latin1", "text": "caf\xe9 au lait"}',                    # invalid UTF-8
           json.dumps({"id": "empty", "text": "   \n  "}).encode(),           # empty document
           json.dumps({"id": "ctrl", "text": "\x01\x02\x03" * 50}).encode(),  # binary-like text
           json.dumps({"id": "surrogate", "text": "bad \ud800 half"}).encode(),  # lone surrogate: not UTF-8
           b'["not", "an", "object"]']
    body = [lines[0], bad[0], lines[1], bad[1], lines[2], bad[2], bad[3], lines[3], bad[4], bad[5], lines[4]]
    with (docs / "local.jsonl").open("wb") as fh:
        for line in body:
            fh.write(line + b"\n")
        if big:  # the 100 MB single-line document
            fh.write(b'{"id": "huge", "text": "' + b"a" * BIG_CHARS + b'"}\n')
    (docs / "blob.jsonl").write_bytes(bytes(range(256)) * 64)                # a binary file
    (docs / "broken.parquet").write_bytes(b"PAR1 this is not parquet")        # a corrupt parquet file
    (docs / "notes.docx").write_bytes(b"PK\x03\x04")                          # an unsupported file
    (docs / "nothing.jsonl").write_bytes(b"")                                   # an empty file
    pq.write_table(pa.table({"text": ["no id column"]}), docs / "noid.parquet")
    expected = {"malformed_json": 1, "invalid_utf8": 2, "empty": 1, "binary": 1, "missing_text": 1,
                "binary_file": 1, "unreadable_file": 1, "unsupported_file": 1, "missing_columns": 1, "empty_file": 1}
    if big:
        expected["too_long"] = 1
    return expected
