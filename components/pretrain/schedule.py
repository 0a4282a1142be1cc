"""Learning-rate schedules: DeepSeek's multi-step (the default) and cosine for comparison.

Multi-step (arXiv 2401.02954, §2.3): linear warmup to the peak, the peak until 80% of the training
tokens, then 31.6% of it, then 10% from 90% on. The two drops are √r and r of the peak with
r = `min_lr_ratio` (0.1 gives exactly the paper's 31.6% and 10%). Cosine decays from the peak after
warmup to r·peak at the end.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str = "multistep",
              min_ratio: float = 0.1) -> float:
    """Multiplier of the peak LR for optimizer step `step` (0-based) of `total_steps`."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = step / max(total_steps, 1)  # fraction of training tokens seen before this step
    if schedule == "multistep":
        if progress >= 0.9:
            return min_ratio
        return math.sqrt(min_ratio) if progress >= 0.8 else 1.0
    if schedule == "cosine":
        span = max(total_steps - warmup_steps, 1)
        done = min(max(step - warmup_steps, 0) / span, 1.0)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * done))
    raise ValueError(f"Unknown schedule {schedule!r}: use 'multistep' or 'cosine'")


def make_scheduler(optimizer: torch.optim.Optimizer, total_steps: int | Callable[[], int], warmup_steps: int,
                   schedule: str, min_ratio: float) -> torch.optim.lr_scheduler.LambdaLR:
    """A `LambdaLR` over `lr_factor` (its state is the step, saved with checkpoints). `total_steps` may be a
    function: a run sized by a time budget knows its length only after its warmup (components.pretrain.budget)."""
    total = total_steps if callable(total_steps) else lambda: total_steps
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total(), warmup_steps, schedule, min_ratio))
