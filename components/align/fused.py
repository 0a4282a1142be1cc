"""SFT and DPO inside TRL with loss heads that suit a CPU: the project's fused loss head for SFT
(`components.pretrain.loss.linear_cross_entropy`), a per-token log-prob head for DPO.

TRL 1.16's SFTTrainer scores tokens through its own chunked head, which recomputes each chunk's logits in
the backward pass and computes the entropy and top-1 accuracy of every token for its step metrics; on a CPU
that head took about half of an SFT step (benchmarks/align_throughput.py). The project's head takes the
gradients in the forward pass (no recomputation) and computes nothing else, as the pretraining loop does.
`FusedSFTTrainer` is TRL's SFTTrainer (data preparation, assistant-only labels, padding-free batches, the
training loop) with only `compute_loss` swapped: the loss is the mean cross-entropy over the tokens whose
label is not -100, i.e. the assistant tokens, exactly what TRL's own loss is.

DPO's loss needs each sequence's summed log-prob, so its head cannot take the gradient in the forward pass
(the upstream gradient differs per sequence). `FusedDPOTrainer` keeps TRL's DPOTrainer and gives its
`fused_lm_head=True` forward a leaner head (`token_log_probs`): only the completion tokens are projected
(TRL's CPU path projects every position), one fused log-softmax per chunk, and the backward recomputes a
chunk's logits once. TRL's step metrics (entropy, mean logits, top-1) are still computed, from the same chunk.
"""

from __future__ import annotations

import functools
import types

import torch
from trl import DPOTrainer, SFTTrainer
from trl.trainer.utils import FusedCausalLMOutput

from components.pretrain.loss import chunk_rows, linear_cross_entropy

FLAG = "dsllm_loss_head"  # the forward keyword that selects the fused loss (the model's own forward without it)


def patch_forward(model, flag: str, head) -> None:
    """Patch `model.forward`: called with `flag=True` and `labels`, it runs the backbone and returns
    `head(hidden states, output weight, next-token labels)`; without, the forward it had. Going through the
    model's forward (not around it) keeps DDP's gradient hooks when the trainer has wrapped the model."""
    original = model.forward

    @functools.wraps(type(model).forward)  # generate() checks its keywords against this signature
    def forward(self, *args, labels=None, **kwargs):
        if not kwargs.pop(flag, False):
            return original(*args, **kwargs) if labels is None else original(*args, labels=labels, **kwargs)
        kwargs["use_cache"] = False
        hidden = self.base_model(*args, **kwargs).last_hidden_state[:, :-1]
        return head(hidden, self.get_output_embeddings().weight, labels[:, 1:])

    model.forward = types.MethodType(forward, model)


def _summed_cross_entropy(hidden, weight, targets):
    count = (targets != -100).sum()
    return linear_cross_entropy(hidden, weight, targets) * count, count


def add_loss_head(model) -> None:
    """`model(..., labels=..., dsllm_loss_head=True)` returns (summed next-token cross-entropy, tokens counted)."""
    patch_forward(model, FLAG, _summed_cross_entropy)


class FusedSFTTrainer(SFTTrainer):
    """TRL's SFTTrainer with the project's fused loss head; no per-step entropy/accuracy metrics."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        add_loss_head(self.model)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if return_outputs:  # logits wanted (compute_metrics): TRL's path
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        model_inputs = {k: v for k, v in inputs.items() if k not in ("labels", "assistant_masks", "completion_mask")}
        total, count = model(**model_inputs, labels=inputs["labels"], **{FLAG: True})
        # as TRL: a mean over the batch's counted tokens, or over the accumulated batch's when the trainer says
        # how many there are (then DDP's gradient mean is undone by the world size)
        loss = total / (count.clamp(min=1) if num_items_in_batch is None else num_items_in_batch)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes
        return loss


class _TokenLogProbs(torch.autograd.Function):
    """log p(target) of each row of `hidden @ weight.T`, chunk by chunk, with (no gradient) the entropy, the mean
    logit and whether the target is the top token; the backward recomputes each chunk's logits once."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, rows: int):
        n = hidden.shape[0]
        logp, entropy, mean = (torch.empty(n, device=hidden.device) for _ in range(3))
        top1 = torch.empty(n, dtype=torch.bool, device=hidden.device)
        for s in range(0, n, rows):
            logits = (hidden[s:s + rows] @ weight.T).float()
            chunk = torch.log_softmax(logits, dim=-1)
            t = targets[s:s + rows]
            logp[s:s + rows] = chunk.gather(1, t[:, None])[:, 0]
            entropy[s:s + rows] = -(chunk.exp() * chunk).sum(-1)
            mean[s:s + rows] = logits.mean(-1)
            top1[s:s + rows] = logits.argmax(-1) == t
        ctx.save_for_backward(hidden, weight, targets)
        ctx.rows = rows
        ctx.mark_non_differentiable(entropy, mean, top1)
        return logp, entropy, mean, top1

    @staticmethod
    def backward(ctx, grad_logp, *_):
        hidden, weight, targets = ctx.saved_tensors
        grad_hidden = torch.empty_like(hidden)
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
        for s in range(0, hidden.shape[0], ctx.rows):
            h, t, g = hidden[s:s + ctx.rows], targets[s:s + ctx.rows], grad_logp[s:s + ctx.rows]
            # d log p_t / d logits = onehot(t) - softmax, scaled by each token's upstream gradient
            grad = torch.softmax((h @ weight.T).float(), dim=-1).mul_(-g[:, None])
            grad[torch.arange(t.shape[0], device=t.device), t] += g
            grad = grad.to(h.dtype)
            torch.mm(grad, weight, out=grad_hidden[s:s + ctx.rows])
            grad_weight.add_(grad.T @ h)
        return grad_hidden, grad_weight.to(weight.dtype), None, None


def token_log_probs(hidden, weight, targets, rows: int | None = None):
    """(log p(target), entropy, mean logit, target is top-1) per row of `hidden` [n, d] under `weight` [V, d]."""
    return _TokenLogProbs.apply(hidden, weight, targets, rows or chunk_rows(weight.shape[0]))


def _logprob_output(hidden, weight, targets) -> FusedCausalLMOutput:
    mask = targets != -100
    fields = token_log_probs(hidden[mask], weight, targets[mask])
    logp, entropy, mean, top1 = (x.new_zeros(mask.shape).masked_scatter(mask, x) for x in fields)
    return FusedCausalLMOutput(loss=-logp.sum() / mask.sum().clamp(min=1), log_probs=logp, entropy=entropy,
                               mean_logits=mean, is_top1=top1, label_mask=mask)


def add_logprob_head(model) -> None:
    """Patch `model.forward` (after TRL's patch): `fused_lm_head=True` returns TRL's FusedCausalLMOutput from
    `token_log_probs` over the positions whose next-token label is not -100 (zeros elsewhere)."""
    patch_forward(model, "fused_lm_head", _logprob_output)


class FusedDPOTrainer(DPOTrainer):
    """TRL's DPOTrainer whose policy and reference score completions with `token_log_probs`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._lean_heads()

    def _lean_heads(self) -> None:
        """Once, after TRL has added its own heads (TRL's __init__ computes the cached reference log-probs
        before it returns, hence the call from there too)."""
        for model in (self.model, self.ref_model):
            if model is not None and not getattr(model, "_dsllm_logprob_head", False):
                add_logprob_head(model)
                model._dsllm_logprob_head = True

    def _precompute_ref_logps(self, *args, **kwargs):
        self._lean_heads()
        return super()._precompute_ref_logps(*args, **kwargs)
