"""RoomyLayer holds exactly what DynamicLayer holds, without copying the cache at every decode step, and rows join,
leave and lose padding columns without copying the rows that stay."""

from __future__ import annotations

import pytest
import torch
from transformers.cache_utils import DynamicLayer

from components.serving.roomy_cache import MIN_ROOM, RoomyLayer, compaction, roomy_cache

pytestmark = pytest.mark.unit


def kv(batch: int, length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 2, length, 8, generator=g), torch.randn(batch, 2, length, 8, generator=g)


def test_updates_give_what_dynamic_layer_gives_and_steps_write_in_place():
    roomy, plain = RoomyLayer(), DynamicLayer()
    for layer in (roomy, plain):
        layer.update(*kv(3, 5, seed=0))
    buffer = roomy._buffers[0].data_ptr()
    for step in range(MIN_ROOM):
        got, want = roomy.update(*kv(3, 1, seed=step + 1)), plain.update(*kv(3, 1, seed=step + 1))
        assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
    assert roomy._buffers[0].data_ptr() == buffer  # 32 steps, no reallocation
    roomy.update(*kv(3, 40, seed=99))
    plain.update(*kv(3, 40, seed=99))  # past the room: a bigger buffer, same values
    assert torch.equal(roomy.keys, plain.keys) and torch.equal(roomy.values, plain.values)
    assert roomy.get_seq_length() == 5 + MIN_ROOM + 40


def test_assigned_keys_and_values_are_taken_over():
    """The engine selects rows and cuts padding columns by assigning keys/values; updates carry on from those."""
    roomy, plain = RoomyLayer(), DynamicLayer()
    for layer in (roomy, plain):
        layer.update(*kv(4, 6, seed=0))
        layer.batch_select_indices(torch.tensor([0, 2, 3]))
        layer.keys, layer.values = layer.keys[:, :, 2:], layer.values[:, :, 2:]
    for step in range(3):
        got, want = roomy.update(*kv(3, 1, seed=step + 1)), plain.update(*kv(3, 1, seed=step + 1))
        assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))


def left_padded(x: torch.Tensor, width: int) -> torch.Tensor:
    return torch.nn.functional.pad(x, (0, 0, width - x.shape[-2], 0))


def test_rows_join_right_aligned_with_zero_padding_leave_by_compaction_and_lose_padding_columns():
    """What the engine did with torch.cat / index / slicing (copying every row), done in the buffers."""
    roomy = RoomyLayer()
    roomy.update(*kv(2, 5, seed=0))
    want_k, want_v = kv(2, 5, seed=0)
    for seed, (rows, length) in enumerate([(3, 9), (1, 4), (2, 30)], start=1):  # longer, shorter, past the room left
        keys, values = kv(rows, length, seed=seed)
        roomy.add_rows(keys, values)
        width = max(want_k.shape[-2], length)
        want_k = torch.cat([left_padded(want_k, width), left_padded(keys, width)])
        want_v = torch.cat([left_padded(want_v, width), left_padded(values, width)])
        assert torch.equal(roomy.keys, want_k) and torch.equal(roomy.values, want_v)  # padding: zeros
        step = kv(roomy.rows, 1, seed=10 + seed)
        roomy.update(*step)
        want_k, want_v = torch.cat([want_k, step[0]], dim=2), torch.cat([want_v, step[1]], dim=2)
    buffer = roomy._buffers[0].data_ptr()
    order = compaction([0, 2, 5, 6, 7], roomy.rows)
    assert order == [0, 5, 2, 6, 7]  # rows 1, 3 and 4 leave: row 5 fills the hole at 1; 6 and 7 stay put
    roomy.keep_rows(order)
    roomy.cut(20)
    want_k, want_v = want_k[order][:, :, 20:], want_v[order][:, :, 20:]
    assert torch.equal(roomy.keys, want_k) and torch.equal(roomy.values, want_v)
    step = kv(5, 1, seed=99)
    got = roomy.update(*step)
    assert torch.equal(got[0], torch.cat([want_k, step[0]], dim=2)) and torch.equal(got[1], torch.cat([want_v, step[1]], 2))
    assert roomy._buffers[0].data_ptr() == buffer and roomy.get_seq_length() == want_k.shape[-2] + 1


@pytest.mark.parametrize(("keep", "rows", "order"), [([0, 1, 2], 3, [0, 1, 2]), ([2], 3, [2]), ([], 2, []),
                                                     ([1, 3], 4, [3, 1]), ([0, 3], 4, [0, 3])])
def test_compaction_moves_only_rows_from_past_the_kept_ones(keep, rows, order):
    assert compaction(keep, rows) == order


def test_a_model_with_sliding_window_layers_is_refused():
    from transformers import MistralConfig

    config = MistralConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, num_key_value_heads=2,
                           intermediate_size=64, vocab_size=100, sliding_window=16)
    with pytest.raises(NotImplementedError, match="full-attention"):
        roomy_cache(config)
