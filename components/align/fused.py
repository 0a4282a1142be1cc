"""SFT with the project's fused loss head (`components.pretrain.loss.linear_cross_entropy`) inside TRL.

TRL 1.16's SFTTrainer scores tokens through its own chunked head, which recomputes each chunk's logits in
the backward pass and computes the entropy and top-1 accuracy of every token for its step metrics; on a CPU
that head took about half of an SFT step (benchmarks/align_throughput.py). The project's head takes the
gradients in the forward pass (no recomputation) and computes nothing else, as the pretraining loop does.
`FusedSFTTrainer` is TRL's SFTTrainer (data preparation, assistant-only labels, padding-free batches, the
training loop) with only `compute_loss` swapped: the loss is the mean cross-entropy over the tokens whose
label is not -100, i.e. the assistant tokens, exactly what TRL's own loss is.
"""

from __future__ import annotations

import functools
import types

from trl import SFTTrainer

from components.pretrain.loss import linear_cross_entropy

FLAG = "dsllm_loss_head"  # the forward keyword that selects the fused loss (the model's own forward without it)


def add_loss_head(model) -> None:
    """Patch `model.forward`: with `dsllm_loss_head=True` and `labels`, it runs the backbone and returns the
    summed cross-entropy of the next tokens and their count. Going through the model's forward (not around
    it) keeps DDP's gradient hooks when the trainer has wrapped the model."""
    original = model.forward

    @functools.wraps(type(model).forward)  # generate() checks its keywords against this signature
    def forward(self, *args, dsllm_loss_head: bool = False, labels=None, **kwargs):
        if not dsllm_loss_head:
            return original(*args, **kwargs) if labels is None else original(*args, labels=labels, **kwargs)
        kwargs["use_cache"] = False
        hidden = self.base_model(*args, **kwargs).last_hidden_state[:, :-1]
        targets = labels[:, 1:]
        count = (targets != -100).sum()
        weight = self.get_output_embeddings().weight
        return linear_cross_entropy(hidden, weight, targets) * count, count

    model.forward = types.MethodType(forward, model)


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
