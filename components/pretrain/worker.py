"""`train_loop(config)`: the function every Ray Train worker runs.

Resume from the newest checkpoint, train to the configured number of steps, evaluate every
`eval_every` steps, checkpoint every `checkpoint_every` steps and at the end, then write the final
weights as a Hugging Face model (`<checkpoints>/final`). All ranks report to Ray at the same steps.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from components.pretrain import checkpoint
from components.pretrain.loop import Run, RunSpec
from components.pretrain.metrics import MetricsSink, utilisation

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
    peak, source = run.peak_flops() if rank0 else (0.0, "")
    trusted = "busy" not in source  # a CPU probe taken under load may read low (components.plan.peak)
    if sink:
        sink.truncate(run.step)
        sink.params({**run.describe(), "run.peak_flops": peak, "run.peak_source": source})
    record: dict = {"step": run.step, "tokens": run.tokens}
    while run.step < spec.total_steps:
        record = run.train_step()
        checkpoint.heartbeat(root, run.where.rank, run.step)
        last = run.step == spec.total_steps
        if peak:
            record.update(mfu=utilisation(run.flops_per_token, record["tokens_per_s"], peak, source, trusted),
                          matmul_utilisation=utilisation(run.matmul_flops_per_token, record["tokens_per_s"], peak,
                                                         source, trusted))
            if not trusted:  # kept in the metrics, but shown nowhere as an MFU (it can read over 100%)
                record["peak_probed_busy"] = 1
        record["time"] = time.time()
        evaluate = run.step % cfg.eval_every == 0 or last
        save = run.step % cfg.checkpoint_every == 0 or last
        if evaluate:
            record["val_loss"] = run.evaluate()
        if sink:
            sink.write(record, flush=evaluate or save)
        if save:
            run.save()
        if evaluate or save:
            _report(record)
    weights = run.final_weights()
    if rank0:
        save_final(spec, weights, root / FINAL)
        sink.flush()
    _report({"step": run.step, "tokens": run.tokens, "done": 1})


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
