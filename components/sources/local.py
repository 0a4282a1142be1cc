"""Sources from outside the catalog: local files and globs, and Hugging Face dataset ids.

Local formats, chosen by file suffix:
- `.jsonl`: one record per line; `.json`: a list of records; `.csv`: one record per row (header
  required); `.parquet`: one record per row, read in batches. A record's text is its `text`
  column, else `content`; optional `lang` and `domain` columns are kept.
- `.txt`: one document per file (the whole file; split big text into files yourself, so a
  document boundary is always one you chose).
A folder's files of other formats are not read but reported (`unsupported_format`, one entry each).
Every file but parquet is sniffed first: an empty file is one `empty` entry, a binary one (NUL bytes or
mostly non-UTF-8 bytes in its first block) one `binary` entry, whatever its suffix.

A record without a `lang` gets one detected cheaply from its share of Han characters; the domain
defaults to "local". Hugging Face ids (`id[:config][@split]`, split default "train") are read
with `datasets.load_dataset` only when the hub is reachable; offline they fail up front.
"""

from __future__ import annotations

import csv
import glob
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from components.sources.readers import Bad, Item, from_record, jsonl, load_json_list, sniff, whole_file

LOCAL_FORMATS = (".jsonl", ".json", ".csv", ".parquet", ".txt")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


class HubOfflineError(RuntimeError):
    """A Hugging Face dataset was asked for while the hub cannot be reached."""


def detect_lang(text: str, sample: int = 4000) -> str:
    """"zh" when at least 20% of the first `sample` non-space characters are Han, else "en"."""
    head = "".join(text[:sample].split())
    return "zh" if head and len(_HAN.findall(head)) / len(head) >= 0.2 else "en"


# --- local files --------------------------------------------------------------------------------

def local_files(entry: str) -> list[tuple[Path, str]]:
    """(path, name relative to the entry's base folder) for a file, folder or glob, sorted.
    A folder means every supported file under it."""
    path = Path(entry).expanduser()
    if path.is_file():
        return [(path.resolve(), path.name)]
    if path.is_dir():
        base, found = path, [p for p in path.rglob("*") if p.suffix.lower() in LOCAL_FORMATS]
    else:
        base = Path(_glob_base(str(path)))
        found = [Path(p) for p in glob.glob(str(path), recursive=True)]
    files = [(p.resolve(), p.relative_to(base).as_posix()) for p in found if p.is_file()]
    return sorted(files, key=lambda pair: pair[1])


def unsupported_in_folder(entry: str) -> list[tuple[Path, str]]:
    """Files under a folder entry that are not of a supported format (dotfiles aside): not read, but reported."""
    path = Path(entry).expanduser()
    if not path.is_dir():
        return []
    found = [p for p in path.rglob("*") if p.is_file() and p.suffix.lower() not in LOCAL_FORMATS
             and not any(part.startswith(".") for part in p.relative_to(path).parts)]
    return sorted((p.resolve(), p.relative_to(path).as_posix()) for p in found)


def _glob_base(pattern: str) -> str:
    """The folder part of a glob before its first wildcard; ids are relative to it."""
    parts = Path(pattern).parts
    i = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts))
    return str(Path(*parts[:i])) if i else "."


def check_local(entry: str) -> list[tuple[Path, str]]:
    """The files of a `local_paths` entry; FileNotFoundError/ValueError before any work."""
    files = local_files(entry)
    if not files:
        raise FileNotFoundError(f"sources.local_paths entry {entry!r} matches no file. Give an existing "
                                f"file, folder or glob of {', '.join(LOCAL_FORMATS)} files.")
    wrong = [rel for path, rel in files if path.suffix.lower() not in LOCAL_FORMATS]
    if wrong:
        raise ValueError(f"sources.local_paths entry {entry!r} matches files of an unsupported format: "
                         f"{', '.join(wrong[:5])}. Supported: {', '.join(LOCAL_FORMATS)}; narrow the glob.")
    return files


