"""Data prep as one Ray Data pipeline plus a driver step for the global decisions.

    read units ─► read_unit (flat_map) ─► prepare_batch (map_batches) ─► materialize
         driver: collect keys + signatures ─► global exact + near dedup ─► filters ─► decontam ─► remix
    materialized rows ─► expand_batch (copies per document) ─► write_parquet(out/mixture)

Deduplication needs every signature at once, so it is a driver step over compact arrays (8 bytes of
exact key and num_perm × 4 bytes of signature per document); everything per document runs on Ray
workers. Order follows DeepSeek: deduplicate, then filter, then remix; each document's drop reason
is the first stage that removed it.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from components.config import DataConfig
from components.data import remix
from components.data.decontam import build_index, check_benchmarks
from components.data.dedup import deduplicate, rate_table
from components.data.filters import check_names
from components.data.ingest import list_units, read_unit
from components.data.prepare import prepare_batch
from components.data.raykit import ensure_ray
from components.home import Home

META = ("uid", "id", "source", "lang", "domain", "bucket", "status", "detail", "lang_detected", "code_detected",
        "t2s", "changed", "fail", "contam", "tokens", "chars", "exact", "signature", "preview")
OUT_COLS = ["id", "text", "lang", "domain", "source", "bucket", "copy"]


def run(cfg: DataConfig, corpus: Path, out: Path, home: Home | None = None) -> dict:
    """Prepare the mixture from `corpus` into `out`; returns the decisions and tables for the report."""
    import ray.data

    check_names(cfg.filters)
    check_benchmarks(cfg.decontam_benchmarks)
    ensure_ray()
    units, bad_files = list_units(corpus)
    index = build_index(cfg.decontam_benchmarks, cfg.decontam_ngram, home)
    ds = ray.data.from_items(units or [{"path": "", "part": -2, "unit": 0}], override_num_blocks=max(1, len(units)))
    ds = ds.flat_map(lambda u: read_unit(u, cfg.max_chars) if u["part"] > -2 else [])
    ds = ds.map_batches(prepare_batch, batch_format="numpy", batch_size=256,
                        fn_kwargs={"cfg": cfg.model_dump(), "index_path": str(index)}).materialize()
    meta = collect(ds)
    decisions = decide(meta, cfg)
    write_mixture(ds, meta["uid"], decisions["copies"], out / "mixture")
    return {"meta": meta, "bad_files": bad_files, "index": index, **decisions}


def collect(ds) -> dict[str, np.ndarray]:
    """The compact per-document columns, gathered on the driver in corpus order."""
    parts: dict[str, list] = {c: [] for c in META}
    for batch in ds.select_columns(list(META)).iter_batches(batch_format="numpy", batch_size=8192):
        for c in META:
            parts[c].append(batch[c])
    if not parts["uid"]:
        return {c: np.empty(0, dtype=object) for c in META} | {"signature": np.zeros((0, 1), np.uint32)}
    return {c: np.concatenate(v) for c, v in parts.items()}


def decide(meta: dict[str, np.ndarray], cfg: DataConfig) -> dict:
    """Drop reason per document ('' = kept) and the number of copies remixing makes of each."""
    n = len(meta["uid"])
    reason = np.array([f"quarantine:{s}" if s else "" for s in meta["status"]], dtype=object)
    ok = np.nonzero(reason == "")[0]
    dd = deduplicate(meta["exact"][ok].astype(np.uint64), meta["signature"][ok], cfg.dedup_bands, cfg.dedup_threshold)
    reason[ok[~dd.keep]] = ["duplicate:" + k for k in dd.kind[~dd.keep]]
    for col, prefix in (("fail", "filter:"), ("contam", "decontam:")):
        hit = (reason == "") & (meta[col] != "")
        reason[hit] = [prefix + v for v in meta[col][hit]]
    copies, mix = _remix(meta, reason, cfg)
    reason[(reason == "") & (copies == 0)] = "remix:downsampled"
    return {"reason": reason, "copies": copies, "dedup_table": rate_table(meta["source"][ok], dd),
            "dedup_candidates": dd.candidates, "mixture_table": mix, "n": n}


def _remix(meta: dict, reason: np.ndarray, cfg: DataConfig) -> tuple[np.ndarray, list[dict]]:
    kept = reason == ""
    before = Counter()
    for b, t in zip(meta["bucket"][kept], meta["tokens"][kept], strict=True):
        before[b] += int(t)
    rates = remix.rates(dict(before), cfg.mixture, cfg.max_upsample) if before else {}
    copies = np.zeros(len(reason), dtype=np.int64)
    for b, rate in rates.items():
        sel = np.nonzero(kept & (meta["bucket"] == b))[0]
        keys = [f"{s}/{i}" for s, i in zip(meta["source"][sel], meta["id"][sel], strict=True)]
        copies[sel] = remix.copies(keys, rate, cfg.seed)
    after = Counter()
    for b, t, c in zip(meta["bucket"], meta["tokens"], copies, strict=True):
        after[b] += int(t) * int(c)
    return copies, remix.mixture_table(dict(before), dict(after), cfg.mixture, rates)


def expand_batch(batch: dict[str, np.ndarray], uids_ref, copies_ref) -> dict[str, np.ndarray]:
    """Kept documents of a batch, each repeated by its copy count (`copy` numbers the repeats)."""
    import ray

    uids, copies = ray.get(uids_ref), ray.get(copies_ref)
    n = copies[np.searchsorted(uids, batch["uid"])]
    rows = np.repeat(np.arange(len(n)), n)
    out = {c: np.asarray(batch[c])[rows] for c in OUT_COLS if c != "copy"}
    out["copy"] = (np.arange(len(rows)) - np.repeat(np.cumsum(n) - n, n)).astype(np.int64)
    return out


def write_mixture(ds, uids: np.ndarray, copies: np.ndarray, target: Path) -> None:
    import ray

    order = np.argsort(uids)
    uids_ref, copies_ref = ray.put(uids[order]), ray.put(copies[order])
    mixed = ds.select_columns(["uid", *OUT_COLS[:-1]]).map_batches(
        expand_batch, batch_format="numpy", fn_kwargs={"uids_ref": uids_ref, "copies_ref": copies_ref})
    mixed.write_parquet(str(target), min_rows_per_file=100_000)
    if not any(target.glob("*.parquet")):  # nothing kept: still a readable, empty mixture
        _empty_mixture(target)


def _empty_mixture(target: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    target.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([(c, pa.int64() if c == "copy" else pa.string()) for c in OUT_COLS])
    pq.write_table(schema.empty_table(), target / "empty.parquet")


def write_quarantine(meta: dict, bad_files: list[dict], path: Path) -> Counter:
    """quarantine.jsonl: one line per quarantined record or file, with its reason; counts per reason."""
    counts: Counter = Counter()
    with path.open("w", encoding="utf-8") as fh:
        for rec in bad_files:
            counts[rec["status"]] += 1
            fh.write(json.dumps({"stage": "data", "source": rec["source"], "id": rec["id"], "reason": rec["status"],
                                 "detail": rec["detail"]}, ensure_ascii=False) + "\n")
        for i in np.nonzero(meta["status"] != "")[0]:
            counts[meta["status"][i]] += 1
            fh.write(json.dumps({"stage": "data", "source": meta["source"][i], "id": meta["id"][i],
                                 "reason": meta["status"][i], "detail": meta["detail"][i],
                                 "preview": meta["preview"][i]}, ensure_ascii=False) + "\n")
    return counts
