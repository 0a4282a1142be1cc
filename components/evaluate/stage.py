"""The `evaluate` stage: a model artifact (and optionally a pack for bits-per-byte) -> scorecard.

inputs: {"model": <artifact dir; the HF model in hf/ when present>, "pack": <pack artifact>}.
Writes report/scorecard.md, report/scorecard.png and samples/<task>.jsonl into the output
directory and returns {task: {metric: value}}. `REGISTERED_MODEL` (defined in `registered.py`) downloads
a registered model version as an artifact the evaluate stage can score.
"""

from __future__ import annotations

from operator import attrgetter
from pathlib import Path

from components.artifacts import StageSpec
from components.config import EvalConfig
from components.evaluate.registered import STAGE as REGISTERED_MODEL
from components.evaluate.runner import evaluate
from components.home import Home
from components.sources.benchmarks import fingerprint

NOT_IN_KEY = {"batch_size", "sandbox_workers", "cache", "judge_concurrency"}
"""Settings that change how fast results come, not what they are."""
__all__ = ["REGISTERED_MODEL", "STAGE"]
JUDGED = ("judge", "opponent", "judge_max_tokens", "exam_files")
"""Settings of the judged tasks: in the key only when set, so evaluations keyed before they existed stay valid."""


def work(cfg: EvalConfig, inputs: dict[str, Path], out_dir: Path) -> dict:
    if "model" not in inputs:
        raise ValueError("The evaluate stage needs inputs['model'] (a model artifact URI)")
    return evaluate(inputs["model"], cfg=cfg, pack=inputs.get("pack"), out_dir=out_dir, home=Home.resolve(),
                    show_progress=True)  # a bar with ETA per task (scoring, generating, sandbox)


def key_config(cfg: EvalConfig) -> dict:
    unset = {name for name in JUDGED if getattr(cfg, name) == EvalConfig.model_fields[name].default}
    return {**cfg.model_dump(mode="json", exclude=NOT_IN_KEY | unset), "evalsets": fingerprint()}  # extras on/off


STAGE = StageSpec("evaluate", 2, work, key_config, config=EvalConfig, section=attrgetter("eval"))  # 2: GSM8K 8-shot from the wheel, eval-set fingerprint, unforgeable code verdicts, per-document bpb, lm-eval acc_norm, mode by kind