def read_local(path: Path) -> Iterator[Item]:
    """The reader for one local file, chosen by its suffix."""
    suffix = path.suffix.lower()
    reader = {".jsonl": jsonl, ".json": _json_list, ".csv": _csv_rows, ".parquet": _parquet_rows,
              ".txt": whole_file}.get(suffix)
    if reader is None:
        yield Bad("", "unsupported_format", f"{path.name}: not one of {', '.join(LOCAL_FORMATS)}")
        return
    whole = sniff(path) if suffix != ".parquet" else None  # parquet is binary by design; pyarrow checks it
    if whole is not None:  # an empty or binary file: one quarantine entry for the file, not one per line
        yield whole
        return
    yield from reader(path)


def _json_list(path: Path) -> Iterator[Item]:
    records = load_json_list(path)
    if isinstance(records, Bad):
        yield records
        return
    for i, obj in enumerate(records):
        yield from_record(i, obj)


def _csv_rows(path: Path) -> Iterator[Item]:
    csv.field_size_limit(sys.maxsize // 2 if sys.maxsize < 2**63 else 2**62)  # long texts are rows too
    n = -1
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            if not {"text", "content"} & set(reader.fieldnames or []):
                yield Bad("", "missing_text", f"no 'text' or 'content' column; columns: {reader.fieldnames}")
                return
            for n, row in enumerate(reader):
                yield from_record(n, {k: v for k, v in row.items() if k is not None})
    except UnicodeDecodeError as exc:
        yield Bad(f"after row {n}", "invalid_utf8", f"{exc.reason} at byte {exc.start}; rest of file skipped")
    except csv.Error as exc:
        yield Bad(f"after row {n}", "malformed_csv", f"{exc}; rest of file skipped")


def _parquet_rows(path: Path, batch_size: int = 1024) -> Iterator[Item]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        names = pf.schema_arrow.names
    except (pa.ArrowException, OSError) as exc:
        yield Bad("", "unreadable", f"not a readable parquet file: {exc}")
        return
    columns = [c for c in ("text", "content", "lang", "domain") if c in names]
    if not {"text", "content"} & set(columns):
        yield Bad("", "missing_text", f"no 'text' or 'content' column; columns: {names}")
        return
    n = 0
    for batch in pf.iter_batches(batch_size=batch_size, columns=columns):
        for row in batch.to_pylist():
            yield from_record(n, row)
            n += 1


# --- Hugging Face datasets ---------------------------------------------------------------------------

_HF_SPEC = re.compile(r"^(?P<id>[^:@\s]+)(?::(?P<config>[^@\s]+))?(?:@(?P<split>[^\s]+))?$")


def parse_hf(spec: str) -> tuple[str, str | None, str]:
    """`id[:config][@split]` → (id, config, split); split defaults to "train"."""
    match = _HF_SPEC.match(spec.strip())
    if not match:
        raise ValueError(f"Hugging Face dataset {spec!r} must look like id[:config][@split], "
                         "e.g. openai/gsm8k:main@train")
    return match["id"], match["config"], match["split"] or "train"


def hub_reachable(timeout: float = 5.0) -> bool:
    """False when HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set or the hub does not answer."""
    if any(os.environ.get(k, "").lower() in ("1", "true", "yes", "on")
           for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")):
        return False
    import httpx

    try:
        httpx.head(os.environ.get("HF_ENDPOINT", "https://huggingface.co"), timeout=timeout)
        return True
    except httpx.HTTPError:
        return False


def check_hf(specs: list[str]) -> None:
    """Validate the specs and make sure the hub answers, before any work starts."""
    for spec in specs:
        parse_hf(spec)
    if specs and not hub_reachable():
        raise HubOfflineError(
            f"sources.hf_datasets {specs} need the Hugging Face hub, which is offline here (HF_HUB_OFFLINE=1 "
            "or unreachable). Remove them, or download the data and list the files in sources.local_paths.")


def read_hf(spec: str) -> Iterator[tuple[str, Item]]:
    """(split, item) for every row of a Hugging Face dataset with a `text`/`content` column."""
    import datasets

    name, config, split = parse_hf(spec)
    ds = datasets.load_dataset(name, config, split=split)
    if not {"text", "content"} & set(ds.column_names):
        raise ValueError(f"Hugging Face dataset {spec!r} has no 'text' or 'content' column "
                         f"(columns: {ds.column_names}); convert it to a local jsonl with a text field.")
    for i, row in enumerate(ds):
        yield split, from_record(i, row)
