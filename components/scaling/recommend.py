"""From fitted laws to a pretraining config: model shape, tokens, batch size and learning rate for a budget.

`recommend(budget, laws, rules, seq_len, unit, ranges)` picks the ladder shape nearest to M_opt(C), trains it
on D = C / M tokens (whole batches) at B_opt(C) and eta_opt(C), held inside the range scaling.recommend_within
names (by default the near-optimal grid runs': a 2-budget law extrapolated 10× is not a measurement).
`overrides(...)` turns that into `section.field=value` strings for `load_config`, recomputed for the target
pipeline's sequence length and batch layout; `load(ref)` reads a finished study from a `dsllm://scaling/<key>`
URI, its directory, or the MLflow run that built it.
"""

from __future__ import annotations

import json
from pathlib import Path

from components.config import PipelineConfig, StudyConfig
from components.scaling.checks import ExtrapolationError, clamp, describe, extrapolation
from components.scaling.fit import Law
from components.scaling.plan import Shape, ladder, nearest_shape, round_batch

LAWS_FILE = "laws.json"


def shapes_for(target_m: float, rules: StudyConfig, seq_len: int) -> list[Shape]:
    """Ladder shapes deep enough to reach `target_m` (the ladder grows until it passes twice the target)."""
    layers = 8
    while True:
        shapes = ladder(rules, max_layers=layers)
        if max(s.flops(seq_len) for s in shapes) > 2 * target_m or layers >= 512:
            return shapes
        layers *= 2


def recommend(budget: float, laws: dict[str, Law], rules: StudyConfig, seq_len: int, unit: int,
              ranges: dict | None = None) -> dict:
    """The compute-optimal run for `budget` FLOPs under the fitted laws. With `ranges` (laws.json's "explored"
    and "optima"), its lr and batch are held inside the one scaling.recommend_within names ("clamped" says
    what the laws said)."""
    target = float(laws["m"](budget))
    shape = nearest_shape(target, shapes_for(target, rules, seq_len), seq_len, rules.aspect)
    m = shape.flops(seq_len)
    law = {"lr": float(f"{float(laws['eta'](budget)):.4g}"), "batch": round_batch(float(laws["batch"](budget)), unit)}
    held, moved = clamp(law, (ranges or {}).get(rules.recommend_within, {}))
    batch = round_batch(held["batch"], unit)
    steps = max(1, int(budget / m // batch))
    return {"budget": budget, "n_layer": shape.n_layer, "d_model": shape.d_model, "n_head": shape.n_head,
            "n_kv_head": shape.n_head, "d_ffn": shape.d_ffn, "m": m, "tokens": steps * batch, "batch_tokens": batch,
            "lr": held["lr"], "steps": steps, "warmup_steps": max(1, round(rules.warmup_fraction * steps)),
            "seq_len": seq_len, "m_opt": target, "d_opt": float(laws["d"](budget)), "within": rules.recommend_within,
            "clamped": moved}


def study_ranges(study: dict) -> dict:
    """The hyperparameter ranges a finished study stored (none for studies from before the checks)."""
    return {name: study.get(name) or {} for name in ("explored", "optima")}


def as_overrides(rec: dict) -> list[str]:
    """The recommendation as `--set` overrides of the model and pretrain sections (its token count exactly: a preset's
    time budget is dropped)."""
    model = [f"model.{k}={rec[k]}" for k in ("n_layer", "d_model", "n_head", "n_kv_head", "d_ffn")]
    return model + [f"pretrain.total_tokens={rec['tokens']}", f"pretrain.batch_tokens={rec['batch_tokens']}",
                    f"pretrain.lr={rec['lr']}", f"pretrain.warmup_steps={rec['warmup_steps']}",
                    "pretrain.time_budget_min=null"]


def overrides(study: dict, cfg: PipelineConfig, budget: float | None = None, force: bool = False) -> list[str]:
    """Overrides applying a finished study to `cfg` at `budget` (default: the study's recommendation).

    Raises ExtrapolationError when the lr or batch lies further outside the study's explored grid than its
    extrapolation_factor, unless `force` (studies from before the check carry no explored range)."""
    laws = {k: Law.from_dict(v) for k, v in study["laws"].items()}
    rules = StudyConfig(**study["study"])
    unit = cfg.pretrain.micro_batch * max(cfg.pretrain.num_workers, 1) * cfg.pack.seq_len
    budget = budget or study["recommendation"]["budget"]
    rec = recommend(budget, laws, rules, cfg.pack.seq_len, unit, study_ranges(study))
    flags = extrapolation(rec, study.get("explored") or {}, rules.extrapolation_factor)
    if flags["flagged"] and not force:
        raise ExtrapolationError(f"the study's recommendation for C = {budget:.3g} extrapolates: {describe(flags)}. "
                                 "Its laws were not measured there; run a study with larger budgets, or pass "
                                 "--force-scaling-study (or --set scaling.allow_extrapolation=true) to apply it "
                                 "anyway")
    return as_overrides(rec)


def load(ref: str, store=None) -> dict:
    """laws.json of a study: `dsllm://scaling/<key>`, an artifact directory, or an MLflow run id."""
    from components.artifacts import ArtifactStore

    if ref.startswith("dsllm://"):
        return _read((store or ArtifactStore()).resolve(ref) / LAWS_FILE)
    if Path(ref).is_dir():
        return _read(Path(ref) / LAWS_FILE)
    if len(ref) == 32 and all(c in "0123456789abcdef" for c in ref):
        return _from_mlflow(ref)
    raise ValueError(f"{ref!r} is not a scaling study: pass dsllm://scaling/<key>, its directory, or the MLflow "
                     "run id of the scaling stage (`dsllm scaling show` lists them)")


def _read(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: is this the output of a finished scaling study?")
    return json.loads(path.read_text())


def _from_mlflow(run_id: str) -> dict:
    import tempfile

    from components.home import mlflow_client

    client = mlflow_client()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, f"report/{LAWS_FILE}", tmp)
        except Exception as err:
            raise FileNotFoundError(f"MLflow run {run_id} has no report/{LAWS_FILE} ({err}): pass the run of a "
                                    "finished scaling stage") from None
        return _read(Path(path))

