"""Sample the mixture and train the sentencepiece BPE model.

Settings that make it byte-level and lossless for real text: `byte_fallback` (an unseen character
becomes its UTF-8 bytes), `split_digits` (numbers are digit sequences, as in DeepSeek),
`normalization_rule_name="identity"`, `remove_extra_whitespace=False` and no dummy prefix (spaces,
newlines and indentation survive), `allow_whitespace_only_pieces` (runs of indentation become
tokens). A small vocabulary cannot hold every Chinese character, so the character coverage is
capped so that the characters it requires fit in half of the learnable vocabulary; rarer characters
fall back to bytes.
"""

from __future__ import annotations

import io
import os
from collections import Counter
from pathlib import Path

import sentencepiece as spm

SPECIALS = {"unk": "<unk>", "bos": "<s>", "eos": "</s>", "pad": "<pad>"}
ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
RESERVED = len(SPECIALS) + len(ROLE_TOKENS) + 256  # specials, roles, byte pieces
MAX_PIECE_CHARS = 16_384  # training sentences are cut at line breaks to at most this length


def rare_chars(texts: list[str], vocab_size: int, coverage: float) -> tuple[set[str], float]:
    """Characters left out of training so the required ones fit half the learnable vocabulary.

    sentencepiece insists on a coverage of at least 0.98 of the characters it is given, which a
    1k vocabulary cannot hold for Chinese; the rarest characters are therefore removed from the
    training sentences (they still encode, through byte fallback). Returns (rare, coverage of the rest).
    """
    counts: Counter = Counter()
    for text in texts:
        counts.update(text)
    ranked = [c for c, _ in counts.most_common()]
    total = sum(counts.values()) or 1
    budget = max(1, (vocab_size - RESERVED) // 2)
    cum, keep = 0, 0
    while keep < min(budget, len(ranked)) and cum / total < coverage:
        cum += counts[ranked[keep]]
        keep += 1
    return set(ranked[keep:]), cum / total


def pieces(texts: list[str], rare: set[str] = frozenset()) -> list[str]:
    """Training sentences: documents cut at rare characters (dropped) and at line breaks into
    pieces of at most MAX_PIECE_CHARS."""
    out = []
    table = {ord(c): "\0" for c in rare}
    for text in (part for t in texts for part in (t.translate(table).split("\0") if rare else [t])):
        while len(text) > MAX_PIECE_CHARS:
            cut = text.rfind("\n", 0, MAX_PIECE_CHARS)
            cut = cut + 1 if cut > 0 else MAX_PIECE_CHARS
            out.append(text[:cut])
            text = text[cut:]
        if text:
            out.append(text)
    return out


def train(texts: list[str], vocab_size: int, coverage: float, model_path: Path) -> dict:
    """Train on `texts`, write the model file; returns the settings that were used."""
    if not texts:
        raise ValueError("The tokenizer sample is empty: the data stage kept no documents "
                         "(see its report/counts.json and quarantine.jsonl)")
    rare, covered = rare_chars(texts, vocab_size, coverage)
    sentences = pieces(texts, rare)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=model, model_type="bpe", vocab_size=vocab_size,
        byte_fallback=True, split_digits=True, normalization_rule_name="identity", remove_extra_whitespaces=False,
        add_dummy_prefix=False, allow_whitespace_only_pieces=True, split_by_whitespace=True,
        character_coverage=max(coverage, 0.98), max_sentence_length=4 * MAX_PIECE_CHARS, unk_id=0, bos_id=1, eos_id=2, pad_id=3,
        unk_piece=SPECIALS["unk"], bos_piece=SPECIALS["bos"], eos_piece=SPECIALS["eos"], pad_piece=SPECIALS["pad"],
        user_defined_symbols=ROLE_TOKENS, num_threads=os.cpu_count() or 1, minloglevel=2)
    model_path.write_bytes(model.getvalue())
    return {"character_coverage": round(covered, 6), "rare_chars_dropped": len(rare), "sentences": len(sentences)}
