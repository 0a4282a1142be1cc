"""Each quality filter drops a document that breaks it and keeps one that does not; Chinese counts characters."""

import pytest

from components.data.filters import (
    FILTERS,
    DocStats,
    check_names,
    dup_ngram_share,
    first_failing,
    top_ngram_share,
)

pytestmark = pytest.mark.unit

ALL = list(FILTERS)
GOOD_EN = ("The river rises in the northern hills and flows south through a wide valley of farms and small towns. "
           "In spring the water is high and the fields along the banks are often flooded, which is good for the soil. "
           "Most of the people who live there have worked the land for generations, and they know the river well. "
           "A railway was built along the valley at the end of the nineteenth century, and with it came mills and "
           "schools and a market that still opens every Saturday morning in the old square by the church.")
GOOD_ZH = ("长江是中国最长的河流，发源于青藏高原的唐古拉山脉，流经十一个省级行政区，最后在上海注入东海。"
           "长江流域气候温暖，雨量充沛，是中国重要的农业区和工业区。沿江分布着许多重要的城市，"
           "例如重庆、武汉和南京，它们都是历史悠久的文化名城。长江三峡风景秀丽，吸引了大量的游客前来参观。"
           "为了防洪和发电，国家在三峡修建了大型水利工程，这项工程对沿岸人民的生活产生了深远的影响。"
           "近年来，人们越来越重视长江的生态保护，开始实施禁渔和退耕还林等措施，希望让这条母亲河恢复生机。")
GOOD_CODE = ("def mean(values):\n    \"\"\"Arithmetic mean of a non-empty sequence.\"\"\"\n    total = 0\n"
             "    for value in values:\n        total += value\n    return total / len(values)\n")

FAILING = {
    "min_chars": ("en", "Too short."),
    "replacement_chars": ("en", GOOD_EN[:300] + "\ufffd" * 10),
    "mean_word_length": ("en", " ".join(["a", "i", "o", "x", "y"] * 40)),
    "alpha_ratio": ("en", "The scores were " + " ".join(str(i * 37) for i in range(80)) + " and the rest."),
    "stop_words": ("en", " ".join(f"Buy cheap widget{i} today now" for i in range(10))),
    "symbol_ratio": ("en", GOOD_EN[:200] + " ### " * 20 + " ... " * 10),
    "digit_ratio": ("en", "Call 555 0199 2233 4455 6677 8899 1234 5678 9012 3456 7890 1234 5678 9012 now to win the"),
    "bullet_lines": ("en", "\n".join(f"• item number {w} of the list" for w in "one two three four five".split())),
    "ellipsis_lines": ("en", "\n".join(f"And then the {w} thing happened..." for w in "first second third".split())),
    "boilerplate": ("en", "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " + GOOD_EN[:200]),
    "dup_lines": ("en", "\n".join(["Click the button below to continue reading"] * 4 + [GOOD_EN[:80]])),
    "dup_line_chars": ("en", "\n".join([GOOD_EN[:200]] + [f"Short distinct line number {i}" for i in range(10)]
                                       + [GOOD_EN[:200]])),
    "top_ngram": ("en", GOOD_EN + " " + "the old square " * 30),
    "dup_ngrams": ("en", GOOD_EN + " " + GOOD_EN),
    "long_lines": ("code", "x = [" + ", ".join(str(i) for i in range(400)) + "]\nprint(x)\n"),
    "code_alnum": ("code", "{}[]();;;;{}[]()<>==!=" * 10 + "\nx = 1\n"),
}


@pytest.mark.parametrize("name", list(FAILING))
def test_filter_fails_its_bad_document(name):
    bucket, text = FAILING[name]
    assert first_failing(text, bucket, [name], min_chars=64) == name


def test_every_filter_has_a_failing_example():
    assert set(FAILING) == set(FILTERS)


def test_duplicate_line_chars_catch_what_line_counts_miss():
    bucket, text = FAILING["dup_line_chars"]
    assert first_failing(text, bucket, ["dup_lines"]) == ""


@pytest.mark.parametrize("bucket, text", [("en", GOOD_EN), ("zh", GOOD_ZH), ("code", GOOD_CODE)])
def test_good_documents_pass_every_filter(bucket, text):
    assert first_failing(text, bucket, ALL, min_chars=64) == ""


def test_first_failing_reports_the_first_rule_in_order():
    text = "Lorem ipsum dolor sit amet ### ### ### ### ###"
    assert first_failing(text, "en", ALL, min_chars=64) == "min_chars"
    assert first_failing(text, "en", [n for n in ALL if n != "min_chars"]) in {"symbol_ratio", "boilerplate",
                                                                             "stop_words"}


def test_chinese_counts_characters_not_words():
    # One "word" by whitespace, but 240 Han characters: the word-based rules would misjudge it.
    assert first_failing(GOOD_ZH, "zh", ALL, min_chars=64) == ""
    assert DocStats(GOOD_ZH, "zh").words[:3] == ["长", "江", "是"]
    # Chinese repetition is measured in character n-grams (n doubled): a repeated passage fails...
    assert first_failing(GOOD_ZH + GOOD_ZH, "zh", ["dup_ngrams"]) == "dup_ngrams"
    assert dup_ngram_share(DocStats(GOOD_ZH + GOOD_ZH, "zh"), 10) > 0.4
    # ...while ordinary text, with its frequent characters, does not.
    assert top_ngram_share(DocStats(GOOD_ZH, "zh"), 4) < 0.16


def test_chinese_stop_characters_and_letter_ratio():
    no_function_chars = "".join(chr(0x4E00 + (i * 37) % 20000) for i in range(260))
    assert first_failing(no_function_chars, "zh", ["stop_words"]) == "stop_words"
    assert first_failing("，。！？" * 40 + "你好", "zh", ["alpha_ratio"]) == "alpha_ratio"


def test_prose_rules_do_not_apply_to_code():
    assert first_failing(GOOD_CODE * 3, "code", ["stop_words", "symbol_ratio", "dup_ngrams", "top_ngram"]) == ""
    repeated = "\n".join(["    result = compute_something(value)"] * 10)
    assert first_failing(repeated, "code", ["dup_lines"]) == "dup_lines"


def test_short_repeated_lines_like_speaker_names_are_not_duplicates():
    play = "\n".join(f"HAMLET.\n{line}\nHORATIO.\nMy lord, line {i} of the reply goes here." for i, line in
                     enumerate(["To be, or not to be, that is the question:", "Whether tis nobler in the mind",
                                "to suffer the slings and arrows", "of outrageous fortune, or to take arms"]))
    assert first_failing(play, "en", ["dup_lines", "dup_line_chars"]) == ""


def test_unknown_filter_name_is_a_clear_error():
    with pytest.raises(ValueError, match="Did you mean 'dup_lines'"):
        check_names(["dup_line"])
