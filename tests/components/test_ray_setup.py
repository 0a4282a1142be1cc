"""A home that ran with the services keeps Ray's `ray_current_cluster` file after `dsllm down`: the embedded
mode must start its own local Ray, not try to join that dead cluster."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_local_ray_starts_beside_a_stale_cluster_address():
    home = Path(tempfile.mkdtemp(prefix="dsllm-ray-"))  # short: Ray keeps its temp dir in the home only then
    (home / "ray").mkdir(parents=True)
    (home / "ray" / "ray_current_cluster").write_text("192.0.2.2:6999")  # what `dsllm up` leaves behind
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"DSLLM_HOME": str(home),
                                                                        "PYTHONPATH": str(ROOT)}
    code = ("import ray; from components.ray_setup import ensure_ray; ensure_ray(num_cpus=1, object_store_mb=80);"
            "print('cpus', ray.cluster_resources()['CPU']); ray.shutdown()")
    try:
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
        started_here = any((home / "ray").glob("session_*"))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    assert done.returncode == 0 and "cpus 1.0" in done.stdout, done.stderr[-2000:]
    assert started_here  # it ran in the home's temp dir, where the stale file lies
