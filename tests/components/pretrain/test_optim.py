"""fp32 master weights for a bf16 model: the same AdamW trajectory as fp32 weights given the same gradients."""

from __future__ import annotations

import torch

from components.pretrain.optim import MasterWeightsAdamW


def test_master_weights_adamw_follows_adamw_on_fp32_weights():
    torch.manual_seed(0)
    reference = [torch.nn.Parameter(torch.randn(8, 4)), torch.nn.Parameter(torch.randn(4))]
    model = [torch.nn.Parameter(p.detach().to(torch.bfloat16)) for p in reference]
    for p in reference:  # both start from the bf16 weights
        p.data.copy_(p.data.to(torch.bfloat16))
    ours = MasterWeightsAdamW([{"params": model[:1], "weight_decay": 0.1}, {"params": model[1:], "weight_decay": 0.0}],
                              lr=1e-3, betas=(0.9, 0.95))
    theirs = torch.optim.AdamW([{"params": reference[:1], "weight_decay": 0.1},
                                {"params": reference[1:], "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.95))
    for _ in range(3):
        grads = [torch.randn_like(p) for p in reference]
        for p, g in zip(model, grads, strict=True):
            p.grad = g.to(torch.bfloat16)
        for p, g in zip(reference, grads, strict=True):
            p.grad = g.to(torch.bfloat16).float()
        ours.step()
        theirs.step()
        ours.zero_grad()
        assert all(p.grad is None for p in model)
        for m, r, p in zip(ours.masters, reference, model, strict=True):
            torch.testing.assert_close(m, r, rtol=0, atol=0)  # the fp32 trajectory, exactly
            assert torch.equal(p, m.to(torch.bfloat16))  # and the model holds it, rounded
    state = ours.state_dict()
    assert len(state["state"]) == 2 and state["param_groups"][0]["weight_decay"] == 0.1
