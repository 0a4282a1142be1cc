"""The scaling study end to end: grid → HP laws → IsoFLOP profiles → M/D laws → recommendation → validation.

`run_study(...)` trains every planned trial it has no result for (results persist in
`<work_dir>/results.jsonl`, so a killed study resumes where it stopped), extends the grid until each
budget's optimum is bracketed (or names the budget and leaves it out), fits the laws, trains the
recommended model at `validate_factor` × the largest IsoFLOP budget to compare the predicted loss with the
measured one (the verdict), and writes laws.json, results.jsonl and report/ (markdown + PNG) into `out_dir`.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

from components.config import ModelConfig, PretrainConfig, StudyConfig
from components.scaling import bracket, checks, fit, report
from components.scaling.plan import (
    Trial,
    batch_unit,
    estimate_seconds,
    hp_budgets,
    hp_model,
    iso_budgets,
    make_trial,
    plan_grid,
    plan_isoflop,
)
from components.scaling.recommend import LAWS_FILE, recommend
from components.scaling.tracking import TrialRuns
from components.scaling.trials import RESULTS, load_results, run_trials

log = logging.getLogger("dsllm.scaling")


class Study:
    """One study's inputs, where it works, and the trials it has run."""

    def __init__(self, study: StudyConfig, model: ModelConfig, base: PretrainConfig, seq_len: int, pack: Path,
                 tokenizer: Path, work_dir: Path, tracker: TrialRuns, progress: bool = True):
        self.cfg, self.model, self.base, self.seq_len = study, model, base, seq_len
        self.pack, self.tokenizer, self.work_dir = Path(pack), Path(tokenizer), Path(work_dir)
        self.tracker, self.progress = tracker, progress
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.counts = {"planned": 0, "trained": 0, "cached": 0, "failed": 0, "diverged": 0, "skipped": 0}
        self.skipped: list[dict] = []

    def concurrency(self) -> int:
        import ray

        if self.cfg.max_concurrent:
            return self.cfg.max_concurrent
        per_trial = self.cfg.trial_cpus * max(self.cfg.trial_workers, 1)
        return max(1, int(ray.cluster_resources().get("CPU", 1) // per_trial))

    def run(self, trials: list[Trial], name: str) -> list[dict]:
        """Train what is missing of `trials`; returns their finished records (one per planned trial)."""
        done = load_results(self.work_dir)
        cached = [done[t.id] for t in trials if t.id in done]
        for record in cached:
            self.tracker.trial(record, self.work_dir / "trials" / record["id"] / "metrics.jsonl", cached=True)
        concurrent = self.concurrency()
        log.info("scaling %s: %d trials, %d finished before, about %.0f s on %d at once", name, len(trials),
                 len(cached), estimate_seconds([t for t in trials if t.id not in done], concurrent), concurrent)
        new = run_trials(trials, self.work_dir, self.pack, self.tokenizer, name, self.tracker, concurrent,
                         self.progress)
        self.counts["planned"] += len(trials)
        self.counts["cached"] += len(cached)
        self.counts["trained"] += sum(r["status"] != "error" for r in new)
        self.counts["failed"] += sum(r["status"] == "error" for r in new)
        done = load_results(self.work_dir)
        records = [{**done[t.id], "kind": t.kind, "budget": t.budget} for t in trials if t.id in done]
        self.counts["diverged"] += sum(r["status"] == "diverged" for r in records)
        return records


def _rows(records: list[dict]) -> list[dict]:
    return [{"budget": r["budget"], "lr": r["pretrain"]["lr"], "batch": r["pretrain"]["batch_tokens"],
             "m": r["m"], "tokens": r["tokens"], "loss": r["loss"], "id": r["id"]} for r in records]


def _fit_or_explain(fn, records: list[dict], work_dir: Path, brackets: list[dict] | None, *args):
    try:
        return fn(_rows(records), *args)
    except ValueError as err:
        if brackets and any(not b["bracketed"] for b in brackets):
            named = "; ".join(f"C = {b['budget']:.3g}: {b['reason']}" for b in brackets if not b["bracketed"])
            raise checks.NotBracketedError(f"{err}: grid budgets not bracketed after {brackets[0]['rounds']} extension rounds "
                             f"(at most {brackets[0]['cap']}: scaling.bracket_rounds), so no law is fitted from them: {named}. Move "
                             "scaling.learning_rates / batch_tokens / budgets or allow more rounds; finished "
                             f"trials in {work_dir / RESULTS} are reused") from None
        raise ValueError(f"{err}: too few trials finished; see the failures in {work_dir / RESULTS}") from None


def run_study(study: StudyConfig, model: ModelConfig, base: PretrainConfig, seq_len: int, pack: Path,
              tokenizer: Path, work_dir: Path, out_dir: Path, tracking_uri: str | None = None,
              parent_run_id: str | None = None, progress: bool = True) -> dict:
    """Run (or resume) the whole study and publish it into `out_dir`; returns the counts."""
    from components.pretrain.trainer import ensure_ray

    started = time.time()
    ensure_ray()
    s = Study(study, model, base, seq_len, pack, tokenizer, work_dir, TrialRuns(tracking_uri, parent_run_id),
              progress)
    hp_records, brackets = grid_phase(s)
    fitted = [r for r in hp_records if study.fit_unbracketed or r["budget"] in
              {b["budget"] for b in brackets if b["bracketed"]}]
    hp = _fit_or_explain(fit.hp_laws, fitted, s.work_dir, brackets, study.near_optimal, study.bootstrap,
                         study.confidence, study.seed)
    ranges = {"explored": checks.explored(_rows(fitted)), "optima": checks.explored(hp["band"])}
    iso_hp = _iso_hyperparameters(study, hp, ranges.get(study.recommend_within, {}))
    iso, skipped = plan_isoflop(study, model, base, seq_len, lambda c: iso_hp[c][0]["lr"],
                                lambda c: iso_hp[c][0]["batch"])
    s.skipped += skipped
    iso_records = s.run(iso, "isoflop")
    iso_fit = _fit_or_explain(fit.isoflop, iso_records, s.work_dir, None, study.bootstrap, study.confidence,
                              study.seed)
    laws = {"eta": hp["eta"], "batch": hp["batch"], "m": iso_fit["m"], "d": iso_fit["d"], "loss": iso_fit["loss"]}
    validation = _validate(s, laws, iso_fit, ranges)
    target = study.target_budget or validation["budget"]
    rec = recommend(target, laws, study, seq_len, batch_unit(study, seq_len), ranges)
    rec["extrapolation"] = checks.extrapolation(rec, ranges["explored"], study.extrapolation_factor)
    s.counts["skipped"] = len(s.skipped)
    reach = {"hp": validation["budget"] / max(r["budget"] for r in fitted),
             "iso": validation["budget"] / max(m["budget"] for m in iso_fit["minima"])}
    result = {"study": study.model_dump(mode="json"), "seq_len": seq_len, "laws": {k: v.as_dict() for k, v in
              laws.items()}, "paper": fit.PAPER, "minima": iso_fit["minima"], "validation": validation,
              "recommendation": rec, "counts": s.counts, "seconds": time.time() - started, "brackets": brackets,
              **ranges, "reach": reach,
              "isoflop_held": [{"budget": c, **moved} for c, (_, moved) in iso_hp.items() if moved],
              "verdict": checks.verdict(validation, study.validation_tolerance),
              "m_share": {"grid": checks.budget_shares(hp_records), "isoflop": checks.budget_shares(iso_records),
                          "validation": _validation_share(validation)}}
    _publish(Path(out_dir), s, result, hp, iso_fit, hp_records, iso_records)
    return _counts(result)


def _iso_hyperparameters(study: StudyConfig, hp: dict, ranges: dict) -> dict[float, tuple[dict, dict]]:
    """Per IsoFLOP budget: the laws' lr and batch held inside `ranges`, and what the range moved (checks.clamp)."""
    return {c: checks.clamp({"lr": float(hp["eta"](c)), "batch": float(hp["batch"](c))}, ranges)
            for c in iso_budgets(study)}


def grid_phase(s: Study) -> tuple[list[dict], list[dict]]:
    """The batch × LR grid, extended round by round past every edge its near-optimal band touches.

    Each round's extension trials follow from the finished results alone, so a resumed study plans the
    same ones again and finds them in results.jsonl."""
    cfg, unit = s.cfg, batch_unit(s.cfg, s.seq_len)
    grid, skipped = plan_grid(cfg, s.model, s.base, s.seq_len)
    s.skipped += skipped
    small = hp_model(cfg, s.model)
    records = s.run(grid, "grid")
    lr_step, batch_step = bracket.step(cfg.learning_rates), bracket.step(cfg.batch_tokens)

    def feasible(budget: float):
        return lambda batch, lr: "" if make_trial("hp", budget, small, s.base, cfg, s.seq_len, batch, lr) else \
            f"a batch of {batch} tokens leaves fewer than {cfg.min_steps} steps"

    rounds = 0
    while True:
        groups = fit.by_budget(_rows(records))
        states = [bracket.assess(groups.get(c, []), c, cfg.near_optimal, lr_step, batch_step, unit, feasible(c))
                  for c in hp_budgets(cfg)]
        new = [make_trial("hp", st.budget, small, s.base, cfg, s.seq_len, b, lr, round=rounds + 1)
               for st in states if not st.bracketed for b, lr in st.proposals]
        if rounds >= cfg.bracket_rounds or not new:
            break
        rounds += 1
        records += s.run([t for t in new if t is not None], f"grid-extend-{rounds}")
    summary = bracket.summary(states, rounds, cfg.bracket_rounds)
    for b in summary:
        if not b["bracketed"]:
            log.warning("scaling grid: budget %.3g not bracketed after %d rounds: %s", b["budget"], rounds,
                        b["reason"])
    return records, summary


def _validation_share(val: dict) -> dict | None:
    rec = val.get("recommendation")
    if not rec or "vocab_size" not in rec:
        return None
    share = checks.m_share(rec["m"], rec["d_model"], rec["vocab_size"])
    return {"budget": val["budget"], "m_share": share, "omitted": 1 - share,
            "meaningful": share >= checks.MEANINGFUL_M_SHARE}


def _validate(s: Study, laws: dict, iso_fit: dict, ranges: dict) -> dict:
    """Predict the loss of the recommended run at validate_factor × the largest IsoFLOP budget; train it."""
    budget = float(f"{s.cfg.validate_factor * max(iso_budgets(s.cfg)):.3g}")
    rec = recommend(budget, laws, s.cfg, s.seq_len, batch_unit(s.cfg, s.seq_len), ranges)
    rec.update(vocab_size=s.model.vocab_size,
               extrapolation=checks.extrapolation(rec, ranges["explored"], s.cfg.extrapolation_factor))
    shape_model = s.model.model_copy(update={k: rec[k] for k in ("n_layer", "d_model", "n_head", "n_kv_head",
                                                                  "d_ffn")})
    validation_cfg = s.cfg
    if s.cfg.trial_workers == 0:  # alone on the cluster: the CPUs of every trial slot
        validation_cfg = s.cfg.model_copy(update={"trial_cpus": s.cfg.trial_cpus * s.concurrency()})
    trial = make_trial("validate", budget, shape_model, s.base, validation_cfg, s.seq_len, rec["batch_tokens"],
                       rec["lr"])
    out = {"budget": budget, "recommendation": rec, "trained": False}
    if trial is None:
        return {**out, "reason": f"the recommended run has fewer than {s.cfg.min_steps} steps"}
    predicted = fit.predict(iso_fit["boot"]["loss"], laws["loss"], trial.compute, s.cfg.confidence)
    out.update(compute=trial.compute, predicted=predicted["value"], predicted_low=predicted["low"],
               predicted_high=predicted["high"])
    if not s.cfg.validation_run:
        return out
    records = s.run([trial], "validate")
    if records:
        actual = records[0]["loss"]
        out.update(trained=True, actual=actual, relative_error=(predicted["value"] - actual) / actual,
                   seconds=records[0].get("seconds"))
    return out


def _publish(out: Path, s: Study, result: dict, hp: dict, iso_fit: dict, hp_records, iso_records) -> None:
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(s.work_dir / RESULTS, out / RESULTS)
    (out / "skipped.json").write_text(json.dumps(s.skipped, indent=2))
    folder = out / "report"
    folder.mkdir(exist_ok=True)
    (folder / LAWS_FILE).write_text(json.dumps(result, indent=2))
    shutil.copy2(folder / LAWS_FILE, out / LAWS_FILE)
    report.write(folder, result, hp, iso_fit, _rows(hp_records), _rows(iso_records))


def _counts(result: dict) -> dict:
    laws = {name: {"coef": law["coef"], "exponent": law["exponent"], "exponent_low": law["exponent_ci"][0],
                   "exponent_high": law["exponent_ci"][1]} for name, law in result["laws"].items()}
    keep = ("budget", "predicted", "predicted_low", "predicted_high", "actual", "relative_error")
    rec = result["recommendation"]
    return {"trials": result["counts"], "laws": laws, "seconds": result["seconds"],
            "validation": {k: result["validation"][k] for k in keep if k in result["validation"]},
            "recommendation": {k: rec[k] for k in ("budget", "n_layer", "d_model", "tokens", "batch_tokens", "lr")},
            "bracketed": sum(b["bracketed"] for b in result["brackets"]), "not_bracketed":
            [b["budget"] for b in result["brackets"] if not b["bracketed"]],
            "extrapolation_flagged": int(rec["extrapolation"]["flagged"]),
            "verdict": result["verdict"]["status"], "check_passed": int(result["verdict"]["status"] == "passed")}
