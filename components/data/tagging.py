"""Language and domain tags (en, zh, code) from character scripts and code-line patterns.

No model and no hub download: Chinese is told from English by the share of Han characters
among letters, and code from prose by the share of lines that look like code (keywords at the
start, brackets or `:`/`;` at the end, indentation, operators). The corpus brings declared tags;
these detected ones fill in missing tags and are compared with the declared ones in the report.
The mixture bucket is `code` for code, else the language.
"""

from __future__ import annotations

import re

import regex

_HAN = regex.compile(r"\p{Han}")
_LETTER = regex.compile(r"[\p{L}--\p{Han}]", flags=regex.V1)
_CODE_START = re.compile(r"^\s*(def |class |import |from \S+ import|return\b|if .*[:{]$|elif |else\s*[:{]|for .*[:{]$|"
                         r"while .*[:{]$|try:|except\b|with .*:$|#include|#define|function\b|var |let |const |"
                         r"public |private |static |package |using |fn |pub |@\w+|\}|//|/\*|\*/)")
_CODE_END = re.compile(r"[;{}:(\[,]\s*$|\)\s*$")
_OPERATOR = re.compile(r"(==|!=|<=|>=|->|=>|\+=|-=|&&|\|\||::|\w\(|\)\.|\[\w*\]|^\s*#\s)")
KNOWN_LANGS = ("en", "zh")


def detect_lang(text: str) -> str:
    """'zh' when Han characters are at least 30% of letters, else 'en'."""
    sample = text[:20_000]
    han = len(_HAN.findall(sample))
    letters = len(_LETTER.findall(sample))
    return "zh" if han and han >= 0.3 * (han + letters) else "en"


def code_score(text: str) -> float:
    """Share of non-blank lines (of the first 400) that look like source code."""
    lines = [ln for ln in text.split("\n", 400)[:400] if ln.strip()]
    if not lines:
        return 0.0
    hits = sum(1 for ln in lines if _CODE_START.search(ln) or _CODE_END.search(ln) or _OPERATOR.search(ln)
               or (ln.startswith(("    ", "\t")) and not _HAN.search(ln)))
    return hits / max(len(lines), 3)  # one or two lines are too little evidence


def detect_code(text: str) -> bool:
    return code_score(text) >= 0.5


def bucket_of(lang: str, domain: str) -> str:
    """The mixture bucket: 'code' for code, else the language."""
    return "code" if domain == "code" else lang


def resolve_tags(declared_lang: str | None, declared_domain: str | None, text: str) -> tuple[str, str, str, bool]:
    """(lang, domain, detected_lang, detected_code): declared tags win, detected ones fill gaps."""
    found_lang, found_code = detect_lang(text), detect_code(text)
    lang = declared_lang if declared_lang in KNOWN_LANGS else found_lang
    domain = declared_domain or ("code" if found_code else "unknown")
    return lang, domain, found_lang, found_code
