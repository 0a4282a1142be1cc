"""The fits recover known laws from synthetic losses (exponents within a tolerance, intervals that contain the
truth), and refuse data they cannot fit."""

from __future__ import annotations

import numpy as np
import pytest

from components.scaling import fit

pytestmark = pytest.mark.unit
BUDGETS = np.geomspace(1e17, 3e19, 5)


def test_power_law_is_exact_on_clean_data():
    c = np.geomspace(1e10, 1e14, 6)
    coef, exponent = fit.power_law(c, 0.29 * c ** 0.327)
    assert coef == pytest.approx(0.29, rel=1e-6) and exponent == pytest.approx(0.327, abs=1e-9)


def test_power_law_needs_two_budgets():
    with pytest.raises(ValueError, match="two or more distinct budgets"):
        fit.power_law([1e12, 1e12], [1.0, 2.0])


def _grid_runs(noise: float, seed: int = 0) -> list[dict]:
    """Losses of a bowl in (log eta, log B) centred on the paper's eta_opt(C) and B_opt(C)."""
    rng = np.random.default_rng(seed)
    runs = []
    for c in BUDGETS:
        eta_opt, b_opt = 0.3118 * c ** -0.125, 0.2920 * c ** 0.3271
        base = 2.0 * c ** -0.03
        for lr in np.geomspace(eta_opt / 8, eta_opt * 8, 13):
            for batch in np.geomspace(b_opt / 8, b_opt * 8, 13):
                loss = base + 0.01 * np.log(lr / eta_opt) ** 2 + 0.01 * np.log(batch / b_opt) ** 2
                runs.append({"budget": float(c), "lr": float(lr), "batch": float(batch),
                             "loss": float(loss * (1 + noise * rng.standard_normal()))})
    return runs


def test_hp_laws_recover_the_papers_exponents():
    laws = fit.hp_laws(_grid_runs(noise=2e-4), margin=0.005, n_boot=300)
    eta, batch = laws["eta"], laws["batch"]
    assert eta.exponent == pytest.approx(-0.125, abs=0.02)
    assert batch.exponent == pytest.approx(0.3271, abs=0.02)
    for law, truth in ((eta, -0.125), (batch, 0.3271)):
        low, high = law.exponent_ci
        assert np.isfinite([low, high]).all() and low <= truth <= high
    assert 0 < len(laws["band"]) < len(_grid_runs(0)) / 4, "the band keeps only the runs near each budget's best"


def test_near_optimal_band_is_relative_to_each_budgets_best():
    runs = [{"budget": 1.0, "loss": 2.0}, {"budget": 1.0, "loss": 2.01}, {"budget": 1.0, "loss": 2.1},
            {"budget": 2.0, "loss": 1.0}, {"budget": 2.0, "loss": 1.02}]
    kept = fit.near_optimal(runs, margin=0.01)
    assert [r["loss"] for r in kept] == [2.0, 2.01, 1.0]


def test_hp_laws_need_two_budgets_and_skip_diverged_runs():
    runs = [{"budget": 1e12, "lr": 1e-3, "batch": 512, "loss": 3.0},
            {"budget": 2e12, "lr": 1e-3, "batch": 512, "loss": float("nan")}]
    with pytest.raises(ValueError, match="2\\+ budgets"):
        fit.hp_laws(runs, 0.01, n_boot=20)


def _iso_runs(shape: str, noise: float, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    runs = []
    for c in BUDGETS:
        if shape == "bowl":  # exactly quadratic in log M around M_opt = 0.1715 C^0.5243
            m_opt = 0.1715 * c ** 0.5243
            loss_fn = lambda m, c=c, m_opt=m_opt: 1.5 * c ** -0.02 + 0.05 * np.log(m / m_opt) ** 2  # noqa: E731
        else:  # Chinchilla's form in (M, D = C/M): the optimum is M ∝ C^(q / (p + q))
            m_opt = (0.34 * 400 / (0.28 * 410)) ** (1 / 0.62) * c ** (0.28 / 0.62)
            loss_fn = lambda m, c=c: 1.7 + 400 / m ** 0.34 + 410 / (c / m) ** 0.28  # noqa: E731
        for m in np.geomspace(m_opt / 6, m_opt * 6, 9):
            runs.append({"budget": float(c), "m": float(m), "loss": float(loss_fn(m) * (1 + noise * rng.standard_normal()))})
    return runs


def test_isoflop_recovers_model_and_data_exponents_with_intervals():
    laws = fit.isoflop(_iso_runs("bowl", noise=1e-3), n_boot=300)
    assert laws["m"].exponent == pytest.approx(0.5243, abs=0.01)
    assert laws["d"].exponent == pytest.approx(0.4757, abs=0.01)
    assert laws["m"].coef == pytest.approx(0.1715, rel=0.5)
    for name, truth in (("m", 0.5243), ("d", 0.4757)):
        low, high = laws[name].exponent_ci
        assert np.isfinite([low, high]).all() and low <= truth <= high
    assert all(m["fitted"] for m in laws["minima"])


def test_isoflop_parabola_finds_chinchilla_style_optimum():
    laws = fit.isoflop(_iso_runs("chinchilla", noise=0.0), n_boot=50)
    assert laws["m"].exponent == pytest.approx(0.28 / 0.62, abs=0.02)
    assert laws["m"].exponent + laws["d"].exponent == pytest.approx(1.0, abs=1e-9)  # D = C / M


def test_vertex_falls_back_to_the_best_point_without_a_minimum():
    m, loss, fitted = fit.vertex([1e5, 2e5, 4e5, 8e5], [3.0, 3.2, 3.3, 3.35])  # concave: no minimum inside
    assert (m, loss, fitted) == (pytest.approx(1e5), 3.0, False)
    m, _, fitted = fit.vertex([1e5, 2e5, 4e5], [3.2, 3.0, 3.2])
    assert fitted and m == pytest.approx(2e5, rel=1e-6)


def test_prediction_interval_brackets_the_law():
    law = fit.Law(10.0, -0.05)
    boot = [(10.0 * f, -0.05) for f in np.linspace(0.9, 1.1, 101)]
    out = fit.predict(boot, law, 1e13, 0.95)
    assert out["low"] < out["value"] < out["high"]
    assert out["value"] == pytest.approx(10 * 1e13 ** -0.05)


def test_by_budget_groups_sorted_budgets_keeping_row_order():
    rows = [{"budget": 1e11, "id": "a"}, {"budget": 1e10, "id": "b"}, {"budget": 1e11, "id": "c"}]
    groups = fit.by_budget(rows)
    assert list(groups) == [1e10, 1e11]
    assert [r["id"] for r in groups[1e11]] == ["a", "c"] and [r["id"] for r in groups[1e10]] == ["b"]
