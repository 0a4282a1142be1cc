"""Data flows: clean/dedup/decontaminate/remix, train the tokenizer, pack token shards."""

from __future__ import annotations

from prefect import flow

from components.artifacts import StageResult
from components.config import DataConfig, PackConfig, TokenizerConfig
from flows.common import run_stage


@flow(name="data_prep")
def data_prep(corpus_uri: str, cfg: DataConfig = DataConfig()) -> StageResult:
    """Normalise, tag, filter, deduplicate across all sources, decontaminate and remix the corpus."""
    return run_stage("data", cfg, {"corpus": corpus_uri})


@flow(name="tokenizer")
def tokenizer(data_uri: str, cfg: TokenizerConfig = TokenizerConfig()) -> StageResult:
    """Train the byte-level BPE tokenizer on a sample of the mixture and export it for Hugging Face."""
    return run_stage("tokenizer", cfg, {"data": data_uri})


@flow(name="pack")
def pack(data_uri: str, tokenizer_uri: str, cfg: PackConfig = PackConfig()) -> StageResult:
    """Tokenise the mixture into fixed-length shards with a validation split per domain."""
    return run_stage("pack", cfg, {"data": data_uri, "tokenizer": tokenizer_uri})
