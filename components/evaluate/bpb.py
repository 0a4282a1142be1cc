"""Bits per byte and perplexity of a model on the held-out validation shards of a `pack` artifact.

`pack.json` lists `val: {bucket: {file, tokens, bytes}}` (one bucket per domain), the token
`dtype`, `seq_len` and `eos_id`; each `val/<bucket>.bin` is the bucket's documents, each followed
by eos. Scored exactly as the model saw text in pretraining: the stream, with one eos put in front
so that every document (the first too) starts after an eos, is cut into windows of the model's
length that overlap by one token, so every token is predicted exactly once.

What counts: the tokens of each document's text, and exactly the UTF-8 bytes of that text (the
document's tokens decoded). The document-end eos tokens are context only: their loss is left
out, as they have no bytes. Nothing is estimated: with `limit`, the first `limit` documents of each
bucket are scored whole. bpb = Σ nll (bits) / Σ bytes; ppl_<bucket> = exp(mean nll per token).

One record per document (`id` from a hash of its text, so the same document has the same id under
another tokenizer; `nll_bits`, `bytes`, `tokens`, `domain`, `lang`, `score` = its own bpb), so a
gate can bootstrap over documents.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path

import numpy as np
import torch

from components.evaluate.lm import HFLM

LANG = {"en": "en", "zh": "zh", "code": "code"}
log = logging.getLogger(__name__)


def read_pack(pack_dir: Path) -> dict:
    path = Path(pack_dir) / "pack.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: bits-per-byte needs a pack artifact (dsllm://pack/<key> or its "
                                "directory) with pack.json and val/<bucket>.bin")
    meta = json.loads(path.read_text())
    if not meta.get("val"):
        raise ValueError(f"{path} lists no validation buckets ('val'); re-run the pack stage with val_fraction > 0")
    return meta


def windows(tokens: np.ndarray, length: int, limit: int | None = None) -> list[np.ndarray]:
    starts = list(range(0, max(len(tokens) - 1, 0), length - 1))[:limit]
    return [np.asarray(tokens[s:s + length], dtype=np.int64) for s in starts]


@torch.inference_mode()
def window_nll(lm: HFLM, batch: list[np.ndarray]) -> list[np.ndarray]:
    """NLL (nats) of tokens 1.. of each window, per token."""
    width = max(len(w) for w in batch)
    ids = torch.full((len(batch), width), lm.pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for j, w in enumerate(batch):
        ids[j, :len(w)] = torch.from_numpy(w)
        mask[j, :len(w)] = 1
    hidden = lm._decoder(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device)).last_hidden_state
    out = []
    for j, w in enumerate(batch):  # one row at a time keeps the vocabulary-sized logits small
        logits = lm._head(hidden[j, :len(w) - 1]).float()
        nll = torch.nn.functional.cross_entropy(logits, ids[j, 1:len(w)].to(lm.device), reduction="none")
        out.append(nll.double().cpu().numpy())
    return out


def token_nll(lm: HFLM, stream: np.ndarray) -> np.ndarray:
    """NLL (nats) of stream[1:], each token predicted once from up to max_length - 1 tokens before it."""
    chunks = windows(stream, lm.max_length)
    parts = []
    for start in range(0, len(chunks), lm.batch_size):
        parts += window_nll(lm, chunks[start:start + lm.batch_size])
    return np.concatenate(parts) if parts else np.empty(0)


def documents(tokens: np.ndarray, eos: int, limit: int | None) -> list[tuple[int, int]]:
    """(start, end) of each document's text tokens (its eos, when present, at `end`)."""
    ends = np.flatnonzero(np.asarray(tokens) == eos).tolist()
    if not ends or ends[-1] != len(tokens) - 1:
        ends.append(len(tokens))  # a last document without its eos
    spans, start = [], 0
    for end in ends:
        if end > start:
            spans.append((start, end))
        start = end + 1
    return spans[:limit]


def bucket_docs(lm: HFLM, bucket: str, tokens: np.ndarray, eos: int, limit: int | None) -> list[dict]:
    vocab = lm._head.out_features if hasattr(lm._head, "out_features") else None
    if vocab is not None and len(tokens) and int(tokens.max()) >= vocab:
        raise ValueError(f"The pack holds token id {int(tokens.max())} but the model's vocabulary has {vocab}: "
                         "evaluate bits-per-byte with the tokenizer the pack was made with")
    spans = documents(tokens, eos, limit)
    if not spans:
        return []
    stream = np.concatenate([[eos], np.asarray(tokens[:spans[-1][1]], dtype=np.int64)])
    nll = token_nll(lm, stream)  # nll[i] is the loss of tokens[i]
    records, seen = [], set()
    for start, end in spans:
        ids = np.asarray(tokens[start:end], dtype=np.int64)
        text = lm.tokenizer.decode(ids.tolist(), skip_special_tokens=False, clean_up_tokenization_spaces=False)
        doc_id = f"{bucket}/{hashlib.sha256(text.encode()).hexdigest()[:16]}"
        if doc_id in seen:  # the same text twice in one bucket: keep ids unique
            doc_id += f"#{start}"
        seen.add(doc_id)
        nats, nbytes = float(nll[start:end].sum()), len(text.encode("utf-8"))
        bits = nats / math.log(2)
        records.append({"id": doc_id, "domain": bucket, "lang": LANG.get(bucket, bucket), "nll_bits": bits,
                        "bytes": nbytes, "tokens": end - start,
                        "score": bits / nbytes if nbytes else float("nan")})
    return records


def run_bpb(lm: HFLM, pack_dir: Path, limit: int | None = None) -> tuple[dict, list[dict]]:
    """{bpb, bpb_<bucket>, ppl_<bucket>, n, docs} and one record per document."""
    meta = read_pack(pack_dir)
    eos = meta.get("eos_id", lm.tokenizer.eos_token_id)
    metrics, records = {}, []
    for bucket, info in sorted(meta["val"].items()):
        tokens = np.memmap(Path(pack_dir) / info["file"], dtype=np.dtype(meta["dtype"]), mode="r")
        docs = bucket_docs(lm, bucket, tokens, eos, limit)
        bits, nbytes, count = (sum(d[k] for d in docs) for k in ("nll_bits", "bytes", "tokens"))
        if limit is None and info.get("bytes") is not None and nbytes != info["bytes"]:
            log.warning("bpb: bucket %s decodes to %d bytes where pack.json lists %d (a tokenizer that does not "
                        "round-trip every character); bpb uses the bytes of the text scored", bucket, nbytes,
                        info["bytes"])
        metrics[f"bpb_{bucket}"] = bits / nbytes if nbytes else float("nan")
        metrics[f"ppl_{bucket}"] = math.exp(bits * math.log(2) / count) if count else float("nan")
        records += docs
    total_bits, total_bytes = sum(r["nll_bits"] for r in records), sum(r["bytes"] for r in records)
    metrics["bpb"] = total_bits / total_bytes if total_bytes else float("nan")
    metrics["n"] = sum(r["tokens"] for r in records)
    metrics["docs"] = len(records)
    return metrics, records
