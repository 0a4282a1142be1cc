"""`evaluate(model, tasks, limit)`: run registered tasks on a model and write the report.

The model is anything `load_model` takes (or an object with the same calls, as the oracle tests
use). Model calls go through the result cache; code runs in the sandbox. With `out_dir` it
writes `samples/<task>.jsonl` (one record per sample, each with its `id` and numeric `score`) and
`report/scorecard.{md,png}`.

Prompting (`mode`): "auto" follows the model's kind (`kind.model_kind`: a pretrain artifact or
`dsllm-base` gets base prompting, SFT/DPO or `dsllm-chat` chat), the tokenizer's chat template only
when the kind is unknown. A task whose data is unavailable is skipped with one line saying what is
missing and how to get it; the result lists it under `not_available: {task: reason}` (never inside
a task's numeric metrics) and the scorecard shows it as "not available". The judged tasks (pairwise,
graded, exam; `judge/`) run only with a judge configured; otherwise they are listed there as "not run: no
judge configured" and neither a model is loaded for them nor anything called.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm

from components.config import EvalConfig
from components.evaluate import choice, code, data, generation
from components.evaluate.bpb import run_bpb
from components.evaluate.cache import ResultCache, request_key
from components.evaluate.lm import ChoiceScore
from components.evaluate.registry import parse_tasks
from components.evaluate.sandbox import Limits, Sandbox
from components.evaluate.task import Item, Style, Task, subsample
from components.home import Home


def style_for(lm) -> Style:
    if not lm.is_chat:
        return Style()
    head, tail = lm.chat_parts
    return Style(True, head, tail)


class Session:
    """One evaluation: the model, its cache, the sandbox and the settings shared by every task."""

    def __init__(self, lm, cfg: EvalConfig, home: Home, show_progress: bool = True, model_ref=None):
        self.lm, self.cfg, self.home, self.model_ref = lm, cfg, home, model_ref
        self.style = style_for(lm) if lm is not None else Style(True)  # None: an endpoint answers (judged tasks)
        self.cache = ResultCache(home.cache / "eval" / "results.sqlite" if cfg.cache else None)
        self.show_progress = show_progress
        self._sandbox: Sandbox | None = None

    @property
    def sandbox(self) -> Sandbox:
        if self._sandbox is None:
            seconds = self.cfg.sandbox_timeout_s
            self._sandbox = Sandbox(Limits(timeout_s=seconds, cpu_s=max(1, math.ceil(seconds))),
                                    workers=self.cfg.sandbox_workers)
        return self._sandbox

    def _bar(self, total: int, desc: str):
        return tqdm(total=total, desc=desc, disable=not self.show_progress, leave=False)

    def score(self, task: Task) -> Callable[[list[Item]], list[ChoiceScore]]:
        def run(items: list[Item]) -> list[ChoiceScore]:
            keys = [request_key(self.lm.fingerprint, task.name, it.id, it.request, self.lm.max_length) for it in items]
            with self._bar(len(items), f"{task.name} (scoring)") as bar:
                values = self.cache.cached(keys, lambda idx: [dataclasses.asdict(s) for s in self.lm.loglikelihood(
                    [items[i].request for i in idx])], progress=bar.update)
            return [ChoiceScore(**v) for v in values]
        return run

    def generate(self, task: Task) -> Callable[[list[Item]], list[list[str]]]:
        def run(items: list[Item]) -> list[list[str]]:
            extra = [self.lm.max_length, self.cfg.seed]
            keys = [request_key(self.lm.fingerprint, task.name, it.id, it.request, extra) for it in items]
            with self._bar(len(items), f"{task.name} (generating)") as bar:
                return self.cache.cached(keys, lambda idx: self.lm.generate([items[i].request for i in idx],
                                                                            seed=self.cfg.seed),
                                         chunk=max(self.lm.batch_size, 16), progress=bar.update)
        return run

    def items(self, task: Task) -> list[Item]:
        cfg, kwargs = self.cfg, {}
        if task.kind in ("generate", "code"):
            kwargs["max_new_tokens"] = cfg.max_new_tokens
        if task.kind == "code":
            kwargs.update(n=cfg.n_samples, temperature=cfg.temperature if cfg.n_samples > 1 else 0.0)
        try:
            built = task.build(self.style, task.shots_for(self.style), self.home, **kwargs)
        except data.MissingDataset:
            raise
        except FileNotFoundError as exc:
            raise data.missing(task.name, str(exc), task.hf_id) from None
        return subsample(built, cfg.limit)

    def run(self, task: Task, pack: Path | None = None) -> tuple[dict, list[dict]]:
        """(metrics, per-sample records) of one task."""
        if task.kind == "bpb":
            if pack is None:
                raise ValueError("Task 'bpb' needs a pack artifact: pass --pack (or inputs['pack']), or drop 'bpb' "
                                 "from the task list")
            return run_bpb(self.lm, pack, self.cfg.limit)
        if task.kind == "judge":
            try:
                return task.build(task, self)
            except data.MissingDataset:
                raise
            except FileNotFoundError as exc:
                raise data.missing(task.name, str(exc), task.hf_id) from None
        items = self.items(task)
        if task.kind == "choice":
            return choice.run_choice(items, self.score(task), task.metric)
        if task.kind == "generate":
            return generation.run_generate(items, self.generate(task), task.check)
        with self._bar(len(items) * self.cfg.n_samples, f"{task.name} (sandbox)") as bar:
            return code.run_code(items, self.generate(task), task.program, self.sandbox, [1, 10, 100],
                                 progress=lambda: bar.update(1))


def evaluate(model_ref, tasks: str | list[str] | None = None, limit: int | None = None, *,
             pack: str | Path | None = None, out_dir: str | Path | None = None, cfg: EvalConfig | None = None,
             lm=None, home: Home | None = None, show_progress: bool = True) -> dict[str, dict]:
    """Evaluate `model_ref` on `tasks` (names or "a,b"); returns {task: {metric: value}}.

    `tasks`/`limit` override those of `cfg`. `lm` replaces loading `model_ref` (any object with
    `loglikelihood`, `generate`, `fingerprint`, `is_chat`, `chat_parts`, `max_length`, `batch_size`).
    """
    cfg = (cfg or EvalConfig()).model_copy(update={k: v for k, v in {"tasks": tasks, "limit": limit}.items()
                                                   if v is not None})
    task_list = parse_tasks(cfg.tasks)
    home = home or Home.resolve()
    pack_dir = resolve_pack(pack, home) if pack is not None else None
    if lm is None and needs_model(model_ref, task_list, cfg):
        from components.evaluate.model import load_model

        lm = load_model(model_ref, chat=chat_for(model_ref, cfg.mode, home), batch_size=cfg.batch_size,
                        max_length=cfg.max_length, dtype=cfg.dtype, home=home)
    session = Session(lm, cfg, home, show_progress, model_ref)
    results, missing, out = {}, {}, Path(out_dir) if out_dir is not None else None
    for task in task_list:
        try:
            metrics, records = session.run(task, pack_dir)
        except data.MissingDataset as exc:
            missing[task.name] = str(exc)
            why = str(exc) if str(exc).startswith("not run") else f"not available: {exc}"
            tqdm.write(f"evaluate: skipping {task.name}, {why}", file=sys.stderr)
            continue
        results[task.name] = metrics
        if out is not None:
            write_samples(out / "samples" / f"{task.name}.jsonl", records)
    if out is not None:
        from components.evaluate.report import write_report

        mode = "chat" if lm is None or lm.is_chat else "base"
        write_report(results, out / "report", model=str(model_ref), mode=mode, cfg=cfg,
                     not_available=missing)
    return {**results, "not_available": missing} if missing else results


def needs_model(model_ref, tasks: list[Task], cfg: EvalConfig) -> bool:
    """Load the model here? Not for judged tasks alone when no judge is set (nothing runs) or an endpoint answers."""
    from components.evaluate.judge.contestants import is_endpoint

    if any(t.kind != "judge" for t in tasks):
        if is_endpoint(model_ref):
            raise ValueError(f"{model_ref} is an endpoint: it can answer the judged tasks (pairwise, graded, exam) "
                             f"only; drop {', '.join(t.name for t in tasks if t.kind != 'judge')} or give a model.")
        return True
    return cfg.judge is not None and not is_endpoint(model_ref)


def chat_for(model_ref, mode: str, home: Home | None = None) -> bool | None:
    """Chat prompting? "chat"/"base" as asked; "auto" by the model's kind (None: unknown, the tokenizer decides)."""
    if mode != "auto":
        return mode == "chat"
    from components.evaluate.kind import model_kind

    kind = model_kind(model_ref, home)
    return None if kind is None else kind == "chat"


def resolve_pack(pack: str | Path, home: Home) -> Path:
    if str(pack).startswith("dsllm://"):
        from components.artifacts import ArtifactStore

        return ArtifactStore(home).resolve(str(pack))
    return Path(pack)


def write_samples(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
