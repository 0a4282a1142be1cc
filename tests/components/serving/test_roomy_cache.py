"""RoomyLayer holds exactly what DynamicLayer holds, without copying the cache at every decode step."""

from __future__ import annotations

import pytest
import torch
from transformers.cache_utils import DynamicLayer

from components.serving.roomy_cache import MIN_ROOM, RoomyLayer, roomy_cache

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


def test_a_model_with_sliding_window_layers_is_refused():
    from transformers import MistralConfig

    config = MistralConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, num_key_value_heads=2,
                           intermediate_size=64, vocab_size=100, sliding_window=16)
    with pytest.raises(NotImplementedError, match="full-attention"):
        roomy_cache(config)
