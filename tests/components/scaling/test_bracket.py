"""Bracketing on synthetic loss surfaces: an optimum at or past a grid edge makes the study extend the grid
until it is interior; one that cannot be reached (below the batch layout unit, above lr 1, beyond the round
cap) leaves its budget unbracketed, named with the reason and kept out of the fit. The rounds follow from the
results alone, so a resumed study asks for exactly the trials it already has."""

from __future__ import annotations

import math

import pytest

from components.config import StudyConfig
from components.presets import load_config
from components.scaling import bracket
from components.scaling.study import Study, grid_phase

pytestmark = pytest.mark.unit
SEQ = 128


def bowl(lr_opt: float, batch_opt: float, k: float = 0.2):
    """A loss surface quadratic in (log lr, log batch); the optimum may lie anywhere, even off the grid."""
    return lambda budget, lr, batch: 3.0 + k * math.log(lr / lr_opt) ** 2 + k * math.log(batch / batch_opt) ** 2


class SyntheticStudy(Study):
    """The study's grid phase over a synthetic loss surface instead of training (the code around `run`)."""

    def __init__(self, surface, cache: dict, tmp_path, **study):
        cfg = load_config("tiny")
        grid = {"batch_tokens": [128, 256, 512], "learning_rates": [3e-3, 1e-2, 3e-2]}  # 128-token sequences
        super().__init__(StudyConfig(budget_min=1e10, budget_max=1e11, n_budgets=2, hp_budgets=2,
                                     hp_skip_smallest=0, iso_budgets=2, **{**grid, **study}), cfg.model, cfg.pretrain, SEQ, tmp_path, tmp_path, tmp_path / "work",
                         tracker=None, progress=False)
        self.surface, self.cache, self.asked, self.trained = surface, cache, [], 0

    def run(self, trials, name):
        records = []
        for t in trials:
            self.asked.append(t.id)
            if t.id not in self.cache:
                self.trained += 1
                self.cache[t.id] = {**t.as_dict(), "status": "ok",
                                    "loss": self.surface(t.budget, t.pretrain["lr"], t.pretrain["batch_tokens"])}
            records.append({**self.cache[t.id], "kind": t.kind, "budget": t.budget})
        return records


def _tried(records, budget, axis):
    key = "lr" if axis == "lr" else "batch_tokens"
    return sorted({r["pretrain"][key] for r in records if r["budget"] == budget})


def test_interior_optimum_needs_no_extension(tmp_path):
    s = SyntheticStudy(bowl(1e-2, 256), {}, tmp_path)
    records, brackets = grid_phase(s)
    assert len(records) == 2 * 9 and all(b["bracketed"] for b in brackets) and brackets[0]["rounds"] == 0


def test_optimum_past_the_high_lr_edge_is_bracketed_by_extension_and_resumes(tmp_path):
    cache = {}
    s = SyntheticStudy(bowl(0.08, 256), cache, tmp_path)
    records, brackets = grid_phase(s)
    assert all(b["bracketed"] for b in brackets), brackets
    assert 1 <= brackets[0]["rounds"] <= 3
    for budget in (1e10, 1e11):
        lrs = _tried(records, budget, "lr")
        assert max(lrs) > 0.08 > 0.03, "the grid now reaches past the optimum"
        best = min((r for r in records if r["budget"] == budget), key=lambda r: r["loss"])
        assert 0.03 < best["pretrain"]["lr"] < max(lrs)
    again = SyntheticStudy(bowl(0.08, 256), cache, tmp_path)
    records_again, brackets_again = grid_phase(again)
    assert again.trained == 0 and sorted(again.asked) == sorted(s.asked), "a resumed study plans the same trials"
    assert brackets_again == brackets


def test_optimum_at_the_low_batch_edge_is_extended_down_to_the_layout_unit(tmp_path):
    s = SyntheticStudy(bowl(1e-2, 200, k=1.0), {}, tmp_path, batch_tokens=[256, 512, 1024])
    records, brackets = grid_phase(s)
    assert all(b["bracketed"] for b in brackets) and 128 in _tried(records, 1e11, "batch")


def test_optimum_below_the_layout_unit_is_never_bracketed_and_named(tmp_path):
    s = SyntheticStudy(bowl(1e-2, 20), {}, tmp_path)
    records, brackets = grid_phase(s)
    assert not any(b["bracketed"] for b in brackets)
    assert all("layout unit of 128 tokens" in b["reason"] and "batch 128" in b["reason"] for b in brackets)
    assert min(_tried(records, 1e10, "batch")) == 128


def test_round_cap_leaves_a_far_optimum_unbracketed(tmp_path):
    s = SyntheticStudy(bowl(1e-7, 256), {}, tmp_path, bracket_rounds=2)
    records, brackets = grid_phase(s)
    assert [b["rounds"] for b in brackets] == [2, 2] and not any(b["bracketed"] for b in brackets)
    assert all("low end of the learning rates" in b["reason"] for b in brackets)
    assert min(_tried(records, 1e10, "lr")) == pytest.approx(3e-3 / 3.162 ** 2, rel=0.01)


def test_unbracketed_budgets_are_kept_out_of_the_fit_and_named(tmp_path, monkeypatch):
    """One budget bracketed, one not: the HP laws refuse with the budget and its reason (one budget is no law)."""
    from components.scaling import study as study_mod

    surface = lambda budget, lr, batch: bowl(1e-2, 256 if budget < 5e10 else 10)(budget, lr, batch)  # noqa: E731
    s = SyntheticStudy(surface, {}, tmp_path)
    records, brackets = grid_phase(s)
    assert [b["bracketed"] for b in brackets] == [True, False]
    fitted = [r for r in records if r["budget"] in {b["budget"] for b in brackets if b["bracketed"]}]
    with pytest.raises(study_mod.checks.NotBracketedError, match=r"not bracketed.*C = 1e\+11: .*layout unit"):
        study_mod._fit_or_explain(study_mod.fit.hp_laws, fitted, tmp_path, brackets, 0.02, 50, 0.95, 0)


def test_edges_see_diverged_runs_as_bounds():
    runs = [{"budget": 1.0, "lr": lr, "batch": b, "loss": loss} for lr, b, loss in
            [(1e-3, 256, 3.2), (1e-2, 256, 3.0), (3e-2, 256, math.nan), (1e-2, 128, 3.3), (1e-2, 512, 3.4)]]
    assert bracket.edges(runs, 0.01) == [], "a diverged lr above the best bounds the optimum"
    assert [(e.axis, e.side) for e in bracket.edges(runs[:2] + runs[3:], 0.01)] == [("lr", "high")]


def test_grid_step_is_the_configured_geometric_step():
    assert bracket.step([128, 256, 512]) == pytest.approx(2)
    assert bracket.step([3e-3, 1e-2, 3e-2]) == pytest.approx(math.sqrt(10))
    assert bracket.step([1e-3]) == 2.0
