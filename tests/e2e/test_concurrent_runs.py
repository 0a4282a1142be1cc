"""Two `dsllm pipeline -p tiny --until pack` started together on a fresh home: both succeed, each stage is built
once (the second run waits on the first's per-artifact lock and reuses its output), and MLflow's first-time
schema creation does not collide."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
STAGES = ["corpus", "data", "tokenizer", "pack"]


def _start(home: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "DSLLM_HOME": str(home), "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    for var in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI", "RAY_ADDRESS", "PREFECT_HOME", "PREFECT_LOCAL_STORAGE_PATH"):
        env.pop(var, None)
    return subprocess.Popen([sys.executable, "-m", "dsllm", "pipeline", "-p", "tiny", "--until", "pack"],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, cwd=REPO, start_new_session=True)


def test_two_pipelines_on_a_fresh_home_both_succeed_and_build_each_stage_once(shared_cache_home, tmp_path):
    home = Path(tempfile.mkdtemp(prefix="dsllm-cc-", dir="/tmp")) / "h"  # Ray's socket paths must stay short
    downloads = shared_cache_home.cache / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    (home / "cache").mkdir(parents=True)
    (home / "cache" / "downloads").symlink_to(downloads, target_is_directory=True)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = [_start(home, log) for log in logs]
    try:
        codes = [p.wait(timeout=1800) for p in procs]
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
    texts = [log.read_text() for log in logs]
    assert codes == [0, 0], "\n\n".join(t[-4000:] for t in texts)
    for stage in STAGES:
        folders = sorted(p.name for p in (home / "artifacts" / stage).iterdir())
        assert len(folders) == 1, f"{stage}: {folders} (one artifact, nothing moved aside or left over)"
    from components.home import mlflow_client

    client = mlflow_client(tracking_uri=f"sqlite:///{home / 'mlflow' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("dsllm").experiment_id],
                              filter_string="tags.`dsllm.stage` != ''", max_results=100)
    built = sorted(r.data.tags["dsllm.stage"] for r in runs if r.data.tags.get("dsllm.cached") == "false")
    cached = sorted(r.data.tags["dsllm.stage"] for r in runs if r.data.tags.get("dsllm.cached") == "true")
    assert built == sorted(STAGES) and cached == sorted(STAGES), (built, cached)
    assert all(r.info.status == "FINISHED" for r in runs)
    shutil.rmtree(home.parent, ignore_errors=True)
