"""The corpus stage: every configured source read into normalised parquet files.

Output (in the stage's artifact folder):
- `docs/<source>.parquet`: string columns id, text, lang, domain, source, written in row groups
  so memory stays bounded;
- `quarantine.jsonl`: one line per record or file that could not be read
  ({source, id, reason, sample}), written and read as JSON lines ended by "\n" only; reasons:
  malformed_json, invalid_utf8, bad_encoding, binary (a whole file: one entry), empty (a whole
  file), empty_text, too_long, missing_text, malformed_csv, unreadable;
- `report/sources.md`: a table and a sample per source.
Counts: {"docs": {source: n}, "chars": {source: n}, "scanned": {source: n},
"quarantined": {reason: n}}. With caps, a first pass ranks every document (see `sampling.py`)
and a second reads the files holding the kept ones and writes those, so caps are deterministic and spread over the whole source.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from components.artifacts import StageSpec
from components.config import SourcesConfig
from components.home import Home
from components.sources.catalog import Problem, Record, Source, file_of, iter_items, prepare, sources_for
from components.sources.report import write_report
from components.sources.sampling import priority, select

COLUMNS = ("id", "text", "lang", "domain", "source")
SCHEMA = pa.schema([(c, pa.string()) for c in COLUMNS])


class DocWriter:
    """Appends records to a parquet file, one row group per `rows` records or `chars` characters."""

    def __init__(self, path: Path, rows: int = 10_000, chars: int = 32_000_000):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.writer = pq.ParquetWriter(path, SCHEMA, compression="zstd")
        self.rows, self.chars = rows, chars
        self.buffer: list[dict[str, str]] = []
        self.buffered = 0

    def write(self, record: Record) -> None:
        self.buffer.append(record.as_dict())
        self.buffered += len(record.text)
        if len(self.buffer) >= self.rows or self.buffered >= self.chars:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            self.writer.write_table(pa.Table.from_pylist(self.buffer, schema=SCHEMA))
            self.buffer, self.buffered = [], 0

    def __enter__(self) -> DocWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.flush()
        self.writer.close()


@dataclass
class SourceStats:
    """What one source gave: documents and characters kept and scanned, problems, a sample."""

    source: Source
    docs: int = 0
    chars: int = 0
    scanned: int = 0
    scanned_chars: int = 0
    problems: Counter = field(default_factory=Counter)
    langs: Counter = field(default_factory=Counter)
    domains: Counter = field(default_factory=Counter)
    sample: str = ""

    def keep(self, record: Record, writer: DocWriter) -> None:
        writer.write(record)
        self.docs += 1
        self.chars += len(record.text)
        self.langs[record.lang] += 1
        self.domains[record.domain] += 1
        self.sample = self.sample or record.text[:400]

    def quarantine(self, problem: Problem, fh) -> None:
        self.problems[problem.reason] += 1
        fh.write(json.dumps(problem.as_dict(), ensure_ascii=False) + "\n")

    def scanned_one(self, record: Record) -> None:
        self.scanned += 1
        self.scanned_chars += len(record.text)


def _progress(items, desc: str):
    return tqdm(items, desc=desc, unit=" docs", file=sys.stderr, mininterval=1.0, leave=False)


def build_source(src: Source, cfg: SourcesConfig, home: Home, path: Path, quarantine) -> SourceStats:
    """Write `src`'s documents (capped as `cfg` says) to `path`; problems go to `quarantine`."""
    stats = SourceStats(src)
    items = iter_items(src, home, cfg.max_doc_chars)
    with DocWriter(path) as writer:
        if cfg.max_docs_per_source is None and cfg.max_chars_per_source is None:
            for item in _progress(items, f"{src.name}: read"):
                if isinstance(item, Problem):
                    stats.quarantine(item, quarantine)
                else:
                    stats.scanned_one(item)
                    stats.keep(item, writer)
            return stats
        ids, sizes = [], []
        for item in _progress(items, f"{src.name}: rank"):  # pass 1: rank every good document
            if isinstance(item, Problem):
                stats.quarantine(item, quarantine)
            else:
                stats.scanned_one(item)
                ids.append(item.id)
                sizes.append(len(item.text))
        positions = select([priority(cfg.seed, i) for i in ids], sizes, cfg.max_docs_per_source,
                           cfg.max_chars_per_source)
        _write_kept(src, cfg, home, {ids[p] for p in positions.tolist()}, stats, writer)
    return stats


def _write_kept(src: Source, cfg: SourcesConfig, home: Home, kept: set[str], stats: SourceStats,
                writer: DocWriter) -> None:
    """Pass 2: read again only the files that hold kept documents, and write those."""
    files = {file_of(src, doc_id) for doc_id in kept}
    left = len(kept)
    for item in _progress(iter_items(src, home, cfg.max_doc_chars, only=files), f"{src.name}: write"):
        if left == 0:
            break
        if isinstance(item, Record) and item.id in kept:
            stats.keep(item, writer)
            left -= 1


def work(cfg: SourcesConfig, inputs: dict[str, Path], out_dir: Path) -> dict[str, Any]:
    """Read every configured source into `out_dir` (see the module docstring)."""
    home = Home.resolve()
    sources = sources_for(cfg)
    prepare(sources, home, progress=True)  # every download, file and hub check before any reading
    results = []
    with (out_dir / "quarantine.jsonl").open("w", encoding="utf-8") as quarantine:
        for src in tqdm(sources, desc="sources", unit=" source", file=sys.stderr):
            results.append(build_source(src, cfg, home, out_dir / "docs" / f"{src.name}.parquet", quarantine))
    write_report(results, cfg, out_dir / "report" / "sources.md")
    problems = sum((r.problems for r in results), Counter())
    # in full on the console: the flow's one-line summary of the counts may be cut short
    listed = ", ".join(f"{reason} {n:,}" for reason, n in sorted(problems.items())) or "none"
    print(f"[corpus] quarantined: {sum(problems.values()):,} ({listed}); see quarantine.jsonl", file=sys.stderr,
          flush=True)
    return {"docs": {r.source.name: r.docs for r in results},
            "chars": {r.source.name: r.chars for r in results},
            "scanned": {r.source.name: r.scanned for r in results},
            "quarantined": dict(sorted(problems.items()))}


def key_config(cfg: SourcesConfig) -> dict[str, Any]:
    """The config, plus what else changes the result: local files' contents, the stdlib version."""
    from components.sources.fetch import sha256_of
    from components.sources.local import local_files, unsupported_in_folder

    key: dict[str, Any] = {"config": cfg}
    if cfg.local_paths:
        key["local_files"] = {e: [[rel, sha256_of(p)] for p, rel in local_files(e)] for e in cfg.local_paths}
        key["unsupported"] = {e: [rel for _, rel in unsupported_in_folder(e)] for e in cfg.local_paths}  # reported
    if "python_stdlib" in cfg.names:
        key["python"] = ".".join(map(str, sys.version_info[:3]))
    return key


STAGE = StageSpec("corpus", 2, work, key_config, config=SourcesConfig, section=attrgetter("sources"))  # 2: empty and binary local files are one entry each
