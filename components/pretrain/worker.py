"""`train_loop(config)`: the function every Ray Train worker runs.

Resume from the newest checkpoint, train to the configured number of steps (or to what a time budget
holds: components.pretrain.budget), evaluate every
`eval_every` steps, checkpoint every `checkpoint_every` steps and at the end, then write the final
weights as a Hugging Face model (`<checkpoints>/final`). All ranks report to Ray at the same steps.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import asdict
from pathlib import Path

from components.pretrain import budget, checkpoint
from components.pretrain.budget import TimeBudget
from components.pretrain.loop import Run, RunSpec
from components.pretrain.metrics import MetricsSink, utilisation
from components.pretrain.runtime import all_mean

log = logging.getLogger("dsllm.pretrain")

FINAL = "final"


def _report(metrics: dict) -> None:
    import ray.train

    ray.train.report({k: v for k, v in metrics.items() if isinstance(v, int | float | str)})


def train_loop(config: dict) -> None:
    spec = RunSpec(**config)
    run, cfg, root = Run(spec), spec.cfg, spec.run_root
    rank0 = run.where.rank == 0
    sink = MetricsSink(root / "metrics.jsonl", spec.mlflow_uri, spec.mlflow_run_id) if rank0 else None
    run.resume()
    clock = _time_budget(spec, run)
    peak, source = run.peak_flops() if rank0 else (0.0, "")
    trusted = "busy" not in source  # a CPU probe taken under load may read low (components.plan.peak)
    if sink:
        sink.truncate(run.step)
    logged = not (clock and not clock.settled(run.step))  # the run's params once its length is settled
    if sink and logged:
        sink.params(_params(run, peak, source, clock))
    record: dict = {"step": run.step, "tokens": run.tokens}
    while run.step < run.total_steps:
        record = run.train_step()
        checkpoint.heartbeat(root, run.where.rank, run.step)
        probe = clock is not None and clock.first_due(run.step)  # evaluate and checkpoint now, to time them
        if clock:
            clock.observe(record["step_s"])
        last = run.step == run.total_steps
        if peak:
            record.update(mfu=utilisation(run.flops_per_token, record["tokens_per_s"], peak, source, trusted),
                          matmul_utilisation=utilisation(run.matmul_flops_per_token, record["tokens_per_s"], peak,
                                                         source, trusted))
            if not trusted:  # kept in the metrics, but shown nowhere as an MFU (it can read over 100%)
                record["peak_probed_busy"] = 1
        record.update(time=time.time(), total_steps=run.total_steps)
        evaluate = run.step % cfg.eval_every == 0 or last or probe
        save = run.step % cfg.checkpoint_every == 0 or last or probe
        started = time.perf_counter()
        if evaluate:
            record["val_loss"] = run.evaluate()
            if clock:
                clock.eval_s = time.perf_counter() - started
        if sink:
            sink.write(record, flush=evaluate or save)
        started = time.perf_counter()
        if save:
            run.save()
            if clock:
                clock.checkpoint_s = time.perf_counter() - started
        if clock and clock.due(run.step, evaluate):
            _decide(clock, run, spec)
        if sink and not logged and clock.settled(run.step):
            sink.params(_params(run, peak, source, clock))
            logged = True
        if evaluate or save:
            _report(record)
    weights = run.final_weights()
    if rank0:
        save_final(spec, weights, root / FINAL)
        sink.flush()
    _report({"step": run.step, "tokens": run.tokens, "done": 1})


def _time_budget(spec: RunSpec, run: Run) -> TimeBudget | None:
    """The run's time budget, with the decision of an earlier attempt applied; None without a budget."""
    cfg = spec.cfg
    if not cfg.time_budget_min:
        return None
    earlier = budget.read(spec.ckpt_dir)
    if earlier:
        run.set_total_steps(earlier.steps)
    return TimeBudget(cfg.time_budget_min, cfg.warmup_steps, run.step, spec.total_steps, earlier)


def _decide(clock: TimeBudget, run: Run, spec: RunSpec) -> None:
    """Set (or revise) the run's length from this attempt's timings; rank 0 records it beside the checkpoints."""
    import torch

    cfg, before = spec.cfg, clock.decided
    decision = clock.decide(run.step, cfg.eval_every, cfg.checkpoint_every,
                            agree=lambda steps: round(float(all_mean(torch.tensor(float(steps), device=run.where.device),
                                                                     run.where))))
    run.set_total_steps(decision.steps)
    if run.where.rank == 0:
        budget.write(spec.ckpt_dir, decision)
        if before is None or abs(decision.steps - before.steps) > 0.05 * before.steps:
            log.info("pretrain: %s", decision.describe(cfg.batch_tokens))


def _params(run: Run, peak: float, source: str, clock: TimeBudget | None) -> dict:
    """Run-level facts for the tracking store, with the time budget's decision when there is one."""
    facts = {**run.describe(), "run.peak_flops": peak, "run.peak_source": source}
    if clock and clock.decided:
        facts.update({f"budget.{k}": v for k, v in asdict(clock.decided).items()})
    return facts


def save_final(spec: RunSpec, weights: dict, target: Path) -> None:
    """Write `weights` as a plain fp32 `LlamaForCausalLM` with save_pretrained (atomically)."""
    from components.model import build_model

    lm = build_model(spec.model_cfg, **spec.ids)
    missing, unexpected = lm.load_state_dict(weights, strict=False)
    tied = {"lm_head.weight"} if spec.model_cfg.tie_embeddings else set()
    assert not unexpected and set(missing) <= tied, f"final weights do not fit the model: {missing} {unexpected}"
    if tied:
        lm.tie_weights()
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    lm.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
