"""What the scaling study trains: compute budgets, the batch × LR grid, the IsoFLOP shapes, trial configs.

A trial is a `ModelConfig` + `PretrainConfig` for the project's own pretraining at D = C / M tokens
(M = non-embedding FLOPs per token, DeepSeek's model scale). Model shapes come from one ladder: width
grows with depth at a fixed aspect ratio (d_model ≈ aspect · n_layer, as DeepSeek's models scale depth
and width together; 7B: 4096/30, 67B: 8192/95), heads of `head_dim`, SwiGLU FFN of 8/3 · d_model
rounded up to a multiple of 16 (7B: 11008 for 4096). A trial's id hashes everything that changes its
result, so the same run planned twice (or by a resumed study) is trained once.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from components.artifacts import canonical
from components.config import ModelConfig, PretrainConfig, StudyConfig
from components.model.accounting import flops_per_token

TOKEN_SECONDS = 8.3e-5
"""Cost model of one trial on one CPU thread, fitted to trials measured on the 2-core dev machine (fp32, two
trials at once, the machine shared with other work): a cost per token ..."""
PASS_SECONDS = 0.016
"""... plus a fixed cost per forward/backward pass (of micro_batch sequences), which dominates tiny models
fed short sequences (measured with the 2x64 grid model on one thread: 2743 / 3941 / 5201 tokens/s at
micro-batches of 1 / 2 / 4 sequences of 128 tokens) ..."""
FLOPS_PER_SECOND = 7e9
"""... plus M·D at this rate, and a fixed start-up per trial."""
STARTUP_SECONDS = 5.0
LAYOUT_FIELDS = {"eval_every", "checkpoint_every", "num_workers", "use_gpu", "strategy", "compile", "max_failures",
                 "cpus_per_worker", "peak_flops", "keep_checkpoints"}
"""Pretrain fields that do not change a trial's result (they stay out of its id). micro_batch stays in: with
val_batches it sets how many validation windows the final loss averages."""
DRIVER_CPUS = 0.01
"""What each trial's Tune driver reserves; the trial's workers get trial_cpus less this, so the drivers and
workers of `cluster CPUs // trial_cpus` concurrent trials fit exactly (else one trial waits for another)."""


MIN_LOG_GAP = 0.15
"""Shapes of one IsoFLOP profile differ in M by at least 16% (no two points at the same scale)."""


@dataclass(frozen=True)
class Shape:
    """A decoder shape of the study's ladder."""

    n_layer: int
    d_model: int
    n_head: int
    d_ffn: int

    def model(self, base: ModelConfig) -> ModelConfig:
        return base.model_copy(update={"n_layer": self.n_layer, "d_model": self.d_model, "n_head": self.n_head,
                                       "n_kv_head": self.n_head, "d_ffn": self.d_ffn})

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - shapes are few, frozen and hashable
    def flops(self, seq_len: int) -> int:
        return flops_per_token(ModelConfig(n_layer=self.n_layer, d_model=self.d_model, n_head=self.n_head,
                                           n_kv_head=self.n_head, d_ffn=self.d_ffn), seq_len)


@dataclass
class Trial:
    """One pretraining run of the study; `kind` is hp, iso or validate."""

    kind: str
    budget: float
    model: dict
    pretrain: dict
    m: int
    tokens: int
    extra: dict = field(default_factory=dict)
    seq_len: int = 128

    @property
    def id(self) -> str:
        """Hash of what changes the trained model: the model and the result-bearing pretrain fields."""
        pretrain = {k: v for k, v in self.pretrain.items() if k not in LAYOUT_FIELDS
                    and not (k == "time_budget_min" and v is None)}  # ids from before the field stay
        key = {"model": self.model, "pretrain": pretrain}
        return hashlib.sha256(json.dumps(canonical(key), sort_keys=True).encode()).hexdigest()[:16]

    @property
    def compute(self) -> float:
        return float(self.m) * self.tokens

    def as_dict(self) -> dict:
        return {**asdict(self), "id": self.id}


