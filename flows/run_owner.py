"""MLflow runs of a killed process end as KILLED, not RUNNING forever.

A run that fails inside its `with mlflow.start_run()` ends FAILED by itself; a process killed with
SIGKILL (or a crashed machine) cannot end its runs. So every run records the process that owns it
(`dsllm.pid`, `dsllm.host`, `dsllm.pid_started`), and each pipeline start marks this machine's RUNNING runs
whose process is gone (or whose pid now belongs to a younger process) as KILLED.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("dsllm.tracking")
PID, HOST, STARTED = "dsllm.pid", "dsllm.host", "dsllm.pid_started"


def owner_tags() -> dict[str, str]:
    """Tags naming this process, for every run it starts."""
    import psutil

    return {PID: str(os.getpid()), HOST: socket.gethostname(),
            STARTED: f"{psutil.Process().create_time():.3f}"}


def owner_alive(tags: dict[str, str]) -> bool:
    """Whether the process named by a run's owner tags still runs (another host's runs count as alive)."""
    import psutil

    if tags.get(HOST) != socket.gethostname() or not tags.get(PID, "").isdigit():
        return True
    try:
        started = psutil.Process(int(tags[PID])).create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.Error:
        return True
    return abs(started - float(tags.get(STARTED, started))) < 1.0


def end_stale_runs(client, experiment_id: str) -> list[str]:
    """Mark RUNNING runs of `experiment_id` whose owner process is gone as KILLED; returns their ids."""
    ended = []
    for run in client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'",
                                  max_results=1000):
        if PID in run.data.tags and not owner_alive(run.data.tags):
            client.set_terminated(run.info.run_id, "KILLED")
            ended.append(run.info.run_id)
    if ended:
        log.warning("marked %d MLflow run(s) of killed processes as KILLED: %s", len(ended), ", ".join(ended))
    return ended
