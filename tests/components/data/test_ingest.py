"""Bad input is quarantined with a reason and counted; valid records around it are all read."""

from collections import Counter

import pytest

from components.data.ingest import check_text, list_units, read_unit
from tests.components.data.bad_corpus import VALID_EN, VALID_ZH, write_bad_corpus

pytestmark = pytest.mark.unit


def test_every_bad_input_is_quarantined_and_nothing_valid_is_lost(tmp_path):
    expected = write_bad_corpus(tmp_path)
    units, bad_files = list_units(tmp_path)
    rows = [row for unit in units for row in read_unit(unit, max_chars=1_000_000)] + bad_files
    reasons = Counter(r["status"] for r in rows if r["status"])
    assert reasons == Counter(expected)
    texts = [r["text"] for r in rows if not r["status"]]
    assert sorted(texts) == sorted(VALID_EN + VALID_ZH)
    assert all(len(r["text"]) <= 400 for r in rows if r["status"])  # only previews of bad records are kept
    huge = next(r for r in rows if r["status"] == "too_long")
    assert huge["id"].startswith("local.jsonl:") and "bytes" in huge["detail"]


def test_uids_are_unique_and_ids_kept(tmp_path):
    write_bad_corpus(tmp_path, big=False)
    units, _ = list_units(tmp_path)
    rows = [row for unit in units for row in read_unit(unit, max_chars=10_000)]
    assert len({r["uid"] for r in rows}) == len(rows)
    assert {"en-0", "en-4", "good_zh-0"} <= {r["id"] for r in rows}


def test_check_text():
    assert check_text("héllo".encode(), 100) == ("héllo", "", "")
    assert check_text(None, 100)[1] == "empty"
    assert check_text(b"x" * 200, 100)[1] == "too_long"
    assert check_text(b"\xff\xfe", 100)[1] == "invalid_utf8"
    assert check_text(b"a\x00b", 100)[1] == "binary"


def test_missing_docs_folder_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="docs/"):
        list_units(tmp_path)
