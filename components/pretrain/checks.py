"""Bad input is found before training starts: every check raises a ValueError or FileNotFoundError
that says what is wrong and what to do.

Damaged shards (size or sha256 differ from pack.json, token ids beyond the vocabulary), a tokenizer
or pack whose vocabulary differs from the model's, a global batch that micro-batch × workers ×
seq_len does not divide, and sequences longer than the model's context.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from components.config import ModelConfig, PretrainConfig
from components.pretrain.data import Pack


def check_pack(pack_dir: Path | str, model: ModelConfig) -> Pack:
    """Open the pack with sha256 checks and make sure its sequences and tokens fit the model."""
    pack = Pack.open(pack_dir)  # sizes; the contents are read once below (sha256 and largest id)
    if pack.vocab_size != model.vocab_size:
        raise ValueError(f"The pack was tokenised with a vocabulary of {pack.vocab_size} but model.vocab_size is "
                         f"{model.vocab_size}: set model.vocab_size={pack.vocab_size} or re-pack with the "
                         "matching tokenizer")
    if pack.seq_len > model.max_seq_len:
        raise ValueError(f"The pack's sequences have {pack.seq_len} tokens, beyond the model's context "
                         f"(model.max_seq_len={model.max_seq_len}): raise model.max_seq_len or re-pack with "
                         f"pack.seq_len <= {model.max_seq_len}")
    for entry in pack.manifest["train"]["shards"]:
        path = pack.root / entry["file"]
        digest, top = _scan(path, pack.dtype)
        if "sha256" in entry and digest != entry["sha256"]:
            raise ValueError(f"Shard {path} does not match its sha256 in pack.json: the pack is damaged or was "
                             "modified; rebuild the pack artifact")
        if top >= model.vocab_size:
            raise ValueError(f"Shard {path} holds token id {top}, beyond the vocabulary ({model.vocab_size}): "
                             "the pack does not belong to this tokenizer; rebuild it")
    return pack


def _scan(path: Path, dtype: np.dtype) -> tuple[str, int]:
    """sha256 and largest token id of a shard, in one read."""
    digest, top = hashlib.sha256(), 0
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 24), b""):
            digest.update(chunk)
            top = max(top, int(np.frombuffer(chunk, dtype=dtype).max(initial=0)))
    return digest.hexdigest(), top


def check_tokenizer(tokenizer_dir: Path, model: ModelConfig):
    """Load the HF tokenizer (`<dir>/hf` or `<dir>`) and compare its vocabulary with the model's."""
    from transformers import AutoTokenizer

    hf = tokenizer_dir / "hf" if (tokenizer_dir / "hf").is_dir() else tokenizer_dir
    if not hf.is_dir():
        raise FileNotFoundError(f"No tokenizer at {hf}: pass the tokenizer stage's artifact directory")
    tokenizer = AutoTokenizer.from_pretrained(str(hf))
    if len(tokenizer) != model.vocab_size:
        raise ValueError(f"The tokenizer has {len(tokenizer)} tokens but model.vocab_size is {model.vocab_size}: "
                         f"set model.vocab_size={len(tokenizer)} (and tokenizer.vocab_size) so they agree")
    return tokenizer


def check_batch(cfg: PretrainConfig, seq_len: int) -> int:
    """Validate the batch layout; returns the number of optimizer steps."""
    per_pass = cfg.micro_batch * max(cfg.num_workers, 1) * seq_len
    if cfg.batch_tokens % per_pass:
        raise ValueError(f"pretrain.batch_tokens ({cfg.batch_tokens}) is not a multiple of micro_batch × workers × "
                         f"seq_len = {cfg.micro_batch} × {max(cfg.num_workers, 1)} × {seq_len} = {per_pass}: "
                         f"use a multiple such as {max(cfg.batch_tokens // per_pass, 1) * per_pass}")
    steps = cfg.total_tokens // cfg.batch_tokens
    if steps < 1:
        raise ValueError(f"pretrain.total_tokens ({cfg.total_tokens}) is less than one batch "
                         f"({cfg.batch_tokens} tokens): raise total_tokens or lower batch_tokens")
    return steps


def check_seq_len(expected: int | None, pack: Pack) -> None:
    if expected is not None and expected != pack.seq_len:
        raise ValueError(f"pack.seq_len is {expected} in the config but the pack artifact has sequences of "
                         f"{pack.seq_len}: use the pack built from this config")


