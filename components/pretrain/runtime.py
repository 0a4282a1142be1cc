"""Where a training worker runs: rank and device, the compute precision, the parallel wrapping
(DDP or FSDP) and the matmul peak that MFU is measured against.

"auto" precision is bf16 on GPUs and on CPUs with native bf16 matmul (AMX or AVX512-BF16); on other
CPUs bf16 matmul is emulated and many times slower than fp32, so fp32 is used there.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from components.pretrain.loss import linear_cross_entropy


@dataclass
class Place:
    rank: int
    world: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world > 1 and process_group()

    def sharded(self, strategy: str) -> bool:
        """FSDP whenever it is asked for and a process group exists, one worker included (a single GPU then
        runs the same sharded code path as a cluster)."""
        return strategy == "fsdp" and process_group()


def process_group() -> bool:
    return dist.is_available() and dist.is_initialized()


def in_ray_train() -> bool:
    """True inside a Ray Train worker (or its local mode): a training session is active here."""
    try:  # Ray Train V2 (2.60) sets these utilities up in every training function, local mode included
        from ray.train.v2._internal.execution.train_fn_utils import get_train_fn_utils
    except ImportError:  # another Ray layout (a Ray worker process is the best sign there is), or no Ray at all
        try:
            import ray
        except ImportError:
            return False
        return ray.is_initialized() and ray.get_runtime_context().worker.mode == ray.WORKER_MODE
    try:
        get_train_fn_utils()
    except RuntimeError:
        return False
    return True


def rank_and_world() -> tuple[int, int]:
    """(rank, world size): (0, 1) in a plain process; inside Ray Train, a failure to read them is an error,
    never a guess (a guessed "rank 0 of 1" would train unsynchronised copies)."""
    if not in_ray_train():
        return 0, 1
    import ray.train

    ctx = ray.train.get_context()
    try:
        return ctx.get_world_rank(), ctx.get_world_size()
    except Exception as exc:
        raise RuntimeError(f"inside Ray Train but its context gave no rank ({type(exc).__name__}: {exc})") from exc


def place(use_gpu: bool) -> Place:
    """This worker's rank, world size and device (Ray Train sets up the process group)."""
    rank, world = rank_and_world()
    if use_gpu and torch.cuda.is_available():
        device = torch.device("cuda", torch.cuda.current_device())
        if in_ray_train():  # Ray Train gives each worker its own GPU
            import ray.train.torch

            device = ray.train.torch.get_device()
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    return Place(rank, world, device)


@functools.cache
def cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16(device: torch.device) -> bool:
    """True where bf16 matmul runs in hardware (CUDA with bf16, CPUs with AMX or AVX512-BF16)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(cpu_flags() & {"amx_bf16", "avx512_bf16"})


@functools.cache
def compile_blocker(device: torch.device) -> str | None:
    """Why torch.compile cannot run on `device` here, or None. A tiny function is compiled to find out: on a CPU,
    inductor builds C++ kernels, which needs a C++ compiler and Python's headers (a laptop may lack either)."""
    try:
        torch.compile(_compile_probe, dynamic=False)(torch.ones(4, device=device))
    except Exception as exc:  # whatever the toolchain says, the step can run eagerly
        first = (str(exc).strip().splitlines() or [""])[0]
        return f"torch.compile failed on a probe ({type(exc).__name__}: {first[:300]})"
    return None


COMPILE_MIN_STEPS = 300
"""pretrain.compile="auto" compiles runs at least this long: compiling the small model's layers took ~13 s (cold
cache) on a 2-core CPU and saved 0.12 s of a 1.35-s step, so about 110 steps repay it."""


def compiles(setting: bool | str, device: torch.device, dtype: torch.dtype, planned_steps: int) -> bool:
    """Whether pretrain.compile=`setting` compiles a run of `planned_steps` here: as set, or for "auto" on GPUs
    and on CPUs that train in native bf16, when the run is long enough to repay compiling (the gain on CPUs
    without native bf16 is not measured)."""
    if setting != "auto":
        return bool(setting)
    measured_to_pay = device.type == "cuda" or (dtype == torch.bfloat16 and native_bf16(device))
    return measured_to_pay and planned_steps >= COMPILE_MIN_STEPS


def _compile_probe(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.silu(x) * 2 + 1


def compute_dtype(precision: str, device: torch.device) -> torch.dtype:
    if precision == "auto":
        precision = "bf16" if native_bf16(device) else "fp32"
    return {"bf16": torch.bfloat16, "fp32": torch.float32}[precision]


def matmul_peak(dtype: torch.dtype, device: torch.device, sizes: tuple[int, ...] | None = None,
                seconds: float = 0.3) -> float:
    """The best FLOP/s of square `dtype` matmuls at `sizes` on `device` (a short probe)."""
    best = 0.0
    sizes = sizes or ((4096, 8192) if device.type == "cuda" else (1024, 2048))
    for n in sizes:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        start = time.perf_counter()
        a @ b
        _sync(device)
        first = time.perf_counter() - start
        if first > seconds:  # far too slow to repeat (an emulated dtype): that call is the sample
            best = max(best, 2 * n ** 3 / first)
            break  # larger sizes only take longer
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds or count < 2:
            a @ b
            count += 1
        _sync(device)
        best = max(best, 2 * n ** 3 * count / (time.perf_counter() - start))
    return best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class CausalLMLoss(nn.Module):
    """Wraps a `LlamaForCausalLM`: forward(inputs, targets) → mean next-token loss via the fused head.

    DDP/FSDP wrap this module so their hooks see the whole forward; the inner model stays plain.
    """

    def __init__(self, lm: nn.Module):
        super().__init__()
        self.lm = lm

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        hidden = self.lm.model(input_ids=inputs, use_cache=False).last_hidden_state
        return linear_cross_entropy(hidden, self.lm.lm_head.weight, targets)


def fsdp_layer(dtype: torch.dtype):
    """`fully_shard` for one module: fp32 shards, `dtype` compute, fp32 gradient reduction."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    policy = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)
    return lambda module: fully_shard(module, mp_policy=policy)


def wrap(net: CausalLMLoss, where: Place, strategy: str, dtype: torch.dtype) -> nn.Module:
    """DDP, or FSDP2 at the root (the decoder layers are sharded as the model is built)."""
    if where.sharded(strategy):
        return fsdp_layer(dtype)(net)
    if not where.distributed:
        return net
    from torch.nn.parallel import DistributedDataParallel

    ids = [where.device] if where.device.type == "cuda" else None
    return DistributedDataParallel(net, device_ids=ids, gradient_as_bucket_view=True)


def all_mean(values: torch.Tensor, where: Place) -> torch.Tensor:
    """The mean of `values` over all workers (a no-op for one)."""
    if where.distributed:
        values = values.clone()
        dist.all_reduce(values)
        values /= where.world
    return values


def all_sum(values: torch.Tensor, where: Place) -> torch.Tensor:
    if where.distributed:
        values = values.clone()
        dist.all_reduce(values)
    return values
