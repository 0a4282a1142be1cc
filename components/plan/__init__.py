"""Planning a pretraining run on a cluster before paying for it (`dsllm plan`).

- `planner.plan(cfg, cluster)`: per-device memory (parameters, gradients, optimizer states, FSDP buffers,
  activations with and without checkpointing), fit, largest micro-batch, tokens/s at an MFU, time to tokens.
- `planner.check_fits(cfg, devices)`: the same as a preflight; raises `DoesNotFit` naming the largest term.
- `memory`: the memory model; `measure`: the same quantities measured on the CPU (how the model is checked).
- `accelerators`: datasheet peaks and memory; `peak`: the stable MFU peak (datasheet, or a cached CPU probe).
"""

from components.plan.planner import Cluster, DoesNotFit, check_fits, plan

__all__ = ["Cluster", "DoesNotFit", "check_fits", "plan"]
