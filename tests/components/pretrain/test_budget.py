"""The time budget's arithmetic: how many steps a budget holds, from which timings, and when it is revised."""

from __future__ import annotations

import pytest

from components.pretrain import budget
from components.pretrain.budget import PROBE_STEPS, REVISE_UNTIL, TimeBudget, read, steps_in_budget, write

pytestmark = pytest.mark.unit


def test_steps_in_budget_adds_what_the_remaining_time_holds_up_to_the_token_cap():
    assert steps_in_budget(600, 2.0, done=10, max_steps=1000) == 310
    assert steps_in_budget(600, 2.0, done=10, max_steps=120) == 120  # total_tokens stays the upper bound
    assert steps_in_budget(-5, 2.0, done=12, max_steps=1000) == 12  # over budget: stop where it is


def started_ago(clock: TimeBudget, seconds: float, monkeypatch) -> None:
    monkeypatch.setattr(budget.time, "perf_counter", lambda: clock.started + seconds)


def test_decision_counts_elapsed_time_evaluations_and_checkpoints_and_skips_the_first_step(monkeypatch):
    clock = TimeBudget(minutes=10, warmup_steps=2, start_step=0, max_steps=10_000)
    assert clock.due_step == PROBE_STEPS
    for seconds in (30.0, 1.0, 1.2, 1.1):  # the first (allocation, compilation) is not a step's time
        clock.observe(seconds)
    assert not clock.first_due(PROBE_STEPS - 1) and clock.first_due(PROBE_STEPS)
    clock.eval_s, clock.checkpoint_s = 4.0, 2.0
    started_ago(clock, 40.0, monkeypatch)
    decision = clock.decide(PROBE_STEPS, eval_every=20, checkpoint_every=40)
    assert decision.step_s == pytest.approx(1.1) and decision.elapsed_s == pytest.approx(40.0)
    assert decision.per_step_s == pytest.approx(1.1 + 0.2 + 0.05)
    assert decision.steps == PROBE_STEPS + int(560 // 1.35) == 418
    assert not clock.first_due(PROBE_STEPS + 1)  # decided once; revised only at evaluations in the first half
    assert clock.due(20, evaluated=True) and not clock.due(21, evaluated=False)
    assert not clock.due(int(418 * REVISE_UNTIL) + 1, evaluated=True)
    assert not clock.settled(200) and clock.settled(210)


def test_a_revision_follows_the_recent_steps(monkeypatch):
    clock = TimeBudget(minutes=10, warmup_steps=0, start_step=0, max_steps=10_000)
    for seconds in [9.0] + [1.0] * 20:
        clock.observe(seconds)
    started_ago(clock, 30.0, monkeypatch)
    assert clock.decide(20, 1_000_000, 1_000_000).steps == 20 + 570
    for seconds in [3.0] * 20:  # the machine got busy
        clock.observe(seconds)
    started_ago(clock, 90.0, monkeypatch)
    assert clock.decide(40, 1_000_000, 1_000_000).steps == 40 + 170


def test_decision_waits_for_the_warmup_and_for_a_resumed_attempts_own_timings():
    assert TimeBudget(10, warmup_steps=50, start_step=0, max_steps=100).due_step == 50
    assert TimeBudget(10, warmup_steps=3, start_step=40, max_steps=100).due_step == 40 + PROBE_STEPS


def test_a_resumed_run_keeps_the_length_it_finds(tmp_path):
    clock = TimeBudget(minutes=1, warmup_steps=0, start_step=0, max_steps=1000)
    clock.observe(0.5)
    decision = clock.decide(4, 5, 10)
    assert read(tmp_path / "ckpt") is None
    write(tmp_path / "ckpt", decision)
    assert read(tmp_path / "ckpt") == decision
    resumed = TimeBudget(1, 0, 8, 1000, decided=read(tmp_path / "ckpt"))
    assert not resumed.due(10, evaluated=True) and resumed.settled(8)


def test_every_rank_takes_the_agreed_number():
    clock = TimeBudget(minutes=1, warmup_steps=0, start_step=0, max_steps=1000)
    for seconds in (1.0, 1.0):
        clock.observe(seconds)
    assert clock.decide(4, 1, 1, agree=lambda steps: 7).steps == 7
