"""The study's report under report/: scaling.md and PNGs a person looks at.

- hp_grid.png: final loss over learning rate × batch size per budget, near-optimal runs ringed;
- isoflop.png: loss against M per budget with the fitted parabolas and their minima;
- laws.png: eta_opt, B_opt, M_opt, D_opt against C, our fits with bootstrap bands and the paper's laws;
- loss_law.png: the loss at the IsoFLOP minima, its law, and the validation run (predicted and measured).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from components.scaling.checks import MEANINGFUL_M_SHARE, describe, describe_clamp  # noqa: E402
from components.scaling.fit import PAPER, Law, by_budget  # noqa: E402

TITLES = {"eta": "learning rate η_opt", "batch": "batch size B_opt (tokens)", "m": "model scale M_opt (FLOPs/token)",
          "d": "data scale D_opt (tokens)"}


def write(folder: Path, result: dict, hp: dict, iso_fit: dict, hp_rows: list[dict], iso_rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    hp_grid(folder / "hp_grid.png", hp_rows, {r["id"] for r in hp["band"]},
            {b["budget"] for b in result.get("brackets", []) if not b["bracketed"]})
    isoflop(folder / "isoflop.png", iso_rows, iso_fit["minima"])
    laws(folder / "laws.png", result, hp, iso_fit, hp_rows)
    loss_law(folder / "loss_law.png", result, iso_fit)
    (folder / "scaling.md").write_text(markdown(result))


def hp_grid(path: Path, rows: list[dict], band: set[str], open_budgets: set[float] = frozenset()) -> None:
    groups = by_budget(rows)
    fig, axes = plt.subplots(1, max(len(groups), 1), figsize=(4.2 * max(len(groups), 1), 3.8), squeeze=False)
    for ax, (budget, runs) in zip(axes[0], groups.items(), strict=False):
        finite = [r for r in runs if np.isfinite(r["loss"])]
        scatter = ax.scatter([r["lr"] for r in finite], [r["batch"] for r in finite], c=[r["loss"] for r in finite],
                             cmap="viridis_r", s=160)
        for r in finite:
            ax.annotate(f"{r['loss']:.3f}", (r["lr"], r["batch"]), fontsize=7, ha="center", va="bottom",
                        xytext=(0, 7), textcoords="offset points")
        near = [r for r in finite if r["id"] in band]
        ax.scatter([r["lr"] for r in near], [r["batch"] for r in near], s=320, facecolors="none", edgecolors="red")
        ax.set(xscale="log", yscale="log", xlabel="learning rate",
               title=f"C = {budget:.3g}" + (" (NOT bracketed)" if budget in open_budgets else ""),
               ylabel="batch (tokens)")
        fig.colorbar(scatter, ax=ax, label="val loss")
    fig.suptitle("grid: final validation loss (red rings: near-optimal band)")
    _save(fig, path)


def isoflop(path: Path, rows: list[dict], minima: list[dict]) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (budget, runs), color in zip(by_budget(rows).items(), plt.cm.plasma(np.linspace(0, 0.85, 8)),
                                     strict=False):
        runs = sorted((r for r in runs if np.isfinite(r["loss"])), key=lambda r: r["m"])
        m, loss = np.array([r["m"] for r in runs], float), np.array([r["loss"] for r in runs], float)
        ax.scatter(m, loss, color=color, label=f"C = {budget:.3g}")
        if len(np.unique(m)) >= 3:
            coef = np.polyfit(np.log(m), loss, 2)
            xs = np.geomspace(m.min(), m.max(), 100)
            ax.plot(xs, np.polyval(coef, np.log(xs)), color=color, alpha=0.7)
        best = next((x for x in minima if x["budget"] == budget), None)
        if best:
            ax.scatter([best["m_opt"]], [best["loss"]], marker="*", s=220, color=color, edgecolors="black")
    ax.set(xscale="log", xlabel="M (non-embedding FLOPs/token)", ylabel="val loss", title="IsoFLOP profiles (★ minimum)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


def _band(ax, boot, cs, color) -> None:
    if not boot:
        return
    values = np.array([[k * c ** e for c in cs] for k, e in boot], dtype=float)
    ax.fill_between(cs, np.nanpercentile(values, 2.5, axis=0), np.nanpercentile(values, 97.5, axis=0),
                    color=color, alpha=0.2, label="95% bootstrap band")


def laws(path: Path, result: dict, hp: dict, iso_fit: dict, hp_rows: list[dict]) -> None:
    budgets = [r["budget"] for r in hp_rows] + [m["budget"] for m in iso_fit["minima"]]
    cs = np.geomspace(min(budgets) / 2, result["validation"]["budget"] * 2, 60)
    points = {"eta": [(r["budget"], r["lr"]) for r in hp["band"]], "batch": [(r["budget"], r["batch"]) for r in hp["band"]],
              "m": [(m["budget"], m["m_opt"]) for m in iso_fit["minima"]],
              "d": [(m["budget"], m["budget"] / m["m_opt"]) for m in iso_fit["minima"]]}
    boots = {"eta": hp["boot"]["eta"], "batch": hp["boot"]["batch"], "m": iso_fit["boot"]["m"], "d": iso_fit["boot"]["d"]}
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for ax, name in zip(axes.flat, ("eta", "batch", "m", "d"), strict=True):
        law = Law.from_dict(result["laws"][name])
        _band(ax, boots[name], cs, "tab:blue")
        ax.plot(cs, law(cs), color="tab:blue", label=f"ours {law.coef:.4g}·C^{law.exponent:.4f}")
        coef, exp = PAPER[name]
        ax.plot(cs, coef * cs ** exp, "--", color="tab:gray", label=f"DeepSeek {coef}·C^{exp}")
        xs, ys = zip(*points[name], strict=True) if points[name] else ((), ())
        ax.scatter(xs, ys, color="tab:blue", s=18, zorder=3)
        ax.set(xscale="log", yscale="log", xlabel="C (FLOPs)", title=TITLES[name])
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle("fitted laws (points: near-optimal grid runs / IsoFLOP minima)")
    _save(fig, path)


def loss_law(path: Path, result: dict, iso_fit: dict) -> None:
    val = result["validation"]
    law = Law.from_dict(result["laws"]["loss"])
    cs = np.geomspace(min(m["budget"] for m in iso_fit["minima"]) / 2, val["budget"] * 2, 60)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    _band(ax, iso_fit["boot"]["loss"], cs, "tab:green")
    ax.plot(cs, law(cs), color="tab:green", label=f"L_opt = {law.coef:.4g}·C^{law.exponent:.4f}")
    ax.scatter([m["budget"] for m in iso_fit["minima"]], [m["loss"] for m in iso_fit["minima"]], color="tab:green",
               label="IsoFLOP minima")
    if "predicted" in val:
        ax.errorbar([val["compute"]], [val["predicted"]], yerr=[[val["predicted"] - val["predicted_low"]],
                    [val["predicted_high"] - val["predicted"]]], fmt="s", color="tab:orange", capsize=4,
                    label="predicted (validation)")
    if "actual" in val:
        ax.scatter([val["compute"]], [val["actual"]], marker="x", s=90, color="black", label="measured (validation)")
    ax.set(xscale="log", yscale="log", xlabel="C (FLOPs)", ylabel="val loss", title="loss at the compute-optimal allocation")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    _save(fig, path)


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _ci(law: dict, key: str) -> str:
    low, high = law[f"{key}_ci"]
    return f"[{low:.4g}, {high:.4g}]"


def markdown(result: dict) -> str:
    study, counts, val, rec = result["study"], result["counts"], result["validation"], result["recommendation"]
    lines = ["# Scaling-law study", "",
             f"Budgets {study['budget_min']:.3g} – {study['budget_max']:.3g} FLOPs ({study['n_budgets']} log-spaced; "
             f"grid on {study['hp_budgets']} after the {study.get('hp_skip_smallest', 0)} smallest, IsoFLOP on the "
             f"{study['iso_budgets']} largest), "
             f"seq_len {result['seq_len']}; {result['seconds'] / 60:.1f} min.", "",
             "Trials: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + ".", "",
             "## Laws (ours beside DeepSeek LLM's)", "",
             f"| law | ours: coefficient | exponent | {study['confidence']:.0%} CI of exponent | CI of coefficient | "
             "DeepSeek |", "|---|---|---|---|---|---|"]
    for name, label in (("eta", "η_opt = a·C^α"), ("batch", "B_opt = b·C^β"), ("m", "M_opt = M_base·C^a"),
                        ("d", "D_opt = D_base·C^b"), ("loss", "L_opt = L·C^γ")):
        law = result["laws"][name]
        paper = PAPER.get(name)
        lines.append(f"| {label} | {law['coef']:.4g} | {law['exponent']:.4f} | {_ci(law, 'exponent')} | "
                     f"{_ci(law, 'coef')} | {f'{paper[0]}·C^{paper[1]}' if paper else '—'} |")
    lines += ["", "## IsoFLOP minima", "", "| C | M_opt | D_opt | loss | parabola |", "|---|---|---|---|---|"]
    lines += [f"| {m['budget']:.3g} | {m['m_opt']:.3g} | {m['budget'] / m['m_opt']:.3g} | {m['loss']:.4f} | "
              f"{'fitted' if m['fitted'] else 'best point (no minimum inside)'} |" for m in result["minima"]]
    lines += checks_md(result)
    lines += ["", f"## Recommendation for C = {rec['budget']:.3g}", "",
              f"n_layer {rec['n_layer']}, d_model {rec['d_model']}, heads {rec['n_head']}, d_ffn {rec['d_ffn']} "
              f"(M = {rec['m']:.3g}; M_opt {rec['m_opt']:.3g}), {rec['tokens']:,} tokens, batch {rec['batch_tokens']} "
              f"tokens, lr {rec['lr']:.4g}, warmup {rec['warmup_steps']} steps.", "",
              "## Validation", ""]
    if "predicted" in val:
        lines.append(f"At C = {val['compute']:.3g} ({val['budget']:.3g} planned): predicted loss {val['predicted']:.4f} "
                     f"[{val['predicted_low']:.4f}, {val['predicted_high']:.4f}]"
                     + (f", measured {val['actual']:.4f} (error {val['relative_error']:+.1%})." if "actual" in val
                        else ", not trained."))
    else:
        lines.append(val.get("reason", "not run"))
    verdict = result.get("verdict", {"status": "unchecked", "reason": ""})
    lines += ["", f"**Verdict of the {val['budget'] / max(m['budget'] for m in result['minima']):.3g}× check: "
              f"{VERDICTS[verdict['status']]}**" + (f" ({verdict['reason']})." if verdict["reason"] else ".")]
    lines += ["", "![grid](hp_grid.png)", "![isoflop](isoflop.png)", "![laws](laws.png)", "![loss](loss_law.png)", ""]
    return "\n".join(lines)


VERDICTS = {"passed": "the laws passed (measured loss inside the interval and within tolerance of the prediction)",
            "failed": "the laws FAILED their check", "unchecked": "unchecked (no validation run)"}


def checks_md(result: dict) -> list[str]:
    """Bracketing, extrapolation and M's share of the compute: what the laws may be trusted for."""
    lines = ["", "## Bracketing of the grid", "", "| C | bracketed | finished runs | why not |", "|---|---|---|---|"]
    for b in result.get("brackets", []):
        unfit = "**no: fitted anyway (scaling.fit_unbracketed)**" if result["study"].get("fit_unbracketed") else \
            "**no: not fitted**"
        lines.append(f"| {b['budget']:.3g} | {'yes' if b['bracketed'] else unfit} | {b['runs']} | "
                     f"{b['reason'] or '—'} |")
    if result.get("brackets"):
        lines += ["", f"{result['brackets'][0]['rounds']} extension round(s) of at most "
                  f"{result['brackets'][0]['cap']} (scaling.bracket_rounds)."]
    rec, reach = result["recommendation"], result.get("reach", {})
    flags = rec.get("extrapolation", {})
    lines += ["", "## Extrapolation", ""]
    if reach:
        lines.append(f"The validation budget is {reach['hp']:.3g}× the largest fitted grid budget and "
                     f"{reach['iso']:.3g}× the largest IsoFLOP budget" + (" (more than 10×: beyond what the study "
                     "supports)." if max(reach.values()) > 10 * 1.001 else "."))
    for held in result.get("isoflop_held", []):
        moved = {k: v for k, v in held.items() if k != "budget"}
        lines.append(f"IsoFLOP profile at C = {held['budget']:.3g} trained with "
                     f"{describe_clamp({'within': result['study'].get('recommend_within'), 'clamped': moved})}.")
    if rec.get("clamped"):
        lines.append(f"**Held inside the range (scaling.recommend_within = {rec['within']}):** "
                     f"{describe_clamp(rec)}; the laws were not measured where they point.")
    if flags.get("axes"):
        explored = ", ".join(f"{a} {v['explored'][0]:.4g}–{v['explored'][1]:.4g}" for a, v in flags["axes"].items())
        lines.append(f"Explored by the fitted grid runs: {explored}. " + (
            f"**Flagged: {describe(flags)}**; `dsllm pipeline --from-scaling-study` refuses it without "
            "--force-scaling-study." if flags["flagged"] else
            f"The recommendation's lr and batch lie within {flags['factor']:g}× of that range."))
    lines += ["", "## M's share of the real compute", "",
              "M counts no vocabulary FLOPs; the output head (6·V·d per token) is real compute that C = M·D "
              "leaves out (the input embedding is a lookup).", "",
              "| phase | C | M / real FLOPs | omitted (head) |", "|---|---|---|---|"]
    shares = result.get("m_share", {})
    for phase in ("grid", "isoflop"):
        for b in shares.get(phase, []):
            span = (f"{b['m_share_min']:.0%}" if b["m_share_min"] == b["m_share_max"] else
                    f"{b['m_share_min']:.0%}–{b['m_share_max']:.0%}")
            lines.append(f"| {phase} | {b['budget']:.3g} | {span} | {b['omitted_min']:.0%}–{b['omitted_max']:.0%} |")
    val = shares.get("validation")
    if val:
        lines.append(f"| validation | {val['budget']:.3g} | {val['m_share']:.0%} | {val['omitted']:.0%} |")
    weak = [b for p in ("grid", "isoflop") for b in shares.get(p, []) if not b["meaningful"]]
    if weak:
        named = ", ".join(sorted({f"{b['budget']:.3g}" for b in weak}, key=float))
        lines += ["", f"**M is not a meaningful share at every budget**: some trials spend under "
                  f"{MEANINGFUL_M_SHARE:.0%} of their FLOPs inside M (at C = {named}), so the M/D laws describe the "
                  "non-embedding compute only and the real compute-optimal allocation of these small models differs."]
    return lines
