"""`report/sources.md`: what each source gave the corpus, for a person to read."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from components.config import SourcesConfig
    from components.sources.corpus import SourceStats


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _shares(counter: Counter, fallback: str) -> str:
    """`news 5, literature 3` (or the source's own value when nothing was kept)."""
    return ", ".join(f"{k} {v:,}" for k, v in counter.most_common()) if len(counter) > 1 else \
        (next(iter(counter)) if counter else fallback)


def _caps(cfg: SourcesConfig) -> str:
    caps = [f"{cfg.max_docs_per_source:,} documents" if cfg.max_docs_per_source else "",
            f"{cfg.max_chars_per_source:,} characters" if cfg.max_chars_per_source else ""]
    caps = [c for c in caps if c]
    return (" and ".join(caps) + f" per source, sampled with seed {cfg.seed}") if caps else "none"


def summary_table(results: list[SourceStats]) -> list[str]:
    rows = ["| source | docs | chars | scanned docs | lang | domain | quarantined |",
            "|---|---:|---:|---:|---|---|---:|"]
    for r in results:
        rows.append(f"| {r.source.name} | {r.docs:,} | {r.chars:,} | {r.scanned:,} | "
                    f"{_shares(r.langs, r.source.lang)} | {_shares(r.domains, r.source.domain)} | "
                    f"{sum(r.problems.values()):,} |")
    return rows


def source_section(r: SourceStats) -> list[str]:
    src = r.source
    lines = [f"## {src.name}", "", src.description, "",
             "| field | value |", "|---|---|"]
    for key, value in [("docs kept", f"{r.docs:,}"), ("chars kept", f"{r.chars:,}"),
                       ("docs scanned", f"{r.scanned:,}"), ("chars scanned", f"{r.scanned_chars:,}"),
                       ("lang", _shares(r.langs, src.lang)), ("domain", _shares(r.domains, src.domain)),
                       ("license", src.license),
                       ("origin", src.origin),
                       ("quarantined", ", ".join(f"{k}: {v}" for k, v in sorted(r.problems.items())) or "0")]:
        lines.append(f"| {key} | {_cell(value)} |")
    sample = r.sample.replace("```", "'''") or "(no documents)"
    return lines + ["", "Sample:", "", "```text", sample, "```", ""]


def write_report(results: list[SourceStats], cfg: SourcesConfig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    problems = sum((r.problems for r in results), Counter())
    lines = ["# Corpus sources", "", f"Caps: {_caps(cfg)}.", "", *summary_table(results), "",
             f"Total: {sum(r.docs for r in results):,} documents, {sum(r.chars for r in results):,} characters; "
             f"quarantined: {', '.join(f'{k} {v}' for k, v in sorted(problems.items())) or 'none'} "
             "(see quarantine.jsonl).", ""]
    for r in results:
        lines += source_section(r)
    path.write_text("\n".join(lines), encoding="utf-8")
