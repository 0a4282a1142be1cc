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
DOCS = {"en": ["The answer is 42. The following are questions. " * 3, "Short one.", "A third document, it ends here."],
        "zh": ["以下是中国关于考试的单项选择题。" * 4, "答案：甲。"],
        "code": ["def f(x):\n    return {'k': [x, 2]}\n\n\nclass A:\n    pass\n" * 2]}
TEXTS = {bucket: "".join(docs) for bucket, docs in DOCS.items()}


def write_pack(root, tok, dtype="uint16"):
    """A pack artifact as the pack stage writes it: pack.json + val/<bucket>.bin, eos after every document."""
    (root / "val").mkdir(parents=True)
    val = {}
    for bucket, docs in DOCS.items():
        ids = np.array([i for d in docs for i in tok(d, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]],
                       dtype=dtype)
        ids.tofile(root / "val" / f"{bucket}.bin")
        val[bucket] = {"file": f"val/{bucket}.bin", "tokens": len(ids), "bytes": sum(len(d.encode()) for d in docs),
                       "docs": len(docs)}
    (root / "pack.json").write_text(json.dumps({"val": val, "dtype": dtype, "seq_len": 32, "eos_id": tok.eos_token_id}))
    return root


@pytest.fixture(scope="module")
def lm(toy_base):
    return HFLM(AutoModelForCausalLM.from_pretrained(toy_base), AutoTokenizer.from_pretrained(toy_base), "toy",
                batch_size=3, max_length=32)


def direct_token_nll(model, ids: np.ndarray, eos: int) -> np.ndarray:
    """NLL of every token of [eos] + ids by the same 32-token windows, one window at a time, no batching."""
    stream = np.concatenate([[eos], ids]).astype(np.int64)
    out = []
    for start in range(0, len(stream) - 1, 31):
        window = torch.tensor(stream[start:start + 32])[None]
        with torch.no_grad():
            logits = model(window).logits[0, :-1]
        out.append(torch.nn.functional.cross_entropy(logits, window[0, 1:], reduction="none").numpy())
    return np.concatenate(out)


def test_bpb_counts_exactly_the_text_bytes_and_leaves_out_document_ends(lm, tmp_path):
    pack = write_pack(tmp_path / "pack", lm.tokenizer)
    metrics, records = run_bpb(lm, pack)
    meta = json.loads((pack / "pack.json").read_text())
    eos, total_bits = lm.tokenizer.eos_token_id, 0.0
    for bucket, docs in DOCS.items():
        ids = np.fromfile(pack / meta["val"][bucket]["file"], dtype=np.uint16)
        nll = direct_token_nll(lm.model, ids, eos)
        text_nats = float(nll[ids != eos].sum())  # every text token once, no document-end token
        nbytes = sum(len(d.encode()) for d in docs)
        assert metrics[f"bpb_{bucket}"] == pytest.approx(text_nats / (math.log(2) * nbytes), rel=1e-4)
        assert metrics[f"ppl_{bucket}"] == pytest.approx(math.exp(text_nats / int((ids != eos).sum())), rel=1e-4)
        mine = [r for r in records if r["domain"] == bucket]
        assert [r["bytes"] for r in mine] == [len(d.encode()) for d in docs]  # per document, exactly
        assert sum(r["nll_bits"] for r in mine) == pytest.approx(text_nats / math.log(2), rel=1e-5)
        total_bits += text_nats / math.log(2)
    assert metrics["bpb"] == pytest.approx(total_bits / sum(len(t.encode()) for t in TEXTS.values()), rel=1e-4)
    assert metrics["docs"] == len(records) == sum(map(len, DOCS.values()))


def test_document_records_carry_stable_ids_and_scores(lm, tmp_path):
    _, records = run_bpb(lm, write_pack(tmp_path / "pack", lm.tokenizer))
    assert len({r["id"] for r in records}) == len(records)
    for r in records:
        assert set(r) >= {"id", "nll_bits", "bytes", "domain", "lang", "score"}
        assert r["id"].startswith(r["domain"] + "/") and r["score"] == pytest.approx(r["nll_bits"] / r["bytes"])
    # the id hashes the text: another tokenizer's pack of the same documents gives the same ids
    assert records[0]["id"] == run_bpb(lm, write_pack(tmp_path / "again", lm.tokenizer, dtype="uint32"))[1][0]["id"]


def test_limit_scores_whole_documents_with_their_exact_bytes(lm, tmp_path):
    pack = write_pack(tmp_path / "pack", lm.tokenizer, dtype="uint32")
    metrics, records = run_bpb(lm, pack, limit=1)
    _, full = run_bpb(lm, pack)
    assert [r["bytes"] for r in records] == [len(docs[0].encode()) for _, docs in sorted(DOCS.items())]
    firsts = {r["domain"]: r for r in full if r["domain"] not in {x["domain"] for x in full[:full.index(r)]}}
    for r in records:  # the same numbers as in the full run: same windows, same context
        assert r["nll_bits"] == pytest.approx(firsts[r["domain"]]["nll_bits"], rel=1e-5)
    assert metrics["docs"] == 3 and 0 < metrics["bpb_en"] < 20


def test_bad_packs_are_refused_with_a_reason(lm, tmp_path):
    with pytest.raises(FileNotFoundError, match="pack.json"):
        run_bpb(lm, tmp_path)
    pack = write_pack(tmp_path / "pack", lm.tokenizer, dtype="uint32")
    np.array([1, 2, 10 ** 6], dtype=np.uint32).tofile(pack / "val" / "en.bin")
    with pytest.raises(ValueError, match="tokenizer the pack was made with"):
        run_bpb(lm, pack)


def test_the_projects_tokenizer_decodes_pack_documents_to_exactly_their_bytes(tmp_path):
    """bpb's bytes are the decoded text of each document: with the project's own tokenizer (byte fallback,
    identity normalisation, no dummy prefix) that is the document's text, byte for byte, as the pack counted it."""
    import inspect
    import textwrap

    import sentencepiece as spm

    from components.tokenizer import hf
    from components.tokenizer.train import train

    docs = [inspect.getsource(textwrap), "  Leading spaces, tabs\tand\n\nblank lines.  ", "以下是中国关于考试的单项选择题。答案：甲",
            "Rare: 𠀀 é 😀 \u2028 end", "def f():\n\treturn 1\n"]
    train(docs * 3, 400, 0.9995, tmp_path / "m.model")
    tok = hf.export(tmp_path / "m.model", tmp_path / "hf")
    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "m.model"))
    for doc in docs:
        ids = sp.encode(doc)  # as the pack stage encodes
        assert tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False) == doc, doc[:40]
