"""A tiny flow the integration tests run through the process worker (no pipeline stages needed).

It records what a flow run started by the worker sees (working directory, which checkout it imports,
the service URLs), logs a metric and a file to MLflow through the server and runs one Ray task on the
cluster `dsllm up` started, so the test proves flow runs reach every service.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from prefect import flow


@flow(name="worker-check")
def worker_check(out: str, ray_task: bool = True) -> dict:
    """Write what this flow run sees to `out` (a JSON file)."""
    import mlflow

    import components

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    mlflow.set_experiment("dsllm-worker-check")
    with mlflow.start_run() as run:
        mlflow.log_metric("answer", 42)
        mlflow.log_text("written by the worker-check flow", "note.txt")
    seen = {
        "cwd": os.getcwd(), "components": str(Path(components.__file__).resolve().parent),
        "mlflow_run": run.info.run_id, "artifact_uri": mlflow.get_run(run.info.run_id).info.artifact_uri,
        **{k: os.environ.get(k) for k in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI", "RAY_ADDRESS", "DSLLM_HOME")},
    }
    if ray_task:
        import ray

        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
        seen["ray_result"] = ray.get(ray.remote(num_cpus=0.1)(lambda: 41 + 1).remote())
        seen["ray_cpus"] = ray.cluster_resources().get("CPU")
        ray.shutdown()
    Path(out).write_text(json.dumps(seen))
    return seen


@flow(name="alias-check")
def alias_check(model: str, alias: str, version: str) -> dict:
    """Stands in for deploy_demo: records the parameters the alias-moved trigger rendered from the event."""
    seen = {"model": model, "alias": alias, "version": version}
    Path(os.environ["DSLLM_HOME"], "alias-moved.json").write_text(json.dumps(seen))
    return seen
