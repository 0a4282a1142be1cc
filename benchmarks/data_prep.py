"""Data prep throughput: MB/s and documents/s per core, per step and for the whole Ray pipeline.

The per-document work (`prepare_batch`: normalise, tag, filter, decontaminate, exact key, MinHash)
runs in-process on one core over a real mixed corpus, step by step and all together; the whole data
stage (Ray read → prepare → global dedup → remix → write) then runs end to end on the local Ray with
every core. There is no outside baseline for the whole stage; per-core rates are the comparable numbers.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import args, corpus_texts, emit, interleaved, machine, summary  # noqa: E402
from components.config import DataConfig  # noqa: E402
from components.data.decontam import build_index, load  # noqa: E402
from components.data.filters import first_failing  # noqa: E402
from components.data.minhash import MinHasher  # noqa: E402
from components.data.normalize import normalize  # noqa: E402
from components.data.prepare import prepare_batch  # noqa: E402
from components.data.units import units  # noqa: E402

BENCH = ["gsm8k", "ceval", "cmmlu"]  # with $DSLLM_BENCHMARKS set: no 85 MB download; without, GSM8K from the wheel only


def _batch(docs: list[tuple[str, str, str]]) -> dict[str, np.ndarray]:
    n = len(docs)
    obj = lambda v: np.array(v, dtype=object)  # noqa: E731
    return {"uid": np.arange(n), "id": obj([str(i) for i in range(n)]), "text": obj([t for _, _, t in docs]),
            "lang": obj(["zh" if b == "zh" else "en" for _, b, _ in docs]),
            "domain": obj(["code" if b == "code" else "text" for _, b, _ in docs]),
            "source": obj([s for s, _, _ in docs]), "status": obj([""] * n), "detail": obj([""] * n)}


def steps(docs, cfg: DataConfig, index_path: str) -> dict:
    texts = [(normalize(t, b == "code"), b) for _, b, t in docs]
    mh, index = MinHasher(cfg.dedup_num_perm, cfg.dedup_ngram), load(index_path)
    return {
        "normalise": lambda: [normalize(t, b == "code") for _, b, t in docs],
        "filters": lambda: [first_failing(t, b, cfg.filters, cfg.min_chars) for t, b in texts],
        "minhash": lambda: mh.signatures([mh.shingles(t) for t, _ in texts]),
        "decontam": lambda: [index.hit(units(t)) for t, _ in texts],
        "prepare_batch (all)": lambda: prepare_batch(_batch(docs), cfg.model_dump(), index_path),
    }


def whole_stage(chars: int, cfg: DataConfig) -> tuple[float, int, int]:
    from components.data.raykit import ensure_ray
    from components.data.samples import build_corpus
    from components.data.stage import work

    ensure_ray()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = build_corpus(Path(tmp) / "corpus", chars)
        nbytes = sum(len(t.encode()) for t in __import__("pyarrow.dataset", fromlist=["x"]).dataset(
            str(corpus / "docs"), format="parquet").to_table(columns=["text"]).column("text").to_pylist())
        t = time.perf_counter()
        counts = work(cfg, {"corpus": corpus}, Path(tmp) / "out")
        return time.perf_counter() - t, nbytes, counts["read"]["documents"]


def main() -> None:
    a = args(__doc__.splitlines()[0])
    chars = 60_000 if a.quick else 1_000_000
    cfg = DataConfig(decontam_benchmarks=BENCH)
    docs = corpus_texts(chars)
    index_path = str(build_index(BENCH, cfg.decontam_ngram))
    mb = sum(len(t.encode()) for _, _, t in docs) / 1e6
    times = interleaved(steps(docs, cfg, index_path), a.repeats or (2 if a.quick else 5))
    per_core = {k: {"mb_per_s": round(mb / summary(v)["median"], 3), "docs_per_s": round(len(docs) / summary(v)["median"], 1)}
                for k, v in times.items()}
    wall, nbytes, ndocs = whole_stage(chars, cfg)
    cores = os.cpu_count() or 1
    stage = {"seconds": round(wall, 2), "mb": round(nbytes / 1e6, 3), "docs": ndocs, "cores": cores,
             "mb_per_s": round(nbytes / 1e6 / wall, 3), "mb_per_s_per_core": round(nbytes / 1e6 / wall / cores, 3),
             "docs_per_s_per_core": round(ndocs / wall / cores, 1)}
    result = {"benchmark": "data_prep", "machine": machine(),
              "config": {"chars_per_source": chars, "docs": len(docs), "mb": round(mb, 3), "decontam": BENCH},
              "seconds": {k: summary(v) for k, v in times.items()}, "single_core": per_core, "whole_stage_ray": stage}
    rows = [[k, v["mb_per_s"], v["docs_per_s"]] for k, v in per_core.items()]
    rows.append([f"whole data stage (Ray, {cores} cores, per core)", stage["mb_per_s_per_core"], stage["docs_per_s_per_core"]])
    emit("data_prep", result, rows, ["step (one core)", "MB/s", "docs/s"], a.out)


if __name__ == "__main__":
    main()
