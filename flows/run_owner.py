"""MLflow runs of a killed process end as KILLED, not RUNNING forever.

A run that fails inside its `with mlflow.start_run()` ends FAILED by itself; a process killed with
SIGKILL (or a crashed machine) cannot end its runs. So every run records the process that owns it
(`dsllm.pid`, `dsllm.host`, `dsllm.pid_started_after_boot`), and each pipeline start marks this machine's
RUNNING runs whose process is gone (or whose pid now belongs to a process started at another time) as KILLED.
Start times are seconds after boot (`procs.started_after_boot`), which wall-clock adjustments do not move.
"""

from __future__ import annotations

import logging
import os
import socket

from components.services.procs import started_after_boot

log = logging.getLogger("dsllm.tracking")
PID, HOST, STARTED = "dsllm.pid", "dsllm.host", "dsllm.pid_started_after_boot"


def owner_tags() -> dict[str, str]:
    """Tags naming this process, for every run it starts."""
    return {PID: str(os.getpid()), HOST: socket.gethostname(), STARTED: f"{started_after_boot(os.getpid()):.2f}"}


def owner_alive(tags: dict[str, str]) -> bool:
    """Whether the process named by a run's owner tags still runs (another host's runs count as alive)."""
    import psutil

    if tags.get(HOST) != socket.gethostname() or not tags.get(PID, "").isdigit():
        return True
    try:
        started = started_after_boot(int(tags[PID]))
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.Error:
        return True
    return abs(started - float(tags.get(STARTED, started))) < 1.0  # runs tagged before 2026-12-05: the pid alone


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
