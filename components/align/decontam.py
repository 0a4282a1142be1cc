"""Decontamination of SFT examples and DPO pairs against the evaluation sets.

This is a seam: `decontaminate(records, index)` keeps the records whose text shares no long n-gram
with an eval question and returns the others with the benchmark they overlap. `index` is any
callable `text -> benchmark name | None`, so the data stage's index (the one that decontaminates
the pretraining corpus) plugs in unchanged. Until it is wired in, `NgramIndex.from_benchmarks()`
builds a small one from the local eval files (GSM8K test, C-Eval val, CMMLU test).

N-grams run over words for Latin text and over single characters for Chinese, so "13-gram" means
13 words or 13 Han characters. Eval texts shorter than n tokens are not indexed (too short to tell
overlap from coincidence).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from components.sources.archives import shared_benchmarks

_TOKEN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[^\W_]+", re.UNICODE)

Index = Callable[[str], str | None]


def tokens(text: str) -> list[str]:
    """Lowercased words, with every Han character its own token."""
    return _TOKEN.findall(text.lower())


def ngrams(text: str, n: int) -> set[int]:
    toks = tokens(text)
    return {hash(tuple(toks[i:i + n])) for i in range(len(toks) - n + 1)}


@dataclass
class NgramIndex:
    """n-gram hashes of eval texts → benchmark name; called on a text, names the first overlap."""

    n: int = 13
    grams: dict[int, str] = field(default_factory=dict)

    def add(self, benchmark: str, texts: Iterable[str]) -> NgramIndex:
        for text in texts:
            for gram in ngrams(text, self.n):
                self.grams.setdefault(gram, benchmark)
        return self

    def __call__(self, text: str) -> str | None:
        for gram in ngrams(text, self.n):
            if gram in self.grams:
                return self.grams[gram]
        return None

    @classmethod
    def from_benchmarks(cls, n: int = 13, root: Path | None = None) -> NgramIndex:
        """GSM8K test questions, C-Eval val and CMMLU test questions from the local benchmark files."""
        root = root or shared_benchmarks()
        index = cls(n)
        index.add("gsm8k", _jsonl_field(root / "gsm8k" / "test.jsonl", "question"))
        index.add("ceval", _csv_column(sorted((root / "ceval" / "val").glob("*.csv")), "question"))
        index.add("cmmlu", _csv_column(sorted((root / "cmmlu" / "test").glob("*.csv")), "Question"))
        return index


def _jsonl_field(path: Path, key: str) -> Iterable[str]:
    if path.is_file():
        with path.open(encoding="utf-8") as fh:
            yield from (json.loads(line)[key] for line in fh if line.strip())


def _csv_column(paths: list[Path], column: str) -> Iterable[str]:
    for path in paths:
        with path.open(encoding="utf-8", newline="") as fh:
            yield from (row[column] for row in csv.DictReader(fh) if row.get(column))


def record_text(record: dict) -> str:
    """All the text of an SFT example or DPO pair, one turn per line."""
    turns = record.get("messages") or [*record.get("prompt", []), *record.get("chosen", []),
                                       *record.get("rejected", [])]
    return "\n".join(t["content"] for t in turns)


def decontaminate(records: list[dict], index: Index) -> tuple[list[dict], list[tuple[dict, str]]]:
    """(kept records, [(dropped record, benchmark it overlaps)])."""
    kept, dropped = [], []
    for record in records:
        benchmark = index(record_text(record))
        if benchmark is None:
            kept.append(record)
        else:
            dropped.append((record, benchmark))
    return kept, dropped