def head_size(d_model: int, head_dim: int) -> int:
    """Heads grow in size with the width, at least `head_dim`, about d/8, at most 128 (DeepSeek: 128), and
    dividing d_model: 8 heads for small models, 32 heads of 128 at d 4096."""
    size = head_dim
    while size * 2 <= min(128, d_model // 8) and d_model % (size * 2) == 0:
        size *= 2
    return size


def shape(n_layer: int, d_model: int, head_dim: int) -> Shape:
    """The ladder's rules for one (depth, width): heads from `head_size`, FFN 8/3·d rounded up to 16."""
    if d_model % head_dim:
        raise ValueError(f"d_model {d_model} is not a multiple of scaling.head_dim {head_dim}")
    return Shape(n_layer, d_model, d_model // head_size(d_model, head_dim),
                 max(16, math.ceil(8 * d_model / 3 / 16) * 16))


def ladder(study: StudyConfig, max_layers: int = 48) -> list[Shape]:
    """Every shape whose width is within a factor 2 of aspect · n_layer (width a multiple of head_dim)."""
    shapes = []
    for n_layer in range(1, max_layers + 1):
        low, high = study.aspect * n_layer / 2, study.aspect * n_layer * 2
        for d_model in range(study.head_dim * max(1, math.ceil(low / study.head_dim)), int(high) + 1,
                             study.head_dim):
            if d_model >= 16:
                shapes.append(shape(n_layer, d_model, study.head_dim))
    return shapes


def nearest_shape(target_m: float, shapes: list[Shape], seq_len: int, aspect: float) -> Shape:
    """The ladder shape whose M is closest to target_m (in log space), preferring the aspect ratio."""
    def distance(s: Shape) -> float:
        return abs(math.log(s.flops(seq_len) / target_m)) + 0.05 * abs(math.log(s.d_model / s.n_layer / aspect))

    return min(shapes, key=distance)


def budgets(study: StudyConfig) -> list[float]:
    """The study's compute budgets, log-spaced and rounded to 3 significant digits."""
    return [float(f"{c:.3g}") for c in np.geomspace(study.budget_min, study.budget_max, study.n_budgets)]


def hp_budgets(study: StudyConfig) -> list[float]:
    first = study.hp_skip_smallest
    return budgets(study)[first:first + study.hp_budgets]


def iso_budgets(study: StudyConfig) -> list[float]:
    return budgets(study)[-study.iso_budgets:]


def batch_unit(study: StudyConfig, seq_len: int) -> int:
    """Global batches must be multiples of this many tokens (micro-batch × workers × seq_len)."""
    return study.micro_batch * max(study.trial_workers, 1) * seq_len


def round_batch(tokens: float, unit: int) -> int:
    """The multiple of `unit` nearest to `tokens` in log space (at least one unit). Large batches round to a
    multiple of unit × 2^k (at least 8 of those steps, so at most ~6% off): a batch of a power-of-two
    number of sequences can be passed several at a time (`trial_micro_batch`), one of 75 only singly."""
    step = unit * 2 ** max(0, math.floor(math.log2(max(tokens / unit / 8, 1))))
    low = max(1, math.floor(tokens / step))
    return step * min((low, low + 1), key=lambda k: abs(math.log(k * step / tokens)))


def trial_micro_batch(study: StudyConfig, batch: int, seq_len: int) -> tuple[int, int]:
    """(micro_batch, val_batches) of one trial: the most sequences per pass, at most `max_micro_batch`, that
    divide both its per-worker batch and the study's validation windows (micro_batch × val_batches), so
    every trial is scored on the same windows while large batches need fewer, cheaper passes (a pass has a
    fixed cost: PASS_SECONDS). Gradient accumulation makes the update the same either way."""
    per_worker = batch // (seq_len * max(study.trial_workers, 1))
    windows = study.micro_batch * study.val_batches
    step = study.micro_batch  # batches are multiples of it (check_grid), so it always qualifies
    micro = max([d for d in range(step, min(study.max_micro_batch, per_worker) + 1, step)
                 if per_worker % d == 0 and windows % d == 0], default=step)
    return micro, windows // micro


def make_trial(kind: str, budget: float, model: ModelConfig, base: PretrainConfig, study: StudyConfig,
               seq_len: int, batch: int, lr: float, **extra) -> Trial | None:
    """The trial training `model` for budget/M tokens at (batch, lr); None when it has too few steps."""
    m = flops_per_token(model, seq_len)
    steps = int(budget / m // batch)
    if steps < study.min_steps:
        return None
    micro, val_batches = trial_micro_batch(study, batch, seq_len)
    pretrain = PretrainConfig(**{**base.model_dump(),
        "total_tokens": steps * batch, "batch_tokens": batch, "lr": float(f"{lr:.4g}"),
        "warmup_steps": max(1, round(study.warmup_fraction * steps)), "micro_batch": micro,
        "eval_every": steps, "checkpoint_every": steps, "val_batches": val_batches,
        "num_workers": study.trial_workers, "seed": study.seed,
        "cpus_per_worker": study.trial_cpus - DRIVER_CPUS / max(study.trial_workers, 1),
        "keep_checkpoints": False, "time_budget_min": None})  # a trial trains its compute budget exactly
    return Trial(kind, budget, model.model_dump(), pretrain.model_dump(), m, steps * batch, dict(extra),
                 seq_len)


def check_grid(study: StudyConfig, seq_len: int) -> None:
    unit = batch_unit(study, seq_len)
    bad = [b for b in study.batch_tokens if b % unit]
    if bad:
        raise ValueError(f"scaling.batch_tokens {bad} are not multiples of micro_batch × workers × seq_len = "
                         f"{unit}: use multiples such as {[max(1, round(b / unit)) * unit for b in bad]}")


def hp_model(study: StudyConfig, model: ModelConfig) -> ModelConfig:
    """The grid's fixed small model."""
    return shape(study.hp_n_layer, study.hp_d_model, study.head_dim).model(model)


def plan_grid(study: StudyConfig, model: ModelConfig, base: PretrainConfig, seq_len: int
              ) -> tuple[list[Trial], list[dict]]:
    """The batch × LR grid at the fixed small model for each HP budget; (trials, skipped with reason)."""
    check_grid(study, seq_len)
    small = hp_model(study, model)
    trials, skipped = [], []
    for budget in hp_budgets(study):
        for batch in study.batch_tokens:
            for lr in study.learning_rates:
                trial = make_trial("hp", budget, small, base, study, seq_len, batch, lr)
                if trial is None:
                    skipped.append({"kind": "hp", "budget": budget, "batch": batch, "lr": lr,
                                    "reason": f"fewer than {study.min_steps} steps"})
                else:
                    trials.append(trial)
    return trials, skipped


def iso_shapes(study: StudyConfig, budget: float, seq_len: int) -> list[Shape]:
    """`iso_shapes` distinct ladder shapes nearest to M values log-spaced over `iso_span` around
    sqrt(C / tokens_per_m); a window that would reach below the smallest model is shifted up to start there."""
    shapes = ladder(study)
    floor = min(s.flops(seq_len) for s in shapes)
    centre = math.sqrt(budget / study.iso_tokens_per_m)
    low = max(centre / math.sqrt(study.iso_span), floor)
    chosen: list[Shape] = []
    for target in np.geomspace(low, low * study.iso_span, study.iso_shapes):
        free = [s for s in shapes if all(abs(math.log(s.flops(seq_len) / c.flops(seq_len))) > MIN_LOG_GAP
                                         for c in chosen)]
        chosen.append(nearest_shape(float(target), free, seq_len, study.aspect))
    return sorted(chosen, key=lambda s: s.flops(seq_len))


def plan_isoflop(study: StudyConfig, model: ModelConfig, base: PretrainConfig, seq_len: int, lr_of, batch_of
                 ) -> tuple[list[Trial], list[dict]]:
    """IsoFLOP profiles: per budget, each shape at D = C/M with lr_of(C) and batch_of(C) (fitted laws)."""
    unit = batch_unit(study, seq_len)
    trials, skipped = [], []
    for budget in iso_budgets(study):
        batch, lr = round_batch(batch_of(budget), unit), lr_of(budget)
        for s in iso_shapes(study, budget, seq_len):
            trial = make_trial("iso", budget, s.model(model), base, study, seq_len, batch, lr)
            if trial is None:
                skipped.append({"kind": "iso", "budget": budget, "shape": asdict(s),
                                "reason": f"fewer than {study.min_steps} steps"})
            else:
                trials.append(trial)
    return trials, skipped


def validation_trial(study: StudyConfig, model: ModelConfig, base: PretrainConfig, seq_len: int, laws: dict
                     ) -> Trial | None:
    """The validation run `laws` would recommend at validate_factor × the largest budget (for estimates)."""
    from components.scaling.recommend import recommend

    budget = float(f"{study.validate_factor * max(iso_budgets(study)):.3g}")
    rec = recommend(budget, laws, study, seq_len, batch_unit(study, seq_len))
    shaped = model.model_copy(update={k: rec[k] for k in ("n_layer", "d_model", "n_head", "n_kv_head", "d_ffn")})
    return make_trial("validate", budget, shaped, base, study, seq_len, rec["batch_tokens"], rec["lr"])


def passes(t: Trial) -> float:
    """Forward/backward passes of a trial: its tokens over micro_batch sequences of seq_len."""
    return t.tokens / (t.pretrain.get("micro_batch", 1) * t.seq_len)


def trial_seconds(t: Trial) -> float:
    """One trial on one slot under the cost model above."""
    return STARTUP_SECONDS + t.tokens * TOKEN_SECONDS + passes(t) * PASS_SECONDS + t.compute / FLOPS_PER_SECOND


def estimate_seconds(trials: list[Trial], concurrent: int = 1) -> float:
    """Wall-clock estimate of running `trials` (cost model above, perfect packing over `concurrent`)."""
    return sum(trial_seconds(t) for t in trials) / max(concurrent, 1)
