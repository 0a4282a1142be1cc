"""The `tokenizer` StageSpec: data artifact in, Hugging Face tokenizer directory out.

inputs {"data": uri} → out/
    hf/          tokenizer.model, tokenizer.json, tokenizer_config.json (chat template), special tokens
    report/      tokenizer.json (counts), compression.md (chars and bytes per token per bucket)
"""

from __future__ import annotations

from operator import attrgetter
from pathlib import Path

import sentencepiece as spm

from components.artifacts import StageSpec
from components.config import TokenizerConfig
from components.tokenizer import hf, report
from components.tokenizer.sample import draw
from components.tokenizer.train import train

AGREEMENT_DOCS = 200


def work(cfg: TokenizerConfig, inputs: dict[str, Path], out: Path) -> dict:
    texts, held, held_out = draw(Path(inputs["data"]) / "mixture", cfg.sample_chars)
    model = out / "spm.model"
    settings = train(texts, cfg.vocab_size, cfg.character_coverage, model)
    hf.export(model, out / "hf")
    model.unlink()  # the copy in hf/ is the one to use
    sp = spm.SentencePieceProcessor(model_file=str(out / "hf" / "tokenizer.model"))
    check = [t for docs in held.values() for t in docs[:AGREEMENT_DOCS // max(1, len(held))]]
    counts = {"vocab_size": sp.get_piece_size(), "sample_docs": len(texts), "sample_chars": sum(map(len, texts)),
              **settings, "compression": report.compression(sp, held), "compression_on_heldout": held_out,
              "hf_agreement": report.hf_agreement(sp, hf.load(out / "hf"), check), "vocab": report.vocab_stats(sp)}
    report.write(out / "report", counts)
    return counts


STAGE = StageSpec("tokenizer", 2, work, config=TokenizerConfig, section=attrgetter("tokenizer"))
