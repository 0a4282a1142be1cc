"""The `data` StageSpec: corpus artifact in, remixed mixture out.

inputs {"corpus": uri} → out/
    mixture/*.parquet   id, text, lang, domain, source, bucket, copy (0 = first copy; >0 = remix repeats)
    dropped.parquet     every document dropped by dedup, filters, decontamination or remixing, with reason
    quarantine.jsonl    records and files that could not be used (malformed, binary, too long, ...), with reason
    report/             counts.json, dedup_table.{json,md}, mixture_table.{json,md}, PNG, samples
"""

from __future__ import annotations

from pathlib import Path

from components.artifacts import StageSpec
from components.config import DataConfig
from components.data import pipeline, report
from components.data.decontam import load as load_index
from components.home import Home


def work(cfg: DataConfig, inputs: dict[str, Path], out: Path) -> dict:
    corpus = Path(inputs["corpus"]).resolve()
    res = pipeline.run(cfg, corpus, out.resolve(), Home.resolve())
    quarantine = pipeline.write_quarantine(res["meta"], res["bad_files"], out / "quarantine.jsonl")
    counts = report.counts(res, quarantine, report.upstream_counts(corpus), load_index(str(res["index"])).meta,
                           cfg.decontam_benchmarks)
    report.write(out / "report", out, res, counts)
    return counts


STAGE = StageSpec("data", 1, work)
