"""The pack reader and the seeded, resumable data order."""

from __future__ import annotations

import numpy as np
import pytest

from components.pretrain import data
from components.pretrain.data import Pack, TrainOrder, val_windows
from tests.components.pretrain.conftest import SEQ_LEN

pytestmark = pytest.mark.unit


def _shards():
    return [np.arange(0, 41), np.arange(100, 150), np.arange(200, 205)]  # 10, 12 and 1 windows of 4 + 1


def test_every_window_once_per_epoch_and_seeded(monkeypatch):
    monkeypatch.setattr(data, "BLOCK", 4)  # several shuffle blocks and a partial one
    order = TrainOrder(_shards(), seq_len=4, seed=7)
    assert order.size == 23
    first = [order.window(p) for p in range(23)]
    assert sorted(first) == list(range(23))
    assert first != list(range(23))
    assert first == [TrainOrder(_shards(), 4, 7).window(p) for p in range(23)]
    assert first != [TrainOrder(_shards(), 4, 8).window(p) for p in range(23)]
    second = [order.window(p) for p in range(23, 46)]
    assert sorted(second) == list(range(23)) and second != first


def test_batches_are_windows_with_next_token_targets():
    order = TrainOrder(_shards(), seq_len=4, seed=0)
    batch = order.batch(0, 23)
    assert batch.shape == (23, 5) and batch.dtype == np.int64
    assert all(np.array_equal(row, np.arange(row[0], row[0] + 5)) for row in batch)  # contiguous, no shard crossing
    starts = sorted(row[0] for row in batch)
    assert starts == [*range(0, 40, 4), *range(100, 148, 4), 200]
    assert np.array_equal(order.batch(5, 3), batch[5:8])  # addressable by position: resumable


def test_pack_open_and_val_windows(inputs):
    pack = Pack.open(inputs["pack"], verify=True)
    assert pack.buckets == ["code", "en", "zh"] and pack.seq_len == SEQ_LEN
    windows = val_windows(pack.val("en"), SEQ_LEN, limit=5)
    assert windows.shape == (5, SEQ_LEN + 1)
    assert np.array_equal(windows[1, 0], windows[0, -1])  # stride seq_len


def test_empty_training_data_is_an_error():
    with pytest.raises(ValueError, match="no sequence"):
        TrainOrder([np.arange(3)], seq_len=4, seed=0)
