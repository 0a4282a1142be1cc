"""Counts, tables, plots and samples of a data-prep run, written under `report/` for MLflow.

`counts` is the small nested dict the stage returns (documents per stage and reason); the
tables (dedup rate per source alone and together, final mixture in tokens) go to JSON and
markdown, the plots to PNG, and a few kept and dropped documents per reason to JSONL.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SAMPLES_PER_GROUP = 3


def counts(res: dict, quarantine: Counter, upstream: Counter, index_meta: dict, benchmarks: list[str]) -> dict:
    meta, reason = res["meta"], res["reason"]
    ok = meta["status"] == ""
    by_reason = Counter(reason[reason != ""])
    prefixed = lambda p: {k.split(":", 1)[1]: v for k, v in sorted(by_reason.items()) if k.startswith(p)}  # noqa: E731
    # counts stay numbers: a benchmark whose files are missing is listed apart, never counted as a string
    decontam = {b: prefixed("decontam:").get(b, 0) for b in benchmarks if b not in index_meta["missing"]}
    kept = res["copies"] > 0
    table = res["dedup_table"]
    return {
        "read": {"records": int(res["n"]), "documents": int(ok.sum()), "files_quarantined": len(res["bad_files"])},
        "quarantine": dict(sorted(quarantine.items())), "upstream_quarantine": dict(sorted(upstream.items())),
        "normalise": {"changed": int(meta["changed"][ok].sum()), "t2s_converted": int(meta["t2s"][ok].sum())},
        "tagging": _agreement(meta, ok),
        "dedup": {"exact_removed": prefixed("duplicate:").get("exact", 0),
                  "near_removed": prefixed("duplicate:").get("near", 0), "lsh_candidates": int(res["dedup_candidates"]),
                  "rate_global": table[-1]["rate"] if table else 0.0,
                  "rate_alone": {r["scope"].removesuffix(" alone"): r["rate"] for r in table if r["scope"].endswith(" alone")}},
        "filter": prefixed("filter:"), "decontam": decontam,
        "decontam_unavailable": sorted(b for b in benchmarks if b in index_meta["missing"]),
        "remix": {"downsampled": by_reason.get("remix:downsampled", 0),
                  "rates": {r["bucket"]: r["rate"] for r in res["mixture_table"]}},
        "output": {"documents": int(res["copies"].sum()), "unique_documents": int(kept.sum()),
                   "tokens_est": {r["bucket"]: r["tokens_after"] for r in res["mixture_table"]},
                   "chars": int((meta["chars"] * res["copies"]).sum())},
    }


def _agreement(meta: dict, ok: np.ndarray) -> dict:
    declared = ok & np.isin(meta["lang"], ["en", "zh"])
    code = meta["domain"][ok] == "code"
    return {"lang_agree": round(float((meta["lang"][declared] == meta["lang_detected"][declared]).mean()), 4)
            if declared.any() else None,
            "code_agree": round(float((code == meta["code_detected"][ok]).mean()), 4) if ok.any() else None}


def upstream_counts(corpus: Path) -> Counter:
    """Reasons in the sources stage's own quarantine.jsonl (counted, not re-quarantined)."""
    path, out = corpus / "quarantine.jsonl", Counter()
    if not path.is_file():
        return out
    # Read with the discipline it was written with: one JSON object per b"\n"-terminated line. Never
    # str.splitlines(), which also splits at U+0085, U+2028, \x1c... inside a quoted sample.
    with path.open("rb") as fh:
        for raw in fh:
            if not raw.strip():
                continue
            try:
                out[str(json.loads(raw.decode("utf-8", errors="replace")).get("reason", "unknown"))] += 1
            except (json.JSONDecodeError, AttributeError):
                out["unparseable_line"] += 1
    return out


def write(report: Path, out: Path, res: dict, cnt: dict) -> None:
    report.mkdir(parents=True, exist_ok=True)
    (report / "counts.json").write_text(json.dumps(cnt, indent=2, ensure_ascii=False))
    _table(report / "dedup_table", res["dedup_table"])
    _table(report / "mixture_table", res["mixture_table"])
    _plots(report, res)
    _samples(report, res)
    _dropped(out / "dropped.parquet", res)


def _table(stem: Path, rows: list[dict]) -> None:
    stem.with_suffix(".json").write_text(json.dumps(rows, indent=2, ensure_ascii=False))
    if rows:
        head = list(rows[0])
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(str(r[h]) for h in head) + " |" for r in rows]
        stem.with_suffix(".md").write_text("\n".join(lines) + "\n")


def _plots(report: Path, res: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    rows = res["dedup_table"]
    axes[0].barh([r["scope"] for r in rows], [100 * r["rate"] for r in rows], color="tab:blue")
    axes[0].set_xlabel("documents removed as duplicates (%)")
    axes[0].invert_yaxis()
    mix = res["mixture_table"]
    x = np.arange(len(mix))
    for k, (col, label) in enumerate([("share_before", "before"), ("target_share", "target"), ("share_after", "after")]):
        axes[1].bar(x + (k - 1) * 0.27, [r[col] for r in mix], 0.27, label=label)
    axes[1].set_xticks(x, [r["bucket"] for r in mix])
    axes[1].set_ylabel("share of tokens")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(report / "dedup_and_mixture.png", dpi=100)
    plt.close(fig)


def _samples(report: Path, res: dict) -> None:
    meta, reason = res["meta"], res["reason"]
    groups = [f"kept:{b}" if r == "" else r for b, r in zip(meta["bucket"], reason, strict=True)]
    seen: Counter = Counter()
    with (report / "samples_kept.jsonl").open("w") as kept, (report / "samples_dropped.jsonl").open("w") as dropped:
        for i, group in enumerate(groups):
            if seen[group] >= SAMPLES_PER_GROUP:
                continue
            seen[group] += 1
            rec = {"group": group, "source": meta["source"][i], "id": meta["id"][i], "text": meta["preview"][i]}
            (kept if group.startswith("kept:") else dropped).write(json.dumps(rec, ensure_ascii=False) + "\n")


def _dropped(path: Path, res: dict) -> None:
    """Every dropped document (not quarantined: see quarantine.jsonl) with its reason."""
    meta, reason = res["meta"], res["reason"]
    sel = np.nonzero((reason != "") & (meta["status"] == ""))[0]
    cols = {c: pa.array([str(v) for v in meta[c][sel]]) for c in ("id", "source", "bucket", "preview")}
    cols["reason"] = pa.array([str(v) for v in reason[sel]])
    cols["chars"] = pa.array(meta["chars"][sel].astype(np.int64))
    pq.write_table(pa.table(cols), path)
