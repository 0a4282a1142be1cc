"""Next-token sampling for a batch: the nucleus equals transformers' top-p warper, and a row's draw
does not depend on the other rows."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from transformers.generation.logits_process import TopPLogitsWarper

from components.serving.sampling import (
    BLOCK,
    first_past,
    inside_nucleus,
    next_tokens,
    nucleus_threshold,
    padded_softmax,
)

pytestmark = pytest.mark.unit


@dataclass
class Row:
    temperature: float
    top_p: float
    seed: int = 0

    def __post_init__(self):
        self.generator = torch.Generator().manual_seed(self.seed)


@pytest.mark.parametrize("top_p", [0.1, 0.5, 0.9, 0.95, 1.0])
def test_the_nucleus_keeps_the_tokens_hf_top_p_keeps(top_p):
    logits = torch.randn(6, 500, generator=torch.Generator().manual_seed(7)) * torch.tensor([0.1, 1, 2, 4, 8, 16])[:, None]
    probs = logits.softmax(-1)
    ours = probs >= nucleus_threshold(probs, torch.full((6,), top_p))[:, None]
    theirs = TopPLogitsWarper(top_p, min_tokens_to_keep=1)(None, logits) > float("-inf")
    assert torch.equal(ours, theirs)
    assert ours.sum(-1).min() >= 1


@pytest.mark.parametrize("top_p", [0.1, 0.5, 0.95, 1.0])
def test_a_token_is_inside_the_nucleus_when_the_threshold_keeps_it(top_p):
    logits = torch.randn(6, 300, generator=torch.Generator().manual_seed(5)) * torch.tensor([0.1, 1, 2, 4, 8, 16])[:, None]
    probs, top = logits.softmax(-1), torch.full((6,), top_p)
    kept = probs >= nucleus_threshold(probs, top)[:, None]
    each = torch.stack([inside_nucleus(probs, torch.full((6,), token), top) for token in range(300)], dim=1)
    assert torch.equal(each, kept)


def test_padded_softmax_is_the_softmax_then_zeros_to_whole_blocks():
    logits = torch.randn(3, 1000, generator=torch.Generator().manual_seed(2)).bfloat16()
    temps = torch.tensor([0.7, 1.0, 1.3])
    probs = padded_softmax(logits, temps)
    assert probs.dtype == torch.float32 and probs.shape == (3, 1024)
    assert torch.allclose(probs[:, :1000], (logits.float() / temps[:, None]).softmax(-1), rtol=1e-6, atol=1e-9)
    assert torch.equal(probs[:, 1000:], torch.zeros(3, 24))


def test_a_row_draws_the_same_token_alone_and_in_a_batch():
    logits = torch.randn(5, 300, generator=torch.Generator().manual_seed(1)) * 3
    rows = lambda: [Row(0.7, 0.95, 1), Row(0.0, 1.0), Row(1.3, 0.5, 2), Row(1.0, 1.0, 3), Row(0.7, 0.9, 4)]  # noqa: E731
    for _ in range(3):  # each row's generator moves on: several draws in a row
        batched, alone_rows = next_tokens(logits, rows()), rows()
        alone = [int(next_tokens(logits[i:i + 1], [row])[0]) for i, row in enumerate(alone_rows)]
        assert batched.tolist() == alone
    assert int(batched[1]) == int(logits[1].argmax())  # temperature 0: greedy


def test_sampled_tokens_follow_the_distribution_inside_the_nucleus():
    logits = torch.log(torch.tensor([[0.6, 0.3, 0.05, 0.05]]))
    row = Row(1.0, 0.85, seed=3)
    counts = torch.bincount(torch.cat([next_tokens(logits, [row]) for _ in range(2000)]), minlength=4)
    assert counts[2] == counts[3] == 0  # outside the nucleus (0.6 + 0.3 covers 0.85)
    assert 0.6 < counts[0] / 2000 < 0.73  # 0.6 / 0.9 renormalised


def test_rows_that_keep_missing_the_nucleus_still_draw_from_it():
    # the nucleus is one token of 30% (top-p 0.25): ~24% of rows miss it 4 times and take the exact path
    logits = torch.log(torch.tensor([[0.3] + [0.7 / 20] * 20]))
    row = Row(1.0, 0.25, seed=4)
    assert set(torch.cat([next_tokens(logits, [row]) for _ in range(300)]).tolist()) == {0}
    logits = torch.log(torch.tensor([[0.2, 0.1] + [0.7 / 40] * 40]))  # nucleus {0, 1}: 2/3 and 1/3
    row = Row(1.0, 0.25, seed=5)
    counts = torch.bincount(torch.cat([next_tokens(logits, [row]) for _ in range(3000)]), minlength=42)
    assert counts[2:].sum() == 0 and 0.62 < counts[0] / 3000 < 0.71


@pytest.mark.parametrize("width", [7, BLOCK, 3 * BLOCK + 5, 8000])
def test_first_past_finds_what_a_full_running_sum_finds(width):
    gen = torch.Generator().manual_seed(width)
    weights = torch.rand(16, width, generator=gen, dtype=torch.float64)
    weights[weights < 0.4] = 0  # tokens outside a nucleus
    targets = torch.rand(16, generator=gen, dtype=torch.float64) * weights.sum(-1)
    expected = torch.searchsorted(weights.cumsum(-1), targets[:, None], right=True)[:, 0]
    assert torch.equal(first_past(weights, targets), expected)  # float64: no rounding to tell them apart
    assert torch.equal(first_past(weights, targets / weights.sum(-1), of_total=True), expected)
    ends = first_past(weights.float(), torch.ones(16), of_total=True)  # the very end of each row, in float32
    assert (weights[torch.arange(16), ends] > 0).all()  # a draw never lands on a token of weight 0
    assert torch.equal(ends, torch.tensor([int(torch.nonzero(r).max()) for r in weights]))
