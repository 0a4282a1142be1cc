"""AdamW (β 0.9/0.95, weight decay on matrices only) with fp32 master weights for a bf16 model.

A bf16 model computes without autocast's per-matmul casts; its updates are applied to fp32 copies
(a plain bf16 weight would swallow updates smaller than its precision) and copied back once per
optimizer step. For an fp32 model (or FSDP, which keeps fp32 shards itself) the master weights are
the parameters themselves and nothing is copied. Clipping uses the fp32 gradients.

`MasterWeightsAdamW` is the same idea as a `torch.optim.AdamW`, for trainers that own the loop and want a
torch optimizer (the HF Trainer of SFT and DPO: its scheduler, clipping and checkpoints work unchanged).
"""

from __future__ import annotations

import torch


class MasterAdamW:
    """AdamW over fp32 master copies of `params`; `inner` is the torch optimizer (for schedulers)."""

    def __init__(self, named_params: list[tuple[str, torch.nn.Parameter]], lr: float, weight_decay: float,
                 betas: tuple[float, float] = (0.9, 0.95), eps: float = 1e-8, fused: bool | None = None):
        named_params = [(n, p) for n, p in named_params if p.requires_grad]
        self.names = [n for n, _ in named_params]
        self.params = [p for _, p in named_params]
        self.copies = any(p.dtype != torch.float32 for p in self.params)
        self.master = [torch.nn.Parameter(p.detach().float().clone()) if self.copies else p for p in self.params]
        decay = [m for p, m in zip(self.params, self.master, strict=True) if p.ndim >= 2]
        no_decay = [m for p, m in zip(self.params, self.master, strict=True) if p.ndim < 2]
        groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        self.inner = torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=_fused_ok(fused, self.master))

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, max_norm: float) -> float:
        """Clip the gradients to `max_norm`, take one AdamW step; returns the norm before clipping."""
        if self.copies:
            take_grads(self.params, self.master)
        norm = torch.nn.utils.clip_grad_norm_(self.master, max_norm, foreach=True)
        self.inner.step()
        if self.copies:
            torch._foreach_copy_(self.params, self.master)
        return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)

    def master_state(self) -> dict[str, torch.Tensor]:
        """The fp32 weights by parameter name (what checkpoints and the final model hold)."""
        return {n: m.detach() for n, m in zip(self.names, self.master, strict=True)}

    @torch.no_grad()
    def load_master(self, weights: dict[str, torch.Tensor]) -> None:
        """Set the fp32 weights (and the model's copies) from `master_state()` output."""
        missing = [n for n in self.names if n not in weights]
        if missing:
            raise ValueError(f"checkpoint lacks weights {missing[:3]}: it belongs to another model")
        for name, m in zip(self.names, self.master, strict=True):
            m.copy_(weights[name])
        if self.copies:
            torch._foreach_copy_(self.params, self.master)


class MasterWeightsAdamW(torch.optim.AdamW):
    """torch AdamW over fp32 copies of a low-precision model's parameters: `step()` takes the model's gradients
    into the copies, steps them and writes the weights back; `zero_grad()` clears the model's gradients."""

    def __init__(self, params, **kwargs):
        groups = [g if isinstance(g, dict) else {"params": [g]} for g in params]
        self.model_params = [p for g in groups for p in g["params"]]
        self.masters = [torch.nn.Parameter(p.detach().float().clone()) for p in self.model_params]
        copies = iter(self.masters)
        super().__init__([{**g, "params": [next(copies) for _ in g["params"]]} for g in groups], **kwargs)

    @torch.no_grad()
    def step(self, closure=None):
        take_grads(self.model_params, self.masters)
        loss = super().step(closure)
        self.write_back()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.model_params:
            p.grad = None
        super().zero_grad(set_to_none)

    @torch.no_grad()
    def write_back(self) -> None:
        """Copy the fp32 weights into the model's parameters (of any dtype: also after `model.float()`)."""
        torch._foreach_copy_(self.model_params, self.masters)


def take_grads(params: list[torch.Tensor], master: list[torch.Tensor]) -> None:
    """The model's gradients into the fp32 copies' (a buffer reused from step to step)."""
    for p, m in zip(params, master, strict=True):
        if p.grad is None:
            m.grad = None
        elif m.grad is None:
            m.grad = p.grad.float()
        else:
            m.grad.copy_(p.grad)


def _fused_ok(fused: bool | None, params: list[torch.Tensor]) -> bool | None:
    """Fused AdamW on plain tensors of CPU/CUDA (DTensor shards use foreach)."""
    if fused is False or any(type(p.data) is not torch.Tensor for p in params):
        return None
    return all(p.device.type in ("cpu", "cuda") for p in params) or None
