"""Shared inputs for the pretrain tests: one tokenizer and pack per session, copied per test when
a test damages them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from components.config import ModelConfig, PretrainConfig
from tests.components.pretrain.fixtures import documents, make_pack, make_tokenizer

SEQ_LEN = 32


@pytest.fixture(scope="session")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """{"pack": dir, "tokenizer": dir} built once per session (read-only for tests)."""
    root = tmp_path_factory.mktemp("pretrain-inputs")
    docs = documents(900)
    tokenizer = make_tokenizer(root / "tokenizer", docs)
    make_pack(root / "pack", tokenizer, docs, SEQ_LEN)
    return {"pack": root / "pack", "tokenizer": root / "tokenizer"}


@pytest.fixture
def own_inputs(inputs, tmp_path) -> dict[str, Path]:
    """A private copy of the inputs that a test may damage."""
    return {name: Path(shutil.copytree(path, tmp_path / name)) for name, path in inputs.items()}


def vocab(inputs: dict[str, Path]) -> int:
    import json

    return json.loads((inputs["pack"] / "pack.json").read_text())["vocab_size"]


def tiny_model(inputs, **kw) -> ModelConfig:
    return ModelConfig(**{"n_layer": 2, "d_model": 64, "n_head": 4, "n_kv_head": 2, "d_ffn": 176,
                          "vocab_size": vocab(inputs), "max_seq_len": 64, **kw})


def tiny_train(**kw) -> PretrainConfig:
    return PretrainConfig(**{"total_tokens": 16 * 512, "batch_tokens": 512, "micro_batch": 8, "lr": 3e-3,
                             "warmup_steps": 3, "eval_every": 5, "checkpoint_every": 5, "num_workers": 0,
                             "precision": "fp32", "peak_flops": 1e11, **kw})
