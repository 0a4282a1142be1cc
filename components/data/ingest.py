"""Robust reading of the `corpus` artifact: every record is either a document or a quarantine row.

The corpus is `docs/*.parquet` (columns id, text, lang, domain, source) and, for local drops,
`docs/*.jsonl`. Work is split into read units (one parquet row group, or one jsonl file) so Ray
reads them in parallel. Nothing raises on bad data: an unreadable, empty or binary file, a malformed
JSON line, invalid UTF-8, an empty text, a text over `max_chars` (the 100 MB single line), or a
text that is mostly control characters becomes a row with `status` set to the reason and only
a short preview of the text kept. Valid records around them are read as usual.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from components.sources.readers import sniff

COLUMNS = ("uid", "id", "text", "lang", "domain", "source", "status", "detail")
PREVIEW = 200


def list_units(corpus: Path) -> tuple[list[dict], list[dict]]:
    """(read units, quarantine rows for whole files that cannot be read at all)."""
    docs = corpus / "docs"
    if not docs.is_dir():
        raise FileNotFoundError(f"{corpus} has no docs/ folder: expected a corpus artifact with "
                                "docs/<source>.parquet (run the sources stage first)")
    units, bad = [], []
    for path in sorted(p for p in docs.rglob("*") if p.is_file()):
        reason, detail, parts = _inspect(path)
        if reason:
            bad.append(_row(-1, path.stem, "", path.stem, reason, f"{path.name}: {detail}"))
        units += [{"path": str(path), "part": part, "unit": 0} for part in parts]
    for i, unit in enumerate(units):
        unit["unit"] = i
    return units, bad


def _inspect(path: Path) -> tuple[str, str, list[int]]:
    if path.suffix == ".parquet":
        try:
            return "", "", list(range(pq.ParquetFile(path).metadata.num_row_groups))
        except (pa.ArrowException, OSError) as exc:
            return "unreadable_file", str(exc)[:200], []
    if path.suffix in (".jsonl", ".ndjson"):
        whole = sniff(path)  # an empty or binary file is one entry (empty_file, binary_file), never one per line
        return (f"{whole.reason}_file", whole.sample, []) if whole else ("", "", [-1])
    return "unsupported_file", f"suffix {path.suffix!r}; expected .parquet or .jsonl", []


def _row(uid: int, rid: str, text: str, source: str, status: str = "", detail: str = "",
         lang: str = "", domain: str = "") -> dict:
    return {"uid": uid, "id": rid, "text": text, "lang": lang, "domain": domain, "source": source,
            "status": status, "detail": detail}


def _preview(raw: bytes | str) -> str:
    text = raw[:PREVIEW * 4].decode("utf-8", "replace") if isinstance(raw, bytes) else raw[:PREVIEW]
    return text[:PREVIEW].encode("unicode_escape").decode("ascii")[:PREVIEW * 2]


def check_text(raw: bytes | None, max_chars: int) -> tuple[str, str, str]:
    """(text, status, detail) for one record's raw UTF-8 bytes."""
    if raw is None or not raw.strip():
        return "", "empty", "no text"
    if len(raw) > 4 * max_chars or len(raw) > max_chars and len(raw.decode("utf-8", "replace")) > max_chars:
        return _preview(raw), "too_long", f"{len(raw)} bytes > data.max_chars={max_chars} characters"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _preview(raw), "invalid_utf8", str(exc)[:200]
    sample = text[:65536]
    controls = sum(1 for c in sample if ord(c) < 32 and c not in "\n\t\r")
    if "\0" in sample or controls > 0.05 * len(sample):
        return _preview(text), "binary", f"{controls} control characters in the first {len(sample)}"
    return text, "", ""


def read_unit(unit: dict, max_chars: int) -> list[dict]:
    """Every record of one read unit as a row (a document, or a quarantine row with a reason)."""
    path = Path(unit["path"])
    base = unit["unit"] << 32
    if unit["part"] >= 0:
        return _read_parquet(path, unit["part"], base, max_chars)
    return _read_jsonl(path, base, max_chars)


def _read_parquet(path: Path, part: int, base: int, max_chars: int) -> list[dict]:
    try:
        table = pq.ParquetFile(path).read_row_group(part)
    except (pa.ArrowException, OSError) as exc:
        return [_row(base, f"{path.name}#rg{part}", "", path.stem, "unreadable_file", str(exc)[:200])]
    missing = {"id", "text"} - set(table.column_names)
    if missing:
        return [_row(base, f"{path.name}#rg{part}", "", path.stem, "missing_columns", f"no {sorted(missing)}")]
    texts = table.column("text").cast(pa.binary()).to_pylist()  # bytes: invalid UTF-8 is caught per row
    cols = {c: table.column(c).cast(pa.string()).to_pylist() if c in table.column_names else [None] * len(texts)
            for c in ("id", "lang", "domain", "source")}
    return [_record(base + i, cols["id"][i], raw, cols["source"][i] or path.stem, cols["lang"][i],
                    cols["domain"][i], max_chars) for i, raw in enumerate(texts)]


def _record(uid: int, rid, raw: bytes | None, source: str, lang, domain, max_chars: int) -> dict:
    text, status, detail = check_text(raw, max_chars)
    return _row(uid, str(rid if rid is not None else uid), text, source, status, detail, lang or "", domain or "")


def _read_jsonl(path: Path, base: int, max_chars: int) -> list[dict]:
    rows = []
    with path.open("rb") as fh:
        for i, line in enumerate(fh):
            rows.append(_json_record(base + i, line, path, max_chars))
    return rows


def _json_record(uid: int, line: bytes, path: Path, max_chars: int) -> dict:
    where = f"{path.name}:{(uid & 0xFFFFFFFF) + 1}"
    if len(line) > 4 * max_chars + 1024:
        return _row(uid, where, _preview(line), path.stem, "too_long", f"{len(line)} bytes on one line > 4 × data.max_chars")
    try:
        rec = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return _row(uid, where, _preview(line), path.stem, "invalid_utf8", str(exc)[:200])
    except json.JSONDecodeError as exc:
        return _row(uid, where, _preview(line), path.stem, "malformed_json", str(exc)[:200])
    if not isinstance(rec, dict) or not isinstance(rec.get("text"), str | None):
        return _row(uid, where, _preview(line), path.stem, "missing_text", "not an object with a string 'text'")
    raw = rec["text"].encode("utf-8", "surrogatepass") if rec.get("text") is not None else None
    return _record(uid, rec.get("id", where), raw, str(rec.get("source") or path.stem), rec.get("lang"),
                   rec.get("domain"), max_chars)
