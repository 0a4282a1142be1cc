"""Unicode and whitespace normalisation that keeps code intact, and traditional→simplified Chinese.

Every document: NFC (never NFKC, which would turn `x²` into `x2` and ligatures into letters),
line endings to `\\n`, control characters removed (tab and newline kept), invisible format marks
(BOM, zero-width space, word joiner, soft hyphen) removed, trailing spaces stripped from lines,
leading/trailing blank lines dropped. Leading indentation is never touched.
Prose (not code) also gets: full-width Latin letters and digits to ASCII (Chinese punctuation
stays), exotic spaces (NBSP, thin space, ...) to a plain space, and runs of blank lines capped at one.
Code keeps up to two blank lines in a row (PEP 8 spacing survives).
"""

from __future__ import annotations

import functools
import re
import unicodedata

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_INVISIBLE = re.compile("[\ufeff\u200b\u2060\u00ad]")
_EXOTIC_SPACE = re.compile("[\u00a0\u1680\u2000-\u200a\u202f\u205f]")  # not U+3000: Chinese indentation
_TRAILING = re.compile(r"[ \t\u3000]+$", re.MULTILINE)
_FULLWIDTH = {c: c - 0xFEE0 for c in [*range(0xFF10, 0xFF1A), *range(0xFF21, 0xFF3B), *range(0xFF41, 0xFF5B)]}


def normalize(text: str, is_code: bool) -> str:
    """The normalised form of `text` (see the module docstring for what changes)."""
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _INVISIBLE.sub("", _CONTROL.sub("", text))
    if not is_code:
        text = _EXOTIC_SPACE.sub(" ", text.translate(_FULLWIDTH))
    text = _TRAILING.sub("", text)
    text = re.sub(r"\n{4,}" if is_code else r"\n{3,}", "\n\n\n" if is_code else "\n\n", text)
    return text.strip("\n")


@functools.cache
def _converter():
    import opencc  # the OpenCC C++ library's wheel: dictionary-based, phrase-aware conversion

    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Traditional → simplified Chinese with OpenCC (phrases first, then characters)."""
    return _converter().convert(text)
