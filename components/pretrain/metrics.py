"""Where rank 0 sends training metrics: metrics.jsonl (read by the driver's progress monitor and
the report) and, when the flow opened one, the stage's MLflow run.

MLflow writes go out in batches (`log_batch`, every `flush_s` seconds and at evals, checkpoints
and the end) because the default store is SQLite and many tiny writes are slow there.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

log = logging.getLogger("dsllm.pretrain")


class MetricsSink:
    """Append-only metric records for one run; `truncate(step)` drops records a resume redoes."""

    def __init__(self, path: Path, mlflow_uri: str | None = None, run_id: str | None = None,
                 flush_s: float = 15.0):
        self.path, self.flush_s = path, flush_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._client = _client(mlflow_uri) if run_id else None
        self._run_id, self._pending, self._last_flush = run_id, [], time.monotonic()

    def truncate(self, step: int) -> None:
        if not self.path.is_file():
            return
        keep = [line for line in self.path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        self.path.write_text("".join(line + "\n" for line in keep))

    def write(self, record: dict, flush: bool = False) -> None:
        with self.path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        if self._client is not None:
            self._pending.append(record)
            if flush or time.monotonic() - self._last_flush >= self.flush_s:
                self.flush()

    def params(self, values: dict) -> None:
        """Log run-level numbers (accounting, layout) as MLflow params once, at the start."""
        if self._client is None:
            return
        from mlflow.entities import Param

        try:
            self._client.log_batch(self._run_id, params=[Param(k, str(v)) for k, v in values.items()])
        except Exception as err:  # already logged with another value (a resume on other hardware)
            log.warning("MLflow params not logged (%s)", err)

    def flush(self) -> None:
        if self._client is None or not self._pending:
            return
        from mlflow.entities import Metric

        metrics = [Metric(key, float(value), int(rec["time"] * 1000), int(rec["step"]))
                   for rec in self._pending for key, value in _flat(rec).items()]
        try:
            for start in range(0, len(metrics), 1000):  # MLflow's per-request limit
                self._client.log_batch(self._run_id, metrics=metrics[start:start + 1000])
        except Exception as err:  # curves are a convenience: never stop training over them
            log.warning("MLflow logging failed (%s); metrics stay in %s", err, self.path)
        self._pending, self._last_flush = [], time.monotonic()


class ImpossibleMFU(RuntimeError):
    """Model FLOPs utilisation above 100%: the peak or the FLOP count is wrong (a bug, not a fast run)."""


def utilisation(flops_per_token: float, tokens_per_s: float, peak: float, source: str, trusted: bool = True) -> float:
    """flops_per_token · tokens_per_s / peak; above 1 raises `ImpossibleMFU` when the peak is a trusted one
    (datasheet, config, a probe on a quiet machine). A probe taken on a busy machine may read low: then the
    value is returned and the record says which peak it is against."""
    value = flops_per_token * tokens_per_s / peak
    if value > 1.0 and trusted:
        raise ImpossibleMFU(f"utilisation {value:.1%} exceeds 100% of the peak ({peak:.4g} FLOP/s, {source}) at "
                            f"{tokens_per_s:,.0f} tokens/s × {flops_per_token:.4g} FLOPs/token: the peak or the FLOP "
                            "count is wrong. Set pretrain.peak_flops to the device's real peak, or remove "
                            "<home>/cache/peak.json to probe the CPU again on a quiet machine.")
    return value


def _flat(record: dict) -> dict[str, float]:
    """The numeric fields of a record as MLflow metric names (val losses as val_loss/<bucket>)."""
    out = {}
    for key, value in record.items():
        if key in ("step", "time"):
            continue
        if isinstance(value, dict):
            out.update({f"{key}/{k}": v for k, v in value.items() if isinstance(v, int | float)})
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = value
    return out


def _client(uri: str | None):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=uri)


def read(path: Path) -> list[dict]:
    """The records of a metrics.jsonl file (an unfinished last line is skipped)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
