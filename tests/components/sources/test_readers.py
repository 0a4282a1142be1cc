"""Readers on small fixture files: each format, and every kind of bad input."""

import json

import pytest

from components.sources import readers
from components.sources.brown import brown
from components.sources.readers import Bad, Doc

pytestmark = pytest.mark.unit


def items(reader, path):
    return list(reader(path))


def test_whole_file_strips_bom_and_crlf(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"\xef\xbb\xbfline one\r\nline two\r\n")
    assert items(readers.whole_file, path) == [Doc(0, "line one\nline two\n")]


def test_binary_and_invalid_utf8_files_are_bad(tmp_path):
    (tmp_path / "bin.txt").write_bytes(b"PK\x03\x04\x00\x00abc")
    (tmp_path / "latin.txt").write_bytes("café".encode("latin-1"))
    [binary] = items(readers.whole_file, tmp_path / "bin.txt")
    [latin] = items(readers.whole_file, tmp_path / "latin.txt")
    assert (binary.reason, latin.reason) == ("binary", "invalid_utf8")
    assert "caf" in latin.sample


def test_lines_skip_blank_lines_and_quarantine_only_the_bad_line(tmp_path):
    path = tmp_path / "l.txt"
    path.write_bytes(b"first\n\n  \nsecond \xff\xfe\nthird\r\n")
    got = items(readers.lines, path)
    assert got[0] == Doc(0, "first") and got[2] == Doc(4, "third")
    assert isinstance(got[1], Bad) and (got[1].where, got[1].reason) == ("3", "invalid_utf8")


def test_jsonl_good_malformed_and_missing_text(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "hello", "lang": "EN", "domain": "web"}\n'
                    '{"text": "broken\n'
                    '{"content": "from content"}\n'
                    '{"title": "no text"}\n'
                    '[1, 2]\n'
                    '{"text": 42}\n', encoding="utf-8")
    got = items(readers.jsonl, path)
    assert got[0] == Doc(0, "hello", "en", "web")
    assert got[2] == Doc(2, "from content")
    assert [g.reason for g in got if isinstance(g, Bad)] == ["malformed_json", "missing_text", "missing_text",
                                                            "missing_text"]
    assert got[1].where == "1" and "broken" in got[1].sample


def test_paragraphs_pack_blocks_up_to_the_limit_and_keep_a_long_paragraph_whole(tmp_path):
    paras = ["A" * 30, "B" * 30, "C" * 30, "D" * 100, "E" * 10]
    path = tmp_path / "book.txt"
    path.write_text("\n\n".join(paras) + "\n", encoding="utf-8")
    docs = items(readers.paragraphs(70), path)
    assert [d.text for d in docs] == ["A" * 30 + "\n\n" + "B" * 30, "C" * 30, "D" * 100, "E" * 10]
    assert [d.n for d in docs] == [0, 1, 2, 3]
    assert "".join(d.text for d in docs).replace("\n", "") == "".join(paras)


def test_untag_chinese_drops_tags_brackets_and_spaces():
    tokens = "[中央/n 人民/n 广播/vn 电台/n]nt 播出/v Windows/nx 95/m ，/w".split()
    assert readers.untag_chinese(tokens) == "中央人民广播电台播出Windows 95，"


PEOPLES_DAILY = (
    "迈向/v  充满/v  希望/n  的/u  新/a  世纪/n  （/w  附/v  图片/n  １/m  张/q  ）/w\n"
    "同胞/n  们/k  ：/w\n"
    "在/p  １９９８年/t  来临/v  之际/f  ，/w  我/r  十分/m  高兴/a  。/w\n"
    "北京/ns  举行/v  新年/t  音乐会/n\n"
    "江/nr  泽民/nr  等/u  与/p  首都/n  群众/n  辞旧迎新/l\n"
    "今晚/t  的/u  长安街/ns  流光溢彩/l  。/w\n")


