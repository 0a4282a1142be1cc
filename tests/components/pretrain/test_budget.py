"""The time budget's arithmetic: how many steps a budget holds, from which timings."""

from __future__ import annotations

import pytest

from components.pretrain.budget import PROBE_STEPS, TimeBudget, read, steps_in_budget, write

pytestmark = pytest.mark.unit


def test_steps_in_budget_is_bounded_by_the_steps_done_and_the_token_cap():
    assert steps_in_budget(600, 2.0, done=10, max_steps=1000) == 300
    assert steps_in_budget(600, 2.0, done=10, max_steps=120) == 120  # total_tokens stays the upper bound
    assert steps_in_budget(10, 2.0, done=12, max_steps=1000) == 12  # never fewer than already trained


def test_decision_counts_evaluations_and_checkpoints_per_step_and_skips_the_first_step():
    clock = TimeBudget(minutes=10, warmup_steps=2, start_step=0, max_steps=10_000)
    assert clock.due_step == PROBE_STEPS
    for seconds in (30.0, 1.0, 1.2, 1.1):  # the first (allocation, compilation) is not a step's time
        clock.observe(seconds)
    assert not clock.due(PROBE_STEPS - 1) and clock.due(PROBE_STEPS)
    decision = clock.decide(PROBE_STEPS, eval_s=4.0, eval_every=20, checkpoint_s=2.0, checkpoint_every=40)
    assert decision.step_s == pytest.approx(1.1)
    assert decision.per_step_s == pytest.approx(1.1 + 0.2 + 0.05)
    assert decision.steps == int(600 // 1.35) == 444
    assert not clock.due(PROBE_STEPS + 1)  # decided once


def test_decision_waits_for_the_warmup_and_for_a_resumed_attempts_own_timings():
    assert TimeBudget(10, warmup_steps=50, start_step=0, max_steps=100).due_step == 50
    assert TimeBudget(10, warmup_steps=3, start_step=40, max_steps=100).due_step == 40 + PROBE_STEPS


def test_every_rank_takes_the_agreed_number():
    clock = TimeBudget(minutes=1, warmup_steps=0, start_step=0, max_steps=1000)
    for seconds in (1.0, 1.0):
        clock.observe(seconds)
    assert clock.decide(4, 0.0, 1, 0.0, 1, agree=lambda steps: steps + 3).steps == 63


def test_decision_round_trips_beside_the_checkpoints(tmp_path):
    clock = TimeBudget(minutes=1, warmup_steps=0, start_step=0, max_steps=1000)
    clock.observe(0.5)
    decision = clock.decide(4, 0.1, 5, 0.2, 10)
    assert read(tmp_path / "ckpt") is None
    write(tmp_path / "ckpt", decision)
    assert read(tmp_path / "ckpt") == decision
