"""Runs of a killed process are ended as KILLED at the next start; live ones are left alone."""

import subprocess
import sys

import pytest

from flows import run_owner

pytestmark = pytest.mark.unit


def test_owner_of_this_process_is_alive_and_a_finished_one_is_not():
    assert run_owner.owner_alive(run_owner.owner_tags())
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = {**run_owner.owner_tags(), run_owner.PID: proc.stdout.strip()}
    assert not run_owner.owner_alive(gone)
    assert not run_owner.owner_alive({**run_owner.owner_tags(), run_owner.STARTED: "1.0"})  # a reused pid
    assert run_owner.owner_alive({**gone, run_owner.HOST: "another-machine"})


def test_stale_running_runs_are_marked_killed(home):
    from components.home import mlflow_client, use_mlflow_experiment

    experiment = use_mlflow_experiment("stale-test", home)
    client = mlflow_client(home)
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = client.create_run(experiment, tags={**run_owner.owner_tags(), run_owner.PID: proc.stdout.strip()})
    live = client.create_run(experiment, tags=run_owner.owner_tags())
    untagged = client.create_run(experiment)
    assert run_owner.end_stale_runs(client, experiment) == [dead.info.run_id]
    statuses = {r: client.get_run(r).info.status for r in (dead.info.run_id, live.info.run_id, untagged.info.run_id)}
    assert list(statuses.values()) == ["KILLED", "RUNNING", "RUNNING"]