def test_peoples_daily_without_ids_splits_at_headlines(tmp_path):
    path = tmp_path / "199801.txt"
    path.write_text(PEOPLES_DAILY, encoding="utf-8")
    docs = items(readers.peoples_daily, path)
    assert [d.text.split("\n")[0] for d in docs] == ["迈向充满希望的新世纪（附图片１张）", "北京举行新年音乐会"]
    assert "今晚的长安街流光溢彩。" in docs[1].text
    assert not any("/" in d.text for d in docs)


def test_peoples_daily_with_date_ids_groups_by_article(tmp_path):
    path = tmp_path / "199801.txt"
    path.write_text("19980101-01-001-001/m  迈向/v  新/a  世纪/n\n"
                    "19980101-01-001-002/m  我/r  十分/m  高兴/a  。/w\n"
                    "19980101-01-002-001/m  北京/ns  举行/v  音乐会/n  。/w\n", encoding="utf-8")
    docs = items(readers.peoples_daily, path)
    assert [d.text for d in docs] == ["迈向新世纪\n我十分高兴。", "北京举行音乐会。"]


def test_brown_detokenises_and_takes_the_genre_domain(tmp_path):
    (tmp_path / "cats.txt").write_text("ca01 news\ncn01 adventure\ncj01 learned\n")
    (tmp_path / "ca01").write_text(
        "\n\n\tThe/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' (/( it/pps did/dod )/) ./.\n"
        "\tWas/bedz it/pps so/ql ?/. ?/.\n\n\n\tNew/jj paragraph/nn ;/. ;/. yes/rb ./.\n")
    [doc] = items(brown, tmp_path / "ca01")
    assert doc.text == 'The jury said "no evidence" (it did). Was it so?\n\nNew paragraph; yes.'
    assert doc.domain == "news"
    (tmp_path / "cj01").write_text("\tData/nns ./.\n")
    assert items(brown, tmp_path / "cj01")[0].domain == "nonfiction"


def test_poetry_json_keeps_the_script_and_quarantines_empty_poems(tmp_path):
    poems = [{"author": "李白", "title": "靜夜思", "paragraphs": ["床前明月光，疑是地上霜。", "舉頭望明月，低頭思故鄉。"]},
             {"author": "無名", "title": "句", "paragraphs": []},
             {"author": "和岘", "rhythmic": "导引", "paragraphs": ["气和玉烛，睿化著鸿明。"]},
             {"author": "x", "title": "no verses"}]
    path = tmp_path / "poet.tang.0.json"
    path.write_text(json.dumps(poems, ensure_ascii=False), encoding="utf-8")
    got = items(readers.poetry_json, path)
    assert got[0] == Doc(0, "靜夜思\n李白\n床前明月光，疑是地上霜。\n舉頭望明月，低頭思故鄉。")
    assert got[2] == Doc(2, "导引\n和岘\n气和玉烛，睿化著鸿明。")
    assert [(g.where, g.reason) for g in got if isinstance(g, Bad)] == [("1", "empty_text"), ("3", "missing_text")]
    (tmp_path / "broken.json").write_text('[{"author": ', encoding="utf-8")
    assert items(readers.poetry_json, tmp_path / "broken.json")[0].reason == "malformed_json"


def test_python_file_honours_the_coding_cookie_and_rejects_nonsense(tmp_path):
    (tmp_path / "latin.py").write_bytes("# -*- coding: latin-1 -*-\nname = 'café'\n".encode("latin-1"))
    (tmp_path / "bad.py").write_bytes(b"# coding: uft-8\nx = 1\n")
    (tmp_path / "nul.py").write_bytes(b"x = 1\x00\n")
    assert items(readers.python_file, tmp_path / "latin.py")[0].text.endswith("name = 'café'\n")
    assert items(readers.python_file, tmp_path / "bad.py")[0].reason == "bad_encoding"
    assert items(readers.python_file, tmp_path / "nul.py")[0].reason == "binary"
