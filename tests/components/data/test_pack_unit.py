"""Packing pieces without Ray: dtype by vocabulary size, shard writing, the shard reader's checks."""

import json

import numpy as np
import pytest

from components.data.shards import PackedData
from components.pack.pack import ShardWriter, dtype_for

pytestmark = pytest.mark.unit


def test_dtype_by_vocab_size():
    assert dtype_for(1024) == np.uint16 and dtype_for(65536) == np.uint16
    assert dtype_for(65537) == np.uint32 and dtype_for(102_400) == np.uint32


def _docs(rng, n, eos=2):
    return [np.r_[rng.integers(8, 1000, rng.integers(1, 40)), eos].astype(np.uint16) for _ in range(n)]


def test_shards_hold_whole_sequences_and_every_token_in_order(tmp_path):
    rng = np.random.default_rng(0)
    docs = _docs(rng, 200)
    writer = ShardWriter(tmp_path / "train", per_shard=256, dtype=np.dtype(np.uint16))
    for d in docs:
        writer.add(d)
    tail = writer.close(seq_len=64)
    stream = np.concatenate(docs)
    written = np.concatenate([np.fromfile(tmp_path / s["file"], np.uint16) for s in writer.shards])
    assert len(written) + tail == len(stream) and (written == stream[:len(written)]).all()
    assert all(s["tokens"] == 256 for s in writer.shards[:-1]) and writer.shards[-1]["tokens"] % 64 == 0
    assert tail < 64


def _pack_dir(tmp_path, tokens: np.ndarray) -> None:
    (tmp_path / "train").mkdir()
    (tmp_path / "val").mkdir()
    tokens.astype(np.uint16).tofile(tmp_path / "train" / "train_00000.bin")
    np.array([5, 6, 2], np.uint16).tofile(tmp_path / "val" / "en.bin")
    manifest = {"dtype": "uint16", "seq_len": 4, "vocab_size": 1024, "eos_id": 2, "bos_id": 1, "pad_id": 3,
                "train": {"shards": [{"file": "train/train_00000.bin", "tokens": len(tokens), "sha256": "0" * 64}],
                          "tokens": len(tokens), "tokens_per_bucket": {"en": len(tokens)}},
                "val": {"en": {"file": "val/en.bin", "tokens": 3, "bytes": 11, "docs": 1}}}
    (tmp_path / "pack.json").write_text(json.dumps(manifest))


def test_reader_maps_shards_and_checks_sizes(tmp_path):
    _pack_dir(tmp_path, np.arange(12))
    data = PackedData.open(tmp_path)
    assert data.train_tokens == 12 and [s.shape for s in data.sequences()] == [(3, 4)]
    assert data.val("en").tolist() == [5, 6, 2] and data.val_bytes("en") == 11
    with pytest.raises(ValueError, match="sha256"):
        PackedData.open(tmp_path, verify=True)
    np.arange(10, dtype=np.uint16).tofile(tmp_path / "train" / "train_00000.bin")
    with pytest.raises(ValueError, match="12 uint16 tokens"):
        PackedData.open(tmp_path)
    with pytest.raises(FileNotFoundError, match="pack.json"):
        PackedData.open(tmp_path / "train")
