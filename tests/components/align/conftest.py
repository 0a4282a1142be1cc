"""One torch thread in the test process: the models here are tiny, and on a busy 2-core machine two
spinning OpenMP threads make every small matmul wait for the other (measured 30x slower)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
