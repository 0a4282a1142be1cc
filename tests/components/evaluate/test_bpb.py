"""Bits per byte on a pack's validation shards, against a direct computation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from components.evaluate.bpb import run_bpb
from components.evaluate.lm import HFLM

pytestmark = pytest.mark.unit
TEXTS = {"en": "The answer is 42. The following are questions. " * 6, "zh": "以下是中国关于考试的单项选择题。" * 8}


def write_pack(root, tok, dtype="uint16"):
    """A pack artifact as the pack stage writes it: pack.json + val/<bucket>.bin token arrays."""
    (root / "val").mkdir(parents=True)
    val = {}
    for bucket, text in TEXTS.items():
        ids = np.array(tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id], dtype=dtype)
        ids.tofile(root / "val" / f"{bucket}.bin")
        val[bucket] = {"file": f"val/{bucket}.bin", "tokens": len(ids), "bytes": len(text.encode())}
    (root / "pack.json").write_text(json.dumps({"val": val, "dtype": dtype, "seq_len": 32, "eos_id": tok.eos_token_id}))
    return root


@pytest.fixture(scope="module")
def lm(toy_base):
    return HFLM(AutoModelForCausalLM.from_pretrained(toy_base), AutoTokenizer.from_pretrained(toy_base), "toy",
                batch_size=3, max_length=32)


def direct_nll(model, ids: np.ndarray) -> float:
    """Summed NLL of tokens 1.. by the same 32-token windows, one window at a time, no batching."""
    total = 0.0
    for start in range(0, len(ids) - 1, 31):
        window = torch.tensor(ids[start:start + 32].astype(np.int64))[None]
        with torch.no_grad():
            logits = model(window).logits[0, :-1]
        total += float(torch.nn.functional.cross_entropy(logits, window[0, 1:], reduction="sum"))
    return total


def test_bpb_per_domain_matches_direct_computation(lm, tmp_path):
    pack = write_pack(tmp_path / "pack", lm.tokenizer)
    metrics, records = run_bpb(lm, pack)
    meta = json.loads((pack / "pack.json").read_text())
    nll = {}
    for bucket in TEXTS:
        ids = np.fromfile(pack / meta["val"][bucket]["file"], dtype=np.uint16)
        nll[bucket] = direct_nll(lm.model, ids)
        assert metrics[f"bpb_{bucket}"] == pytest.approx(nll[bucket] / (math.log(2) * meta["val"][bucket]["bytes"]),
                                                         rel=1e-4)
        assert metrics[f"ppl_{bucket}"] == pytest.approx(math.exp(nll[bucket] / (len(ids) - 1)), rel=1e-4)
    total_bytes = sum(v["bytes"] for v in meta["val"].values())
    assert metrics["bpb"] == pytest.approx(sum(nll.values()) / (math.log(2) * total_bytes), rel=1e-4)
    assert {r["id"]: r["tokens"] for r in records} == {b: v["tokens"] - 1 for b, v in meta["val"].items()}


def test_limit_scores_fewer_windows_with_proportional_bytes(lm, tmp_path):
    pack = write_pack(tmp_path / "pack", lm.tokenizer, dtype="uint32")
    metrics, records = run_bpb(lm, pack, limit=1)
    assert all(r["tokens"] == 31 for r in records)
    assert 0 < metrics["bpb_en"] < 20


def test_bad_packs_are_refused_with_a_reason(lm, tmp_path):
    with pytest.raises(FileNotFoundError, match="pack.json"):
        run_bpb(lm, tmp_path)
    pack = write_pack(tmp_path / "pack", lm.tokenizer, dtype="uint32")
    np.array([1, 2, 10 ** 6], dtype=np.uint32).tofile(pack / "val" / "en.bin")
    with pytest.raises(ValueError, match="tokenizer the pack was made with"):
        run_bpb(lm, pack)
