"""Quality filters after Gopher (Rae et al. 2021), C4 and RefinedWeb, aware of Chinese and code.

Each filter is a named rule over `DocStats`; `first_failing(...)` names the first rule a
document breaks, which is the reason it is dropped. Rules apply
per bucket: prose rules (en, zh) are not applied to code, which has its own. Chinese counts
characters, not words: a Han character is one unit, and n-gram rules use n doubled (a Chinese
word is about two characters). Thresholds are Gopher's published values unless noted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import regex

from components.data.units import UNIT_RE, ngram_hashes, unit_hashes
from components.names import did_you_mean

STOP_EN = frozenset("the be to of and that have with".split())  # Gopher: at least two of these
STOP_ZH = frozenset("的了是在我有和不这就都也人之而其以为于与无乎者曰兮")  # modern and classical
BOILERPLATE = ("cookie", "privacy policy", "terms of use", "terms of service", "all rights reserved",
               "javascript", "click here", "subscribe", "sign up", "login", "log in", "版权所有", "免责声明",
               "点击", "扫描二维码", "关注我们", "上一篇", "下一篇", "返回首页")
BULLETS = ("•", "-", "*", "·", "▪", "‣", "●", "○")
TOP_NGRAM = {2: 0.20, 3: 0.18, 4: 0.16}
DUP_NGRAM = {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
_DIGIT = regex.compile(r"\p{Nd}+")
_LETTER = regex.compile(r"\p{L}+")
_ALNUM = regex.compile(r"[\p{L}\p{N}]+")
_NO_LETTER_UNIT = regex.compile(r"(?<![\p{L}\p{N}_\p{M}])[\p{N}_\p{M}]+(?![\p{L}\p{N}_\p{M}])")
PROSE, CODE, ALL = frozenset({"en", "zh"}), frozenset({"code"}), frozenset({"en", "zh", "code"})


@dataclass
class DocStats:
    """Measurements of one normalised document, computed lazily and shared by the rules."""

    text: str
    bucket: str
    min_chars: int = 0

    @cached_property
    def words(self) -> list[str]:
        return UNIT_RE.findall(self.text.lower())

    @cached_property
    def hashes(self) -> np.ndarray:
        return unit_hashes(self.words)

    @cached_property
    def unit_chars(self) -> np.ndarray:
        return np.fromiter(map(len, self.words), dtype=np.int64, count=len(self.words))

    @cached_property
    def lines(self) -> list[str]:
        return [ln.strip() for ln in self.text.split("\n") if ln.strip()]

    @cached_property
    def nonspace(self) -> int:
        return max(1, len(self.text) - sum(self.text.count(c) for c in " \n\t\u3000"))

    @property
    def scale(self) -> int:
        return 2 if self.bucket == "zh" else 1


MIN_LINE = {"en": 20, "zh": 8, "code": 10}  # shorter lines (speaker names, braces) repeat naturally


def _long_lines(s: DocStats) -> list[str]:
    return [ln for ln in s.lines if len(ln) >= MIN_LINE.get(s.bucket, 20)]


def _dup_lines(s: DocStats) -> bool:
    lines = _long_lines(s)
    if len(lines) < 3:
        return False
    dups = len(lines) - len(set(lines))
    return dups / len(lines) > (0.5 if s.bucket == "code" else 0.3)


def _dup_line_chars(s: DocStats) -> bool:
    seen, dup_chars = set(), 0
    for ln in _long_lines(s):
        dup_chars += len(ln) if ln in seen else 0
        seen.add(ln)
    return len(s.lines) >= 3 and dup_chars / max(1, sum(map(len, s.lines))) > 0.2


def top_ngram_share(s: DocStats, n: int) -> float:
    """Characters covered by the most frequent repeated n-gram, as a share of all unit characters."""
    if len(s.hashes) < 10 * n:  # too short to judge repetition
        return 0.0
    grams = ngram_hashes(s.hashes, n, short_ok=False)
    ordered = np.sort(grams)
    new_run = np.empty(len(ordered), dtype=bool)
    new_run[0], new_run[1:] = True, ordered[1:] != ordered[:-1]
    starts = np.flatnonzero(new_run)
    counts = np.diff(starts, append=len(ordered))
    k = int(np.argmax(counts))
    if counts[k] < 2:
        return 0.0
    i = int(np.argmax(grams == ordered[starts[k]]))
    return float(s.unit_chars[i:i + n].sum() * counts[k] / max(1, s.unit_chars.sum()))


def dup_ngram_share(s: DocStats, n: int) -> float:
    """Characters inside repeated occurrences (not the first) of any n-gram, as a share."""
    if len(s.hashes) < 10 * n:
        return 0.0
    grams = ngram_hashes(s.hashes, n, short_ok=False)
    order = np.argsort(grams, kind="stable")  # equal n-grams stay in text order: the run's first is the first seen
    ordered = grams[order]
    starts = order[1:][ordered[1:] == ordered[:-1]]
    if len(starts) == 0:
        return 0.0
    cover = np.zeros(len(s.hashes) + 1, dtype=np.int64)
    np.add.at(cover, starts, 1)
    np.add.at(cover, starts + n, -1)
    covered = np.cumsum(cover[:-1]) > 0
    return float(s.unit_chars[covered].sum() / max(1, s.unit_chars.sum()))


def _count(runs: regex.Pattern, text: str) -> int:
    """Characters matched by `runs` (a pattern of runs: far fewer objects than one per character)."""
    return sum(map(len, runs.findall(text)))


def _mean_word_length(s: DocStats) -> bool:
    if not s.words:
        return True
    mean = sum(len(w) for w in s.words) / len(s.words)
    return not 3 <= mean <= 10


def _alpha(s: DocStats) -> bool:
    if s.bucket == "zh":  # Han characters and letters among all visible characters
        return _count(_LETTER, s.text) / s.nonspace < 0.5
    no_letter = len(_NO_LETTER_UNIT.findall(s.text))
    return not s.words or 1 - no_letter / len(s.words) < 0.8


def _stop_words(s: DocStats) -> bool:
    if s.bucket == "zh":
        han = int((s.unit_chars == 1).sum())
        return han >= 200 and sum(map(STOP_ZH.__contains__, s.words)) < 2
    return len(s.words) >= 20 and sum(map(STOP_EN.__contains__, s.words)) < 2


def _symbols(s: DocStats) -> bool:
    symbols = s.text.count("#") + s.text.count("...") + s.text.count("…")
    return symbols / max(1, len(s.words)) > 0.1


def _digits(s: DocStats) -> bool:
    digits = _count(_DIGIT, s.text)
    return digits / s.nonspace > (0.5 if s.bucket == "code" else 0.3)


def _dup_ngrams(s: DocStats) -> bool:
    # Units covered by repeated n-grams shrink as n grows, so a low share at the smallest n
    # (under the lowest threshold) clears every larger n without computing them.
    sizes = sorted(DUP_NGRAM)
    smallest = dup_ngram_share(s, sizes[0] * s.scale)
    if smallest <= min(DUP_NGRAM.values()):
        return False
    return smallest > DUP_NGRAM[sizes[0]] or any(dup_ngram_share(s, n * s.scale) > DUP_NGRAM[n] for n in sizes[1:])


def _line_share(s: DocStats, test: Callable[[str], bool], threshold: float) -> bool:
    return len(s.lines) >= 3 and sum(1 for ln in s.lines if test(ln)) / len(s.lines) > threshold


def _boilerplate(s: DocStats) -> bool:
    lower = s.text.lower()
    if "lorem ipsum" in lower:
        return True
    if not any(phrase in lower for phrase in BOILERPLATE):
        return False
    return _line_share(s, lambda ln: any(phrase in ln.lower() for phrase in BOILERPLATE), 0.3)


FILTERS: dict[str, tuple[frozenset, Callable[[DocStats], bool]]] = {
    "min_chars": (ALL, lambda s: len(s.text) < s.min_chars),
    "replacement_chars": (ALL, lambda s: s.text.count("\ufffd") / max(1, len(s.text)) > 0.01),
    "mean_word_length": (frozenset({"en"}), _mean_word_length),
    "alpha_ratio": (PROSE, _alpha),
    "stop_words": (PROSE, _stop_words),
    "symbol_ratio": (PROSE, _symbols),
    "digit_ratio": (ALL, _digits),
    "bullet_lines": (PROSE, lambda s: _line_share(s, lambda ln: ln.startswith(BULLETS), 0.9)),
    "ellipsis_lines": (PROSE, lambda s: _line_share(s, lambda ln: ln.endswith(("...", "…")), 0.3)),
    "boilerplate": (PROSE, _boilerplate),
    "dup_lines": (ALL, _dup_lines),
    "dup_line_chars": (PROSE, _dup_line_chars),
    "top_ngram": (PROSE, lambda s: any(top_ngram_share(s, n * s.scale) > t for n, t in TOP_NGRAM.items())),
    "dup_ngrams": (PROSE, _dup_ngrams),
    "long_lines": (CODE, lambda s: max((len(ln) for ln in s.text.split("\n")), default=0) > 1000),
    "code_alnum": (CODE, lambda s: _count(_ALNUM, s.text) / s.nonspace < 0.25),
}
"""Rule name → (buckets it applies to, rule returning True when the document fails)."""


def check_names(names: list[str]) -> list[str]:
    """`names` unchanged, or a ValueError naming the unknown filter and the closest known one."""
    for name in names:
        if name not in FILTERS:
            hint = did_you_mean(name, FILTERS)
            raise ValueError(f"Unknown data filter {name!r}.{hint} Known filters: {', '.join(FILTERS)}.")
    return names


def first_failing(text: str, bucket: str, names: list[str], min_chars: int = 0,
                  words: list[str] | None = None, hashes: np.ndarray | None = None) -> str:
    """The first enabled rule (in `FILTERS` order) that `text` of mixture `bucket` breaks, or ''.

    Rules are checked cheapest first and checking stops at the first failure, so each dropped
    document has exactly one reason and the counts per filter add up to the drops.
    """
    stats = DocStats(text, bucket, min_chars)
    if words is not None:
        stats.words = words  # already split by the caller (same UNIT_RE on the lower-cased text)
    if hashes is not None:
        stats.hashes = hashes
    for name in FILTERS:
        if name in names and bucket in FILTERS[name][0] and FILTERS[name][1](stats):
            return name
    return ""


def count_reasons(reasons: list[str]) -> Counter:
    return Counter(r for r in reasons if r)
