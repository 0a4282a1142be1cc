"""The chunked linear cross-entropy equals the plain one in value and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from components.pretrain.loss import IGNORE_INDEX, linear_cross_entropy

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
def test_matches_plain_cross_entropy(dtype, tol):
    torch.manual_seed(0)
    hidden = torch.randn(3, 50, 32, dtype=dtype, requires_grad=True)
    weight = (0.3 * torch.randn(700, 32)).to(dtype).requires_grad_()
    targets = torch.randint(0, 700, (3, 50))
    targets[0, :9] = IGNORE_INDEX
    ours = linear_cross_entropy(hidden, weight, targets, rows=64)  # 150 rows: three chunks, one partial
    ours.backward()
    grads = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    ref = F.cross_entropy((hidden @ weight.T).float().flatten(0, 1), targets.flatten())
    ref.backward()
    assert ours.item() == pytest.approx(ref.item(), rel=tol)
    torch.testing.assert_close(grads[0].float(), hidden.grad.float(), atol=tol * 1e-1, rtol=tol)
    torch.testing.assert_close(grads[1].float(), weight.grad.float(), atol=tol * 1e-1, rtol=tol)
    with torch.no_grad():
        assert linear_cross_entropy(hidden, weight, targets).item() == pytest.approx(ref.item(), rel=tol)


def test_shape_mismatch_is_reported():
    with pytest.raises(ValueError, match="positions"):
        linear_cross_entropy(torch.randn(4, 8), torch.randn(10, 8), torch.zeros(5, dtype=torch.long))
