"""The fits of the scaling study (numpy only): power laws, the near-optimal band, IsoFLOP minima, bootstrap.

- `power_law(x, y)`: y = k·x^e by least squares in log-log space.
- `hp_laws(runs, margin)`: eta_opt(C) = a·C^alpha and B_opt(C) = b·C^beta fitted to every grid run within
  `margin` of its budget's best loss (DeepSeek's near-optimal band), with a bootstrap that resamples the
  runs inside each budget and recomputes the band.
- `isoflop(runs)`: per budget a parabola of loss against log M, its vertex (M_opt, loss), then
  M_opt = M_base·C^a and D_opt = D_base·C^b (D = C/M), and L_opt(C) = L_base·C^g for extrapolating the
  loss; the bootstrap resamples each profile's points and refits everything.
Intervals are percentile intervals of the bootstrap distribution.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass

import numpy as np

PAPER = {"eta": (0.3118, -0.1250), "batch": (0.2920, 0.3271), "m": (0.1715, 0.5243), "d": (5.8316, 0.4757)}
"""DeepSeek LLM's fitted laws (arXiv 2401.02954, §3.1-3.2): name → (coefficient, exponent)."""


@dataclass
class Law:
    """y = coef · C^exponent, with bootstrap intervals on both numbers."""

    coef: float
    exponent: float
    coef_ci: tuple[float, float] = (float("nan"), float("nan"))
    exponent_ci: tuple[float, float] = (float("nan"), float("nan"))
    points: int = 0

    def __call__(self, c):
        return self.coef * np.asarray(c, dtype=float) ** self.exponent

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Law:
        return cls(d["coef"], d["exponent"], tuple(d["coef_ci"]), tuple(d["exponent_ci"]), d.get("points", 0))


def power_law(x, y) -> tuple[float, float]:
    """(coef, exponent) of y = coef · x^exponent, least squares on logs; needs two distinct x."""
    lx, ly = np.log(np.asarray(x, dtype=float)), np.log(np.asarray(y, dtype=float))
    if len(np.unique(lx)) < 2:
        raise ValueError("a power law needs points at two or more distinct budgets")
    slope, intercept = np.polyfit(lx, ly, 1)
    return float(np.exp(intercept)), float(slope)


def interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2 * 100
    good = samples[np.isfinite(samples)]
    if len(good) == 0:
        return float("nan"), float("nan")
    low, high = np.percentile(good, [tail, 100 - tail])
    return float(low), float(high)


def _law(x, y, boots: list[tuple[float, float]], confidence: float) -> Law:
    coef, exponent = power_law(x, y)
    arr = np.array(boots, dtype=float).reshape(-1, 2)
    return Law(coef, exponent, interval(arr[:, 0], confidence), interval(arr[:, 1], confidence), len(x))


# ---- hyperparameter laws ----------------------------------------------------------------------------------
def near_optimal(runs: list[dict], margin: float) -> list[dict]:
    """Runs whose loss is within `margin` (relative) of the best loss of their budget."""
    best: dict[float, float] = {}
    for r in runs:
        best[r["budget"]] = min(best.get(r["budget"], np.inf), r["loss"])
    return [r for r in runs if r["loss"] <= best[r["budget"]] * (1 + margin)]


def _hp_fit(runs: list[dict], margin: float) -> tuple[float, float, float, float]:
    band = near_optimal(runs, margin)
    c = [r["budget"] for r in band]
    return (*power_law(c, [r["lr"] for r in band]), *power_law(c, [r["batch"] for r in band]))


def by_budget(rows: list[dict]) -> dict[float, list[dict]]:
    """Rows grouped by their "budget", budgets ascending, rows in their given order (the one grouping that
    the bracketing, the fits, the M-share table and the report plots share)."""
    groups: dict[float, list[dict]] = defaultdict(list)
    for r in rows:
        groups[r["budget"]].append(r)
    return dict(sorted(groups.items()))


