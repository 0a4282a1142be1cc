"""The `data` StageSpec: corpus artifact in, remixed mixture out.

inputs {"corpus": uri} → out/
    mixture/*.parquet   id, text, lang, domain, source, bucket, copy (0 = first copy; >0 = remix repeats)
    dropped.parquet     every document dropped by dedup, filters, decontamination or remixing, with reason
    quarantine.jsonl    records and files that could not be used (malformed, binary, too long, ...), with reason
    report/             counts.json, decontam.json, dedup_table.{json,md}, mixture_table.{json,md}, PNG, samples

The key covers the config and a fingerprint of the evaluation sets this machine offers
(`components.sources.benchmarks.fingerprint`): making C-Eval or CMMLU available rebuilds the
decontamination. Sets that are not available are listed in `decontam_unavailable` and said on the
console, one line each.
"""

from __future__ import annotations

import json
import sys
from operator import attrgetter
from pathlib import Path

from components.artifacts import StageSpec
from components.config import DataConfig
from components.data import pipeline, report
from components.data.decontam import load as load_index
from components.home import Home
from components.sources.benchmarks import fingerprint, say_missing


def work(cfg: DataConfig, inputs: dict[str, Path], out: Path) -> dict:
    corpus = Path(inputs["corpus"]).resolve()
    res = pipeline.run(cfg, corpus, out.resolve(), Home.resolve())
    quarantine = pipeline.write_quarantine(res["meta"], res["bad_files"], out / "quarantine.jsonl")
    index_meta = load_index(str(res["index"])).meta
    counts = report.counts(res, quarantine, report.upstream_counts(corpus), index_meta, cfg.decontam_benchmarks)
    report.write(out / "report", out, res, counts)
    (out / "report" / "decontam.json").write_text(json.dumps(
        {"available": index_meta["benchmarks"], "unavailable": index_meta["missing"]}, indent=2, ensure_ascii=False))
    _tell(counts, index_meta["missing"])
    return counts


def _tell(counts: dict, missing: dict[str, str]) -> None:
    """The console lines a person needs: every eval set decontamination could not use, every quarantine count."""
    for name, reason in sorted(missing.items()):
        say_missing("data", f"decontamination against {name}", reason)
    for label, key in (("quarantined here", "quarantine"), ("quarantined by the corpus stage", "upstream_quarantine")):
        found = counts[key]
        text = ", ".join(f"{reason} {n:,}" for reason, n in found.items()) or "none"
        print(f"[data] {label}: {sum(found.values()):,} ({text})", file=sys.stderr, flush=True)


def key_config(cfg: DataConfig) -> dict:
    return {"config": cfg, "evalsets": fingerprint()}


STAGE = StageSpec("data", 2, work, key_config, config=DataConfig, section=attrgetter("data"))
