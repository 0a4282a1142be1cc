"""Bad input fails with a clear message before any training starts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from components.pretrain.trainer import pretrain
from tests.components.pretrain.conftest import SEQ_LEN, tiny_model, tiny_train

pytestmark = pytest.mark.unit


def _run(inputs, tmp_path, model=None, train=None, seq_len=None):
    pretrain(model or tiny_model(inputs), train or tiny_train(), inputs["pack"], inputs["tokenizer"],
             tmp_path / "out", tmp_path / "ckpt", seq_len=seq_len, progress=False)


def _assert_not_started(tmp_path):
    assert not (tmp_path / "ckpt").exists() and not (tmp_path / "out").exists()


def test_shard_with_wrong_size(own_inputs, tmp_path):
    shard = own_inputs["pack"] / "train" / "train_00001.bin"
    shard.write_bytes(shard.read_bytes()[:-2])
    with pytest.raises(ValueError, match="does not match pack.json.*rebuild the pack"):
        _run(own_inputs, tmp_path)
    _assert_not_started(tmp_path)


def test_shard_with_changed_content(own_inputs, tmp_path):
    shard = own_inputs["pack"] / "train" / "train_00002.bin"
    tokens = np.fromfile(shard, dtype=np.uint16)
    tokens[5] = (tokens[5] + 1) % 100
    tokens.tofile(shard)
    with pytest.raises(ValueError, match="sha256"):
        _run(own_inputs, tmp_path)
    _assert_not_started(tmp_path)


def test_missing_pack_manifest(own_inputs, tmp_path):
    (own_inputs["pack"] / "pack.json").unlink()
    with pytest.raises(FileNotFoundError, match="pack.json"):
        _run(own_inputs, tmp_path)


def test_tokenizer_vocabulary_differs_from_model(own_inputs, tmp_path):
    manifest = json.loads((own_inputs["pack"] / "pack.json").read_text())
    manifest["vocab_size"] += 64  # a pack that agrees with the model, a tokenizer that does not
    (own_inputs["pack"] / "pack.json").write_text(json.dumps(manifest))
    model = tiny_model(own_inputs)
    with pytest.raises(ValueError, match="tokenizer has 320 tokens but model.vocab_size is 384"):
        _run(own_inputs, tmp_path, model=model)
    _assert_not_started(tmp_path)


def test_pack_vocabulary_differs_from_model(inputs, tmp_path):
    with pytest.raises(ValueError, match="vocabulary of 320 but model.vocab_size is 512"):
        _run(inputs, tmp_path, model=tiny_model(inputs, vocab_size=512))


def test_global_batch_not_divisible(inputs, tmp_path):
    with pytest.raises(ValueError, match=r"not a multiple of micro_batch × workers × seq_len = 8 × 3 × 32"):
        _run(inputs, tmp_path, train=tiny_train(batch_tokens=1024, num_workers=3))
    _assert_not_started(tmp_path)


def test_sequence_beyond_model_context(inputs, tmp_path):
    with pytest.raises(ValueError, match=f"{SEQ_LEN} tokens, beyond the model's context"):
        _run(inputs, tmp_path, model=tiny_model(inputs, max_seq_len=16))
    _assert_not_started(tmp_path)


def test_config_seq_len_differs_from_pack(inputs, tmp_path):
    with pytest.raises(ValueError, match="pack.seq_len is 64"):
        _run(inputs, tmp_path, seq_len=64)


def test_token_ids_beyond_vocabulary(own_inputs, tmp_path):
    import hashlib

    shard = own_inputs["pack"] / "train" / "train_00000.bin"
    tokens = np.fromfile(shard, dtype=np.uint16)
    tokens[0] = 5000
    tokens.tofile(shard)
    manifest = json.loads((own_inputs["pack"] / "pack.json").read_text())
    manifest["train"]["shards"][0]["sha256"] = hashlib.sha256(shard.read_bytes()).hexdigest()
    (own_inputs["pack"] / "pack.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="token id 5000, beyond the vocabulary"):
        _run(own_inputs, tmp_path)
