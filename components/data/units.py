"""Units for n-grams: a word for Latin script and code, one character for Chinese.

Dedup shingles, decontamination n-grams and the repetition filters all count in these units,
so "13 tokens" means 13 words in English and 13 Han characters in Chinese. Units are hashed
with xxh3 (stable across processes, unlike `hash()`), and n-gram hashes are built from unit
hashes with numpy in a few vectorised passes.
"""

from __future__ import annotations

import re

import numpy as np
from xxhash import xxh3_64_intdigest

HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"  # CJK unified, ext. A-H, compat.
# stdlib `re` (faster than `regex` here): one Han character, or a run of other word characters.
UNIT_RE = re.compile(f"[{HAN}]|[^\\W{HAN}]+")
PRETOKEN_RE = re.compile(f"[{HAN}]|[^\\W{HAN}]+|[^\\w\\s]")
_MUL = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constant (golden ratio); mixes unit hashes


def units(text: str) -> list[str]:
    """Lower-cased words, with every Han character a unit of its own."""
    return UNIT_RE.findall(text.lower())


def estimate_tokens(text: str) -> int:
    """Pre-tokens (words, Han characters, punctuation marks): a tokenizer-free token estimate."""
    return len(PRETOKEN_RE.findall(text))


def unit_hashes(items: list[str]) -> np.ndarray:
    return np.fromiter(map(xxh3_64_intdigest, map(str.encode, items)), dtype=np.uint64, count=len(items))


def ngram_hashes(hashes: np.ndarray, n: int, short_ok: bool = True) -> np.ndarray:
    """Hashes of every run of `n` consecutive units (a polynomial over the unit hashes).

    A sequence shorter than `n` gives one hash of the whole sequence when `short_ok`, else none.
    """
    count = len(hashes) - n + 1
    if count <= 0:
        if not short_ok or len(hashes) == 0:
            return np.empty(0, dtype=np.uint64)
        return ngram_hashes(hashes, len(hashes))
    out = hashes[:count].copy()
    with np.errstate(over="ignore"):
        for i in range(1, n):
            out *= _MUL
            out += hashes[i:i + count]
    return out


def text_ngrams(text: str, n: int, short_ok: bool = True) -> np.ndarray:
    return ngram_hashes(unit_hashes(units(text)), n, short_ok)
