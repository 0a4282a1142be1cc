"""Activation checkpointing recomputes, it does not change the math: equal losses and gradients."""

from __future__ import annotations

import pytest
import torch

from components.config import ModelConfig
from components.model import apply_activation_checkpointing, build_model
from components.model.checkpointing import regions
from components.pretrain.runtime import CausalLMLoss

pytestmark = pytest.mark.unit
MODEL = ModelConfig(n_layer=2, d_model=64, n_head=4, n_kv_head=2, d_ffn=176, vocab_size=300, max_seq_len=32)


def _loss_and_grads(mode: str, saved: list | None = None):
    lm = build_model(MODEL, seed=3)
    assert apply_activation_checkpointing(lm, mode) == (0 if mode == "none" else MODEL.n_layer)
    batch = torch.randint(0, MODEL.vocab_size, (4, 33), generator=torch.Generator().manual_seed(0))
    hooks = torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t)
    with hooks if saved is not None else torch.enable_grad():
        loss = CausalLMLoss(lm)(batch[:, :-1], batch[:, 1:])
    loss.backward()
    return float(loss.detach()), {n: p.grad.clone() for n, p in lm.named_parameters()}


@pytest.mark.parametrize("mode", ["full", "selective"])
def test_same_loss_and_gradients_as_without(mode):
    loss, grads = _loss_and_grads("none")
    loss_ckpt, grads_ckpt = _loss_and_grads(mode)
    assert loss_ckpt == pytest.approx(loss, abs=1e-6)
    for name, grad in grads.items():
        torch.testing.assert_close(grads_ckpt[name], grad, rtol=1e-5, atol=1e-6)


def test_checkpointing_holds_fewer_values_for_the_backward():
    held = {}
    for mode in ("none", "selective", "full"):
        held[mode] = []
        _loss_and_grads(mode, held[mode])
    assert sum(held["full"]) < sum(held["selective"]) < sum(held["none"])


def test_no_gradients_run_the_plain_forward_and_unknown_modes_fail():
    lm = build_model(MODEL)
    apply_activation_checkpointing(lm, "full")
    with torch.no_grad():
        assert lm(torch.zeros(1, 4, dtype=torch.long)).logits.shape == (1, 4, MODEL.vocab_size)
    with pytest.raises(ValueError, match="one of none, full, selective"):
        regions(lm, "some")
