"""FSDP on a one-process group: a single worker (one GPU) runs the sharded path it would run on a cluster."""

from __future__ import annotations

import pytest
import torch.distributed as dist

from components.pretrain.runtime import place
from tests.components.pretrain.raycluster import free_port

pytestmark = pytest.mark.unit


@pytest.fixture
def one_process_group():
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_fsdp_is_honoured_by_one_worker_with_a_process_group(one_process_group):
    where = place(use_gpu=False)
    assert where.world == 1 and not where.distributed  # no DDP for one worker, no collectives to wait on
    assert where.sharded("fsdp") and not where.sharded("ddp")


def test_no_process_group_means_nothing_is_sharded():
    assert not place(use_gpu=False).sharded("fsdp")
