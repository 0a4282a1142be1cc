"""Normalisation keeps code intact and cleans prose; tags tell en, zh and code apart."""

import pytest

from components.data.normalize import normalize, to_simplified
from components.data.tagging import bucket_of, code_score, detect_code, detect_lang, resolve_tags

pytestmark = pytest.mark.unit

CODE = ("import os\r\n\r\n\r\nclass Walker:\r\n    \"\"\"Walks.\"\"\"\r\n\r\n    def run(self, root):   \r\n"
        "\tfor name in os.listdir(root):\r\n            if name.endswith('.py'):\r\n"
        "                yield name  # ｆｕｌｌ\u00a0width kept in code\r\n")


def test_code_indentation_tabs_and_blank_lines_survive():
    out = normalize(CODE, is_code=True)
    lines = out.split("\n")
    assert lines[3] == "class Walker:"
    assert "    def run(self, root):" in lines
    assert "\tfor name in os.listdir(root):" in lines
    assert "                yield name  # ｆｕｌｌ\u00a0width kept in code" in lines
    assert "\r" not in out
    assert out.count("\n\n\n") == 1  # the two blank lines after the import (PEP 8) survive


def test_control_and_invisible_characters_are_removed_but_tab_and_newline_kept():
    out = normalize("a\x00b\x07c\ufeff\u200bd\te\nf\x1b", is_code=False)
    assert out == "abcd\te\nf"


def test_prose_gets_width_and_space_normalisation_but_keeps_chinese_punctuation():
    out = normalize("１９９８年１２月，ＡＩ\u00a0研究。\n\n\n\n下一段\u3000\u3000", is_code=False)
    assert out == "1998年12月，AI 研究。\n\n下一段"


def test_nfc_composes_but_does_not_apply_compatibility_mappings():
    assert normalize("e\u0301 x² ﬁ", is_code=False) == "\u00e9 x² ﬁ"


def test_traditional_to_simplified():
    assert to_simplified("舉頭望明月，低頭思故鄉。") == "举头望明月，低头思故乡。"


@pytest.mark.parametrize("text, lang", [
    ("The committee met on Tuesday to discuss the budget for next year.", "en"),
    ("国务院总理今天在北京会见了来访的外国代表团。", "zh"),
    ("Python 是一种广泛使用的编程语言，它的设计强调代码的可读性。", "zh"),
    ("", "en"),
])
def test_detect_lang(text, lang):
    assert detect_lang(text) == lang


def test_detect_code_against_prose():
    assert detect_code(normalize(CODE, True))
    prose = ("It was the best of times, it was the worst of times.\nIt was the age of wisdom.\n"
             "It was the age of foolishness, it was the epoch of belief.")
    assert not detect_code(prose)
    assert code_score("床前明月光，\n疑是地上霜。\n举头望明月，\n低头思故乡。") < 0.5


def test_declared_tags_win_and_detected_ones_fill_gaps():
    assert resolve_tags("en", "wiki", "你好世界，这是中文。")[:2] == ("en", "wiki")
    lang, domain, found_lang, found_code = resolve_tags("", "", normalize(CODE, True))
    assert (lang, domain, found_code) == ("en", "code", True)
    assert bucket_of("en", "code") == "code" and bucket_of("zh", "poetry") == "zh"
