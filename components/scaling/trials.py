"""Run study trials with Ray Tune over the project's pretraining, and remember every finished one.

Each Tune trial is a driver function holding 0.01 CPU (so drivers never take the cores the training
needs: no deadlock on 2 CPUs; the trial's workers take trial_cpus - 0.01). The driver checks the trial with `trainer.plan` and trains it with
`trainer.fit`: a distributed `TorchTrainer` when `trial_workers >= 1`, or Ray Train's local mode in a Ray
task holding the trial's CPUs when `trial_workers == 0` (Ray reuses task processes, so no worker group
and no torch import per trial; local mode cannot run inside the Tune session's own process).

Every finished trial is appended to `<work_dir>/results.jsonl` by a callback in the study's process the
moment Tune reports it, so a killed study loses only the trials that were running; `pending` leaves out
the finished ones. Failed trials are recorded with their reason and retried by the next run. With an
MLflow parent run, each trial becomes a child run (params, final metrics, its loss curve).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import time
from pathlib import Path

from ray import tune

from components.scaling.plan import DRIVER_CPUS, Trial

log = logging.getLogger("dsllm.scaling")
RESULTS = "results.jsonl"
FINISHED = ("ok", "diverged")


def load_results(work_dir: Path) -> dict[str, dict]:
    """Finished trials by id (the newest line wins; an unfinished last line is ignored)."""
    path = Path(work_dir) / RESULTS
    found: dict[str, dict] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("status") in FINISHED:
                found[record["id"]] = record
    return found


def append_result(work_dir: Path, record: dict) -> None:
    """One line per record; a line cut short by a kill is closed first so it cannot swallow this one."""
    path = Path(work_dir) / RESULTS
    cut = path.is_file() and path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
    with path.open("a") as fh:
        fh.write(("\n" if cut else "") + json.dumps(record) + "\n")


def pending(trials: list[Trial], done: dict[str, dict]) -> list[Trial]:
    """Trials still to train: not finished before, each id once."""
    seen, out = set(done), []
    for trial in trials:
        if trial.id not in seen:
            seen.add(trial.id)
            out.append(trial)
    return out


# ---- the driver (runs in a Tune trial actor) ---------------------------------------------------------------
def _local_fit(spec) -> None:
    from components.pretrain.trainer import fit

    fit(spec, progress=False)


def drive(config: dict) -> None:
    """Tune function trainable: train one trial with the project's pretraining, report its final losses."""
    import ray

    from components.config import ModelConfig, PretrainConfig
    from components.pretrain.metrics import read
    from components.pretrain.trainer import fit, plan, worker_env

    trial, folder = config["trial"], Path(config["work_dir"]) / "trials" / config["trial"]["id"]
    ckpt = folder / "ckpt"
    shutil.rmtree(ckpt, ignore_errors=True)  # a killed attempt restarts (trials checkpoint only at the end)
    started = time.time()
    cfg = PretrainConfig(**trial["pretrain"])
    spec, _ = plan(ModelConfig(**trial["model"]), cfg, Path(config["pack"]), Path(config["tokenizer"]), ckpt)
    # each trial is its own MLflow child run (TrialRuns, from results.jsonl): its steps and params must not land
    # in the study stage's run, whose id the trial's actor inherits from the driver's environment
    spec = dataclasses.replace(spec, mlflow_run_id=None)
    if cfg.num_workers == 0:  # outside the driver's placement group (Tune captures child tasks by default)
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        task = ray.remote(_local_fit).options(
            num_cpus=cfg.cpus_per_worker or 1, num_gpus=1 if cfg.use_gpu else 0, runtime_env={"env_vars": worker_env()},
            scheduling_strategy=PlacementGroupSchedulingStrategy(placement_group=None))
        ray.get(task.remote(spec))
    else:
        fit(spec, progress=False)
    shutil.copy2(ckpt / "metrics.jsonl", folder / "metrics.jsonl")
    shutil.rmtree(ckpt, ignore_errors=True)
    tune.report(outcome(read(folder / "metrics.jsonl"), time.time() - started))