def hp_laws(runs: list[dict], margin: float, n_boot: int = 1000, confidence: float = 0.95,
            seed: int = 0) -> dict:
    """eta_opt and B_opt laws from grid runs [{budget, lr, batch, loss}] (finite losses only)."""
    runs = [r for r in runs if np.isfinite(r["loss"])]
    groups = by_budget(runs)
    if len(groups) < 2:
        raise ValueError(f"the hyperparameter laws need finished grid runs at 2+ budgets, got {len(groups)}")
    rng, eta, batch = np.random.default_rng(seed), [], []
    for _ in range(n_boot):
        sample = [g[i] for g in groups.values() for i in rng.integers(0, len(g), len(g))]
        try:
            a, alpha, b, beta = _hp_fit(sample, margin)
        except ValueError:
            continue
        eta.append((a, alpha))
        batch.append((b, beta))
    band = near_optimal(runs, margin)
    c = [r["budget"] for r in band]
    return {"eta": _law(c, [r["lr"] for r in band], eta, confidence),
            "batch": _law(c, [r["batch"] for r in band], batch, confidence), "band": band,
            "boot": {"eta": eta, "batch": batch}}


# ---- IsoFLOP ------------------------------------------------------------------------------------------------
def vertex(m, loss) -> tuple[float, float, bool]:
    """(M at the minimum, loss there, fitted) of a parabola in log M; the best point when it opens down."""
    lm, loss = np.log(np.asarray(m, dtype=float)), np.asarray(loss, dtype=float)
    if len(np.unique(lm)) >= 3:
        a, b, c = np.polyfit(lm, loss, 2)
        if a > 0:
            x = -b / (2 * a)
            if lm.min() - 1 <= x <= lm.max() + 1:  # a vertex far outside the profile is not a measurement
                return float(np.exp(x)), float(c - b * b / (4 * a)), True
    best = int(np.argmin(loss))
    return float(np.exp(lm[best])), float(loss[best]), False


def _iso_fit(profiles: dict[float, list[dict]]) -> tuple[list[float], list[float], list[float]]:
    budgets, m_opt, l_opt = [], [], []
    for budget, runs in profiles.items():
        m, loss, _ = vertex([r["m"] for r in runs], [r["loss"] for r in runs])
        budgets.append(budget)
        m_opt.append(m)
        l_opt.append(loss)
    return budgets, m_opt, l_opt


def isoflop(runs: list[dict], n_boot: int = 1000, confidence: float = 0.95, seed: int = 0) -> dict:
    """M_opt, D_opt and L_opt laws from IsoFLOP runs [{budget, m, loss}] (finite losses only)."""
    profiles = by_budget([r for r in runs if np.isfinite(r["loss"])])
    if len(profiles) < 2:
        raise ValueError(f"the IsoFLOP laws need profiles at 2+ budgets, got {len(profiles)}")
    minima = {c: vertex([r["m"] for r in g], [r["loss"] for r in g]) for c, g in profiles.items()}
    c, m_opt, l_opt = _iso_fit(profiles)
    rng, boots = np.random.default_rng(seed), {"m": [], "d": [], "loss": []}
    for _ in range(n_boot):
        sample = {k: [g[i] for i in rng.integers(0, len(g), len(g))] for k, g in profiles.items()}
        bc, bm, bl = _iso_fit(sample)
        boots["m"].append(power_law(bc, bm))
        boots["d"].append(power_law(bc, np.array(bc) / np.array(bm)))
        boots["loss"].append(power_law(bc, bl))
    return {"m": _law(c, m_opt, boots["m"], confidence),
            "d": _law(c, np.array(c) / np.array(m_opt), boots["d"], confidence),
            "loss": _law(c, l_opt, boots["loss"], confidence),
            "minima": [{"budget": k, "m_opt": v[0], "loss": v[1], "fitted": v[2]} for k, v in minima.items()],
            "boot": boots}


def predict(boot: list[tuple[float, float]], law: Law, c: float, confidence: float) -> dict:
    """A law's value at `c` with the bootstrap interval of that value."""
    values = np.array([k * c ** e for k, e in boot], dtype=float)
    low, high = interval(values, confidence)
    return {"value": float(law(c)), "low": low, "high": high}
