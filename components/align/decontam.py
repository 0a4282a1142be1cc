"""Decontamination of SFT examples and DPO pairs against the evaluation sets.

This is a seam: `decontaminate(records, index)` keeps the records whose text shares no long n-gram
with an eval question and returns the others with the benchmark they overlap. `index` is any
callable `text -> benchmark name | None`; `components.align.prepare.default_index` adapts the data
stage's cached index (the one that decontaminates the pretraining corpus: same benchmarks, same
units — words, and single characters for Chinese).
"""

from __future__ import annotations

from collections.abc import Callable

Index = Callable[[str], str | None]


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
