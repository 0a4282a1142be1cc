"""Bracketing the grid's optimum before any law is fitted to it.

A grid budget is *bracketed* when no run of its near-optimal band (its best run included) sits at the end
of a line of the grid: along its row (same batch, other learning rates) and its column (same learning rate,
other batches) there is an explored run on both sides, diverged runs included (a learning rate that
diverges does bound the optimum). A band member at a line's end means the optimum may lie beyond it, so
`extensions` proposes the next point past that end (one grid step: the configured lists' geometric step,
batches rounded to the layout's unit); the study trains them and asks again, for at most
`scaling.bracket_rounds` rounds. An end that cannot be extended (a batch below one layout unit, a learning
rate above 1, a trial with too few steps) is *blocked*, and the budget is not bracketed: the study names
it and fits no law from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from components.scaling.fit import near_optimal

AXES = ("lr", "batch")


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-3)


def step(values: list[float], default: float = 2.0) -> float:
    """The geometric step of a configured grid axis (its mean ratio between neighbours)."""
    values = sorted(set(values))
    if len(values) < 2:
        return default
    return (values[-1] / values[0]) ** (1 / (len(values) - 1))


@dataclass
class Edge:
    """A band member at one end of one of its grid lines."""

    axis: str  # "lr" or "batch": the axis along which the line runs
    side: str  # "low" or "high"
    run: dict

    def describe(self) -> str:
        return (f"near-optimal run lr {self.run['lr']:.3g}, batch {self.run['batch']} at the {self.side} end "
                f"of the {'learning rates' if self.axis == 'lr' else 'batch sizes'} tried")


@dataclass
class Budget:
    """Where one grid budget stands: bracketed, or the edges still open and those that cannot move."""

    budget: float
    runs: int
    edges: list[Edge] = field(default_factory=list)
    blocked: list[tuple[Edge, str]] = field(default_factory=list)
    proposals: list[tuple[int, float]] = field(default_factory=list)  # (batch, lr) to train next

    @property
    def bracketed(self) -> bool:
        return bool(self.runs) and not self.edges

    def reason(self) -> str:
        if not self.runs:
            return "no finished grid run"
        blocked = {id(e): why for e, why in self.blocked}
        parts = [e.describe() + (f", cannot extend: {blocked[id(e)]}" if id(e) in blocked else
                                 ", still open when the rounds ran out") for e in self.edges]
        return "; ".join(dict.fromkeys(parts))


def edges(runs: list[dict], margin: float) -> list[Edge]:
    """Band members of one budget's runs that sit at an end of their row or column."""
    finite = [r for r in runs if math.isfinite(r["loss"])]
    if not finite:
        return []
    found = []
    for r in near_optimal(finite, margin):
        for axis in AXES:
            other = "batch" if axis == "lr" else "lr"
            line = [x[axis] for x in runs if _same(x[other], r[other])]
            if r[axis] <= min(line) * (1 + 1e-3):
                found.append(Edge(axis, "low", r))
            if r[axis] >= max(line) * (1 - 1e-3):
                found.append(Edge(axis, "high", r))
    return found


def next_point(edge: Edge, lr_step: float, batch_step: float, unit: int) -> tuple[tuple[int, float] | None, str]:
    """The grid point one step past `edge`, or None and why it cannot exist."""
    from components.scaling.plan import round_batch

    run = edge.run
    if edge.axis == "lr":
        lr = run["lr"] * (lr_step if edge.side == "high" else 1 / lr_step)
        if lr > 1:
            return None, "learning rates above 1 are not tried"
        return (int(run["batch"]), float(f"{lr:.4g}")), ""
    target = run["batch"] * (batch_step if edge.side == "high" else 1 / batch_step)
    batch = round_batch(target, unit)
    if batch == run["batch"] or (edge.side == "low" and batch > run["batch"]):
        return None, f"a batch below {run['batch']} tokens does not fit the layout unit of {unit} tokens"
    return (batch, run["lr"]), ""


def assess(runs: list[dict], budget: float, margin: float, lr_step: float, batch_step: float, unit: int,
           feasible) -> Budget:
    """One budget's bracketing state; `feasible(batch, lr)` says why a point cannot train ("" if it can)."""
    state = Budget(budget, sum(math.isfinite(r["loss"]) for r in runs), edges(runs, margin))
    tried = {(int(r["batch"]), float(f"{r['lr']:.4g}")) for r in runs}
    for edge in state.edges:
        point, why = next_point(edge, lr_step, batch_step, unit)
        if point is not None and not why:
            why = feasible(*point)
        if point is None or why:
            state.blocked.append((edge, why))
        elif point not in tried and point not in state.proposals:
            state.proposals.append(point)
    return state


def summary(states: list[Budget], rounds: int, cap: int) -> list[dict]:
    """JSON-ready per-budget bracketing verdicts for laws.json and the report."""
    return [{"budget": s.budget, "bracketed": s.bracketed, "runs": s.runs, "rounds": rounds, "cap": cap,
             "reason": "" if s.bracketed else s.reason()} for s in states]