def outcome(records: list[dict], seconds: float) -> dict:
    """Final numbers of a trial: mean validation loss over domains (the fits' loss) and training loss."""
    train = [r for r in records if "loss" in r]
    val = next((r["val_loss"] for r in reversed(train) if r.get("val_loss")), {})
    tail = train[-max(1, len(train) // 10):]
    values = list(val.values())
    val_mean = sum(values) / len(values) if values else float("nan")
    status = "ok" if all(map(math.isfinite, [val_mean, train[-1]["loss"] if train else math.nan])) else "diverged"
    return {"status": status, "loss": val_mean, "val_loss": json.dumps(val), "train_loss": train[-1]["loss"] if train
            else math.nan, "train_loss_tail": sum(r["loss"] for r in tail) / max(len(tail), 1),
            "steps": train[-1]["step"] if train else 0, "seconds": seconds,
            "tokens_per_s": sorted(r["tokens_per_s"] for r in train)[len(train) // 2] if train else 0.0}


# ---- the study's side ---------------------------------------------------------------------------------------
class Recorder(tune.Callback):
    """Persists each trial as Tune reports it (and logs it to MLflow); drives the progress bar."""

    def __init__(self, work_dir: Path, tracker, bar):
        self.work_dir, self.tracker, self.bar = Path(work_dir), tracker, bar
        self.records: list[dict] = []

    def __getstate__(self) -> dict:
        """Tune pickles its callbacks into the experiment folder (for Tuner.restore, unused here): the bar's
        stream and the MLflow client stay behind."""
        return {"work_dir": self.work_dir, "tracker": None, "bar": None, "records": []}

    def _write(self, record: dict) -> None:
        append_result(self.work_dir, record)
        self.records.append(record)
        self.tracker.trial(record, self.work_dir / "trials" / record["id"] / "metrics.jsonl")
        if self.bar is not None:
            self.bar.update(1)

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = dict(trial.last_result or {})
        if "status" not in result:  # finished without reporting: treat as a failure
            return self.on_trial_error(iteration, trials, trial)
        keep = {k: result[k] for k in ("status", "loss", "val_loss", "train_loss", "train_loss_tail", "steps",
                                       "seconds", "tokens_per_s")}
        keep["val_loss"] = json.loads(keep["val_loss"])
        self._write({**trial.config["trial"], **keep, "finished": time.time()})

    def on_trial_error(self, iteration, trials, trial, **info):
        reason = "unknown error"
        if trial.error_file and Path(trial.error_file).is_file():
            reason = Path(trial.error_file).read_text()[-2000:]
        log.warning("trial %s failed: %s", trial.config["trial"]["id"], reason.strip().splitlines()[-1:])
        self._write({**trial.config["trial"], "status": "error", "reason": reason, "finished": time.time()})


def run_trials(trials: list[Trial], work_dir: Path, pack: Path, tokenizer: Path, name: str, tracker,
               concurrent: int, progress: bool = True) -> list[dict]:
    """Train the trials not finished before (in parallel on Ray Tune); returns the new records."""
    from tqdm import tqdm

    work_dir = Path(work_dir)
    todo = pending(trials, load_results(work_dir))
    if not todo:
        return []
    for trial in todo:
        (work_dir / "trials" / trial.id).mkdir(parents=True, exist_ok=True)
    space = {"trial": tune.grid_search([t.as_dict() for t in todo]), "work_dir": str(work_dir.resolve()),
             "pack": str(Path(pack).resolve()), "tokenizer": str(Path(tokenizer).resolve())}
    bar = tqdm(total=len(todo), desc=f"scaling {name}", unit="trial") if progress else None
    recorder = Recorder(work_dir, tracker, bar)
    tuner = tune.Tuner(
        tune.with_resources(drive, {"CPU": DRIVER_CPUS}),
        param_space=space,
        tune_config=tune.TuneConfig(max_concurrent_trials=concurrent, reuse_actors=True),
        run_config=tune.RunConfig(name=f"{name}-{time.strftime('%Y%m%d-%H%M%S')}", verbose=0,
                                  storage_path=str((work_dir / "tune").resolve()), callbacks=[recorder]))
    try:
        tuner.fit()
    finally:
        if bar is not None:
            bar.close()
    return recorder.records
