"""The `pack` StageSpec: data + tokenizer artifacts in, memmap token shards out.

inputs {"data": uri, "tokenizer": uri} → out/
    train/train_NNNNN.bin   flat token ids (dtype in pack.json), eos after each document, whole seq_len sequences
    val/<bucket>.bin        held-out documents of each bucket, same layout
    pack.json               {dtype, seq_len, vocab_size, eos_id, bos_id, pad_id,
                             train: {shards: [{file, tokens, sha256}], tokens_per_bucket, ...},
                             val: {bucket: {file, tokens, bytes, docs}}}
    report/pack.md          tokens per bucket and split
Read it with `components.data.shards.PackedData`.
"""

from __future__ import annotations

from operator import attrgetter
from pathlib import Path

from components.artifacts import StageSpec
from components.config import PackConfig
from components.pack.pack import pack


def work(cfg: PackConfig, inputs: dict[str, Path], out: Path) -> dict:
    manifest = pack(cfg, Path(inputs["data"]) / "mixture", Path(inputs["tokenizer"]) / "hf", out)
    train, val = manifest["train"], manifest["val"]
    rows = ["| bucket | train tokens | val tokens | val bytes |", "|---|---|---|---|"]
    for b in sorted(set(train["tokens_per_bucket"]) | set(val)):
        v = val.get(b, {})
        rows.append(f"| {b} | {train['tokens_per_bucket'].get(b, 0)} | {v.get('tokens', 0)} | {v.get('bytes', 0)} |")
    (out / "report").mkdir(exist_ok=True)
    (out / "report" / "pack.md").write_text("\n".join(rows) + "\n")
    return {"dtype": manifest["dtype"], "train_tokens": train["tokens"], "train_shards": len(train["shards"]),
            "train_docs": train["docs"], "tokens_per_bucket": train["tokens_per_bucket"],
            "dropped_tail_tokens": train["dropped_tail_tokens"],
            "val": {b: {"tokens": v["tokens"], "bytes": v["bytes"], "docs": v["docs"]} for b, v in val.items()}}


STAGE = StageSpec("pack", 1, work, config=PackConfig, section=attrgetter("pack"))
