"""Trainer callbacks that run inside the Ray Train workers (rank 0 acts, other ranks pass).

`MlflowLive` sends every logged value to the stage's MLflow run as it happens (the flow opens the
run and exports its id in $DSLLM_MLFLOW_RUN_ID; the driver passes id and tracking URI on).
`RepetitionMonitor` answers held-out prompts at the start and at every checkpoint (every epoch, or
MAX_CHECKPOINTS times over runs of more epochs) and records the share of replies that end in a loop,
the failure DeepSeek watched on math SFT data.
"""

from __future__ import annotations

import logging
import math
import time

from transformers import TrainerCallback

from components.align.chat import generate, repetition_rate

log = logging.getLogger(__name__)


class MlflowLive(TrainerCallback):
    """Logs numeric `logs` as `<prefix>/<name>` metrics at the global step, from rank 0 only."""

    def __init__(self, run_id: str | None, tracking_uri: str | None, prefix: str):
        self.run_id, self.tracking_uri, self.prefix = run_id, tracking_uri, prefix
        self._client = None
        self._failed = False

    def log(self, values: dict, step: int) -> None:
        if not self.run_id or self._failed:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(f"{self.prefix}/{k}", float(v), now, step) for k, v in values.items()
                   if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)]
        try:
            if self._client is None:
                from mlflow.tracking import MlflowClient

                self._client = MlflowClient(self.tracking_uri)
            for start in range(0, len(metrics), 500):  # log_batch takes at most 1000 metrics
                self._client.log_batch(self.run_id, metrics=metrics[start:start + 500])
        except Exception as exc:  # live curves are a convenience: never fail training over them
            self._failed = True
            log.warning("MLflow live logging stopped: %s", exc)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            self.log(logs, state.global_step)


class RepetitionMonitor(TrainerCallback):
    """Greedy replies to held-out prompts before training and at each checkpoint (the trainer saves every
    epoch, or at most MAX_CHECKPOINTS times, the last at the end); repetition and stop-at-eos rates go to
    the trainer's log history and to MLflow."""

    def __init__(self, tokenizer, prompts: list, max_new_tokens: int, live: MlflowLive | None = None):
        self.tok, self.prompts, self.max_new_tokens, self.live = tokenizer, prompts, max_new_tokens, live
        self.history: list[dict] = []
        self.seconds = 0.0  # spent generating, for the stage's phase timings

    def _measure(self, model, state, epoch: float) -> None:
        if not state.is_world_process_zero or not self.prompts:
            return
        started = time.perf_counter()
        replies = generate(model, self.tok, self.prompts, self.max_new_tokens)
        row = {"epoch": round(epoch, 3), "step": state.global_step, "repetition_rate": repetition_rate(replies),
               "eos_rate": sum(r["stopped_at_eos"] for r in replies) / len(replies),
               "mean_reply_tokens": sum(len(r["ids"]) for r in replies) / len(replies)}
        self.history.append(row)
        self.seconds += time.perf_counter() - started
        state.log_history.append(dict(row))
        if self.live:
            self.live.log({k: v for k, v in row.items() if k not in ("epoch", "step")}, state.global_step)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._measure(model, state, 0.0)

    def on_save(self, args, state, control, model=None, **kwargs):
        self._measure(model, state, state.epoch or 0.0)


class StepClock(TrainerCallback):
    """Seconds spent inside optimizer steps (forward, backward, update), so the stage's timings can tell
    the steps from what runs between them (evaluation, checkpoints, monitors)."""

    def __init__(self):
        self.seconds, self._started = 0.0, None

    def on_step_begin(self, args, state, control, **kwargs):
        self._started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self._started is not None:
            self.seconds += time.perf_counter() - self._started
            self._started = None
