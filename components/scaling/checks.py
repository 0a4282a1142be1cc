"""What a study's laws may be trusted for: extrapolation flags, M's share of the real compute, the verdict.

- `explored(rows)`: the learning rates and batch sizes some grid runs covered (all fitted runs: the explored
  range; their near-optimal band: the optima's range).
- `clamp(values, ranges)`: a law's lr or batch moved to the nearest end of such a range (scaling.recommend_within),
  with what the law said kept beside it.
- `extrapolation(rec, explored, factor)`: a recommendation whose lr or batch lies outside that range by
  more than `factor` is flagged (`dsllm pipeline --from-scaling-study` refuses it unless forced).
- `m_share(...)`: M (DeepSeek's non-embedding FLOPs/token) over the FLOPs a training step really spends per
  token. M leaves out the vocabulary: the output head's matmul, 6·V·d forward and backward, which is real
  compute; the input embedding is a lookup (a gather, no matmul FLOPs), so it adds nothing here.
- `verdict(validation, tolerance)`: the 10× check: the measured loss inside the predicted interval and
  within `tolerance` of the prediction, else the laws failed (`dsllm scaling run` exits with FAILED_CHECK).
"""

from __future__ import annotations

import math

from components.scaling.fit import by_budget

MEANINGFUL_M_SHARE = 0.5
"""Below this share of the real FLOPs, M mostly measures something other than the compute spent."""
FAILED_CHECK = 3
"""Exit status of `dsllm scaling run` when the validation run missed its prediction (2: usage errors)."""
NOT_BRACKETED = 4
"""Exit status of `dsllm scaling run` when too few grid budgets were bracketed to fit any law."""


class NotBracketedError(ValueError):
    """Fewer than two grid budgets bracketed: no learning-rate/batch law can be fitted."""


class ExtrapolationError(ValueError):
    """A recommendation outside the explored hyperparameters, applied without --force-scaling-study."""


def explored(rows: list[dict]) -> dict:
    """{"lr": [low, high], "batch": [low, high]} over the grid runs with a finite loss."""
    finite = [r for r in rows if math.isfinite(r["loss"])]
    if not finite:
        return {}
    return {axis: [min(r[axis] for r in finite), max(r[axis] for r in finite)] for axis in ("lr", "batch")}


def clamp(values: dict, ranges: dict) -> tuple[dict, dict]:
    """(values with each axis held inside its range, {axis: {"law", "used", "range"}} for those moved)."""
    held, moved = dict(values), {}
    for axis, value in values.items():
        if axis in ranges:
            low, high = ranges[axis]
            held[axis] = type(value)(min(max(value, low), high))
            if not math.isclose(held[axis], value, rel_tol=1e-3):  # a law at the end, give or take rounding, is in
                moved[axis] = {"law": value, "used": held[axis], "range": [low, high]}
    return held, moved


def describe_clamp(rec: dict) -> str:
    """"lr 0.001 (the law: 0.0001113), the nearest end of the near-optimal runs' 0.001–0.003" per moved axis."""
    where = {"optima": "the near-optimal runs'", "explored": "the explored"}.get(rec.get("within", ""), "the")
    return "; ".join(f"{axis} {m['used']:.4g} (the law: {m['law']:.4g}), the nearest end of {where} "
                     f"{m['range'][0]:.4g}–{m['range'][1]:.4g}" for axis, m in rec.get("clamped", {}).items())


def extrapolation(rec: dict, ranges: dict, factor: float) -> dict:
    """Per axis: the value, the explored range, how far outside it lies (1 = inside) and whether flagged."""
    out = {}
    for axis, key in (("lr", "lr"), ("batch", "batch_tokens")):
        if axis not in ranges:
            continue
        low, high = ranges[axis]
        value = float(rec[key])
        outside = max(low / value, value / high, 1.0)
        out[axis] = {"value": value, "explored": [low, high], "outside": outside, "flagged": outside > factor}
    return {"factor": factor, "axes": out, "flagged": any(a["flagged"] for a in out.values())}


def describe(flags: dict) -> str:
    """One sentence per flagged axis ("" when nothing is flagged)."""
    parts = [f"{axis} {a['value']:.4g} lies {a['outside']:.1f}× outside the explored {a['explored'][0]:.4g}–"
             f"{a['explored'][1]:.4g}" for axis, a in flags.get("axes", {}).items() if a["flagged"]]
    return "; ".join(parts) + (f" (more than the allowed {flags['factor']:g}×)" if parts else "")


def head_flops(d_model: int, vocab_size: int) -> int:
    """The output head's FLOPs per training token: 2·V·d forward, 4·V·d backward."""
    return 6 * vocab_size * d_model


def m_share(m: float, d_model: int, vocab_size: int) -> float:
    """M / (M + head): the part of a training step's FLOPs that M counts."""
    return m / (m + head_flops(d_model, vocab_size))


def budget_shares(records: list[dict]) -> list[dict]:
    """Per budget: M's share of the real FLOPs over its trials (min, max) and the share M omits."""
    out = []
    for c, group in by_budget(records).items():
        s = [m_share(r["m"], r["model"]["d_model"], r["model"]["vocab_size"]) for r in group]
        out.append({"budget": c, "m_share_min": min(s), "m_share_max": max(s), "omitted_min": 1 - max(s),
                    "omitted_max": 1 - min(s), "meaningful": min(s) >= MEANINGFUL_M_SHARE})
    return out


def verdict(val: dict, tolerance: float) -> dict:
    """The 10× check: passed, failed (with why), or unchecked (no validation run)."""
    if "actual" not in val:
        return {"status": "unchecked", "reason": val.get("reason", "the validation run was not trained")}
    actual, predicted = val["actual"], val["predicted"]
    inside = val["predicted_low"] <= actual <= val["predicted_high"]
    error = abs(actual - predicted) / predicted if math.isfinite(actual) else math.inf
    reasons = []
    if not inside:
        reasons.append(f"measured {actual:.4f} outside the predicted interval [{val['predicted_low']:.4f}, "
                       f"{val['predicted_high']:.4f}]")
    if not error <= tolerance:
        reasons.append(f"measured {actual:.4f} is {error:.1%} from the predicted {predicted:.4f} (allowed "
                       f"{tolerance:.0%})")
    return {"status": "failed" if reasons else "passed", "reason": "; ".join(reasons), "tolerance": tolerance,
            "inside_interval": inside, "error": error}
