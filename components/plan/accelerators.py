"""Accelerators the planner knows: dense bf16 tensor peak (FLOP/s) and memory, from the vendors' datasheets.

Dense numbers (the datasheets print the 2:4-sparsity figure, twice these, with an asterisk):
- H100 SXM5 80 GB: 989 TFLOP/s bf16, 80 GB HBM3; H100 PCIe: 756, 80 GB
  (NVIDIA H100 Tensor Core GPU datasheet, nvidia.com/en-us/data-center/h100).
- H200 SXM: 989 TFLOP/s, 141 GB HBM3e (NVIDIA H200 datasheet, nvidia.com/en-us/data-center/h200).
- A100 SXM 80 GB / 40 GB: 312 TFLOP/s, 80 / 40 GB (NVIDIA A100 datasheet, nvidia.com/en-us/data-center/a100).
- L40S: 362 TFLOP/s, 48 GB (NVIDIA L40S datasheet); L4: 121 TFLOP/s, 24 GB (NVIDIA L4 datasheet).
- GeForce RTX 4090: 165.2 TFLOP/s bf16 with fp32 accumulate, 24 GB (NVIDIA Ada Lovelace architecture
  whitepaper, appendix table of the RTX 4090).
- AMD Instinct MI300X: 1307 TFLOP/s bf16 dense, 192 GB HBM3 (AMD Instinct MI300X data sheet).
Memory is the datasheet's decimal gigabytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from components.names import did_you_mean


@dataclass(frozen=True)
class Accelerator:
    name: str
    peak_flops: float
    """Dense bf16 matmul peak per device (FLOP/s)."""
    memory_bytes: float
    """Device memory (bytes)."""
    source: str = "datasheet"


_GB = 1e9
ACCELERATORS: dict[str, Accelerator] = {a.name: a for a in (
    Accelerator("h100-80gb", 989e12, 80 * _GB),
    Accelerator("h100-pcie", 756e12, 80 * _GB),
    Accelerator("h200", 989e12, 141 * _GB),
    Accelerator("a100-80gb", 312e12, 80 * _GB),
    Accelerator("a100-40gb", 312e12, 40 * _GB),
    Accelerator("l40s", 362e12, 48 * _GB),
    Accelerator("l4", 121e12, 24 * _GB),
    Accelerator("rtx4090-24gb", 165.2e12, 24 * _GB),
    Accelerator("mi300x", 1307e12, 192 * _GB),
)}

# torch.cuda.get_device_name() spellings, most specific first
_DEVICE_NAMES = [(r"H100.*PCIe", "h100-pcie"), (r"H100", "h100-80gb"), (r"H200", "h200"),
                 (r"A100.*80", "a100-80gb"), (r"A100", "a100-40gb"), (r"L40S", "l40s"), (r"\bL4\b", "l4"),
                 (r"RTX 4090", "rtx4090-24gb"), (r"MI300X", "mi300x")]


def accelerator(name: str) -> Accelerator:
    """The table's entry for `name` (e.g. h100-80gb), with a did-you-mean error."""
    key = name.strip().lower()
    if key not in ACCELERATORS:
        raise ValueError(f"Unknown accelerator {name!r}.{did_you_mean(key, ACCELERATORS)} Known: "
                         f"{', '.join(ACCELERATORS)}")
    return ACCELERATORS[key]


def from_device_name(device_name: str) -> Accelerator | None:
    """The entry for a CUDA device name (`torch.cuda.get_device_name()`), or None if not in the table."""
    for pattern, key in _DEVICE_NAMES:
        if re.search(pattern, device_name, re.IGNORECASE):
            return ACCELERATORS[key]
    return None
