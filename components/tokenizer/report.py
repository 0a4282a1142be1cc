"""Tokenizer measurements: compression per bucket and agreement of the HF export with sentencepiece."""

from __future__ import annotations

import json
from pathlib import Path

import sentencepiece as spm


def compression(sp: spm.SentencePieceProcessor, texts: dict[str, list[str]]) -> dict[str, dict]:
    """Characters and UTF-8 bytes per token for each bucket's texts."""
    out = {}
    for bucket, docs in sorted(texts.items()):
        tokens = sum(len(ids) for ids in sp.encode(docs))
        chars, nbytes = sum(map(len, docs)), sum(len(d.encode("utf-8")) for d in docs)
        out[bucket] = {"docs": len(docs), "tokens": tokens, "chars_per_token": round(chars / max(1, tokens), 3),
                       "bytes_per_token": round(nbytes / max(1, tokens), 3)}
    return out


def hf_agreement(sp: spm.SentencePieceProcessor, hf_tok, texts: list[str]) -> dict:
    """How many texts the HF tokenizer encodes to exactly sentencepiece's ids."""
    mismatched = [i for i, t in enumerate(texts) if hf_tok(t)["input_ids"] != sp.encode(t)]
    return {"checked": len(texts), "mismatched": len(mismatched)}


def vocab_stats(sp: spm.SentencePieceProcessor) -> dict:
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    han = sum(1 for p in pieces if any("\u4e00" <= c <= "\u9fff" for c in p))
    space = sum(1 for p in pieces if p and set(p) <= {"\u2581"})
    return {"pieces": len(pieces), "byte_pieces": sum(sp.is_byte(i) for i in range(len(pieces))),
            "pieces_with_han": han, "whitespace_pieces": space,
            "digit_pieces": sum(1 for p in pieces if p.strip("\u2581").isdigit())}


def write(report: Path, counts: dict) -> None:
    report.mkdir(parents=True, exist_ok=True)
    (report / "tokenizer.json").write_text(json.dumps(counts, indent=2, ensure_ascii=False))
    rows = ["| bucket | docs | tokens | chars/token | bytes/token |", "|---|---|---|---|---|"]
    rows += [f"| {b} | {r['docs']} | {r['tokens']} | {r['chars_per_token']} | {r['bytes_per_token']} |"
             for b, r in counts["compression"].items()]
    (report / "compression.md").write_text("\n".join(rows) + "\n")
