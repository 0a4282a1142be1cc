"""Local files (every format, globs, folders) and Hugging Face ids."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from components.sources import local
from components.sources.catalog import Problem, Record, hf_source, iter_items, local_source
from components.sources.readers import Bad, Doc

pytestmark = pytest.mark.unit


def read(path):
    return list(local.read_local(path))


def test_detect_lang_by_share_of_han_characters():
    assert local.detect_lang("床前明月光，疑是地上霜。") == "zh"
    assert local.detect_lang("The quick brown fox, 狐狸.") == "en"
    assert local.detect_lang("Python 3 代码 示例 说明 文档") == "zh"
    assert local.detect_lang("   ") == "en"


def test_json_list_and_bad_json(tmp_path):
    (tmp_path / "ok.json").write_text(json.dumps([{"text": "a"}, {"content": "b", "lang": "zh"}, {"x": 1}]))
    got = read(tmp_path / "ok.json")
    assert got[:2] == [Doc(0, "a"), Doc(1, "b", "zh")] and got[2].reason == "missing_text"
    (tmp_path / "obj.json").write_text('{"text": "not a list"}')
    (tmp_path / "bad.json").write_text('[{"text": "a"},')
    assert read(tmp_path / "obj.json")[0].reason == "malformed_json"
    assert read(tmp_path / "bad.json")[0].reason == "malformed_json"


def test_csv_rows_long_fields_and_missing_column(tmp_path):
    long = "x" * 300_000  # longer than the csv module's default field limit
    (tmp_path / "a.csv").write_text(f'text,domain\n"hello, world",news\n{long},\n', encoding="utf-8")
    got = read(tmp_path / "a.csv")
    assert got[0] == Doc(0, "hello, world", None, "news") and got[1].text == long
    (tmp_path / "b.csv").write_text("title,body\na,b\n")
    assert read(tmp_path / "b.csv") == [Bad("", "missing_text", "no 'text' or 'content' column; columns: "
                                                                "['title', 'body']")]
    (tmp_path / "c.csv").write_bytes(b"text\nfine\n" + "caf\xe9".encode("latin-1") + b"\n")
    assert read(tmp_path / "c.csv")[-1].reason == "invalid_utf8"


def test_parquet_in_batches_with_optional_columns(tmp_path):
    table = pa.table({"content": [f"doc {i}" for i in range(2500)], "lang": ["en"] * 2500, "other": [1] * 2500})
    pq.write_table(table, tmp_path / "a.parquet", row_group_size=1000)
    got = read(tmp_path / "a.parquet")
    assert len(got) == 2500 and got[2499] == Doc(2499, "doc 2499", "en")
    (tmp_path / "fake.parquet").write_bytes(b"not parquet at all")
    assert read(tmp_path / "fake.parquet")[0].reason == "unreadable"
    pq.write_table(pa.table({"body": ["x"]}), tmp_path / "notext.parquet")
    assert read(tmp_path / "notext.parquet")[0].reason == "missing_text"


def test_txt_is_one_document_per_file(tmp_path):
    (tmp_path / "a.txt").write_text("para one\n\npara two\n")
    assert read(tmp_path / "a.txt") == [Doc(0, "para one\n\npara two\n")]


def test_globs_folders_and_ids(tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.jsonl").write_text('{"text": "first"}\n{"text": "第二个文件里的中文"}\n')
    (data / "sub" / "b.txt").write_text("in a sub folder")
    (data / "skip.md").write_text("not a source format")
    assert [rel for _, rel in local.local_files(str(data / "**" / "*.txt"))] == ["sub/b.txt"]
    assert [rel for _, rel in local.local_files(str(data))] == ["a.jsonl", "sub/b.txt"]
    src = local_source(str(data / "*.jsonl"))
    records = [r for r in iter_items(src) if isinstance(r, Record)]
    assert [r.id for r in records] == [f"{src.name}/a.jsonl/0", f"{src.name}/a.jsonl/1"]
    assert [(r.lang, r.domain) for r in records] == [("en", "local"), ("zh", "local")]
    assert src.name.startswith("local_") and "/" not in src.name


def test_missing_and_unsupported_local_paths_fail_up_front(tmp_path):
    with pytest.raises(FileNotFoundError, match="matches no file"):
        local.check_local(str(tmp_path / "nothing*.jsonl"))
    (tmp_path / "notes.md").write_text("x")
    with pytest.raises(ValueError, match="unsupported format.*notes.md"):
        local.check_local(str(tmp_path / "*"))


def test_bad_records_become_problems_with_location(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "ok"}\n{"text": ""}\n{"text": "nul\\u0000byte"}\nnot json\n')
    items = list(iter_items(local_source(str(tmp_path / "a.jsonl"))))
    problems = [(p.id.split("/", 1)[1], p.reason) for p in items if isinstance(p, Problem)]
    assert problems == [("a.jsonl/1", "empty_text"), ("a.jsonl/2", "binary"), ("a.jsonl/3", "malformed_json")]


def test_hf_specs_parse_and_offline_fails_before_work(monkeypatch):
    assert local.parse_hf("openai/gsm8k:main@test") == ("openai/gsm8k", "main", "test")
    assert local.parse_hf("stas/c4-en-10k") == ("stas/c4-en-10k", None, "train")
    with pytest.raises(ValueError, match="id\\[:config\\]\\[@split\\]"):
        local.parse_hf("bad id with spaces")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(local.HubOfflineError, match="openai/gsm8k.*offline"):
        local.check_hf(["openai/gsm8k:main"])
    local.check_hf([])  # nothing asked, nothing to check


def test_hf_rows_are_read_through_datasets(monkeypatch):
    import datasets

    calls = []

    def fake_load(name, config, split):  # stands in for the hub, around the reader under test
        calls.append((name, config, split))
        return datasets.Dataset.from_list([{"text": "hello"}, {"text": "你好世界"}, {"text": None}])

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    src = hf_source("someone/corpus:en@validation")
    items = list(iter_items(src))
    assert calls == [("someone/corpus", "en", "validation")]
    assert [(r.id, r.lang) for r in items if isinstance(r, Record)] == [
        (f"{src.name}/validation/0", "en"), (f"{src.name}/validation/1", "zh")]
    assert [p.reason for p in items if isinstance(p, Problem)] == ["missing_text"]
