"""Each study trial as an MLflow child run of the study's run (params, final metrics, loss curve).

Only the study's own process writes (Tune callbacks run there), so the default SQLite store never sees
concurrent writers. Without a parent run (a study run outside a flow) nothing is logged. MLflow is a
view: a failed write is logged as a warning and never stops the study.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from components.pretrain.metrics import read

log = logging.getLogger("dsllm.scaling")
PARAMS = ("kind", "budget", "m", "tokens")


class TrialRuns:
    """Creates one child run per trial under `parent_run_id` (no-op when it is None)."""

    def __init__(self, tracking_uri: str | None, parent_run_id: str | None):
        self.parent = parent_run_id
        self.client = self.experiment = None
        if parent_run_id:
            import mlflow

            self.client = mlflow.MlflowClient(tracking_uri)
            self.experiment = self.client.get_run(parent_run_id).info.experiment_id

    def trial(self, record: dict, metrics_path: Path | None = None, cached: bool = False) -> str | None:
        if self.client is None:
            return None
        try:
            return self._log(record, metrics_path, cached)
        except Exception as err:  # MLflow is a view of results.jsonl, never the source of truth
            log.warning("trial %s not logged to MLflow (%s)", record.get("id"), err)
            return None

    def _log(self, record: dict, metrics_path: Path | None, cached: bool) -> str:
        from mlflow.entities import Metric, Param, RunTag

        run = self.client.create_run(self.experiment, run_name=f"{record['kind']}-{record['id'][:8]}",
                                      tags={"mlflow.parentRunId": self.parent})
        run_id, model, pretrain = run.info.run_id, record["model"], record["pretrain"]
        params = {**{k: record[k] for k in PARAMS}, "n_layer": model["n_layer"], "d_model": model["d_model"],
                  "n_head": model["n_head"], "batch_tokens": pretrain["batch_tokens"], "lr": pretrain["lr"]}
        tags = {"dsllm.stage": "scaling-trial", "dsllm.trial": record["id"], "dsllm.cached": str(cached).lower(),
                "dsllm.status": record["status"]}
        metrics = [Metric(k, float(record[k]), 0, 0) for k in ("loss", "train_loss", "seconds")
                   if isinstance(record.get(k), int | float) and math.isfinite(record[k])]
        metrics += [Metric(f"val_loss/{b}", float(v), 0, 0) for b, v in (record.get("val_loss") or {}).items()
                    if math.isfinite(v)]
        if metrics_path is not None:
            metrics += [Metric("train_curve", float(r["loss"]), int(r["time"] * 1000), int(r["step"]))
                        for r in read(metrics_path) if "loss" in r and math.isfinite(r["loss"])]
        for start in range(0, max(len(metrics), 1), 1000):  # MLflow's per-request limit
            self.client.log_batch(run_id, metrics=metrics[start:start + 1000],
                                  params=[Param(k, str(v)) for k, v in params.items()] if start == 0 else [],
                                  tags=[RunTag(k, v) for k, v in tags.items()] if start == 0 else [])
        self.client.set_terminated(run_id, "FINISHED" if record["status"] in ("ok", "diverged") else "FAILED")
        return run_id
