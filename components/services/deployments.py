"""Register the deployments of prefect.yaml on the local Prefect server (`dsllm deploy`).

Runs `prefect --no-prompt deploy --all` from the repository root with the server's API URL, so the
process worker that `dsllm up` starts runs them from this checkout (the pull step sets the working
directory to $DSLLM_REPO). It also (re)sets the concurrency limit of the training tag first.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from components.services.specs import REPO, ServiceError, Settings, env_for, http_ok, tool

DEFAULT_PREFECT_FILE = REPO / "prefect.yaml"


def deploy(s: Settings | None = None, prefect_file: Path = DEFAULT_PREFECT_FILE,
           timeout_s: float = 300) -> subprocess.CompletedProcess:
    """Apply every deployment in `prefect_file`; raises ServiceError with Prefect's output on failure."""
    s = s or Settings.resolve()
    if not http_ok(f"{s.prefect_api}/health"):
        raise ServiceError(f"no Prefect server answers at {s.url('prefect')}; run `dsllm up` first.")
    prefect_file = Path(prefect_file).resolve()
    if not prefect_file.is_file():
        raise FileNotFoundError(f"{prefect_file} does not exist; pass --prefect-file with a prefect.yaml.")
    from components.services.control import ensure_concurrency_limit

    ensure_concurrency_limit(s)  # the deployments' training tasks rely on it
    env = {**env_for("prefect-worker", s), "PREFECT_CLI_PROMPT": "false"}
    argv = [tool("prefect"), "--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_file)]
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise ServiceError(f"`prefect deploy` failed ({done.returncode}):\n{done.stdout[-4000:]}{done.stderr[-4000:]}")
    return done


def deployment(s: Settings, flow: str, name: str) -> dict:
    """The server's record of deployment `flow/name` (parameter schema, pull steps, pool)."""
    resp = httpx.get(f"{s.prefect_api}/deployments/name/{flow}/{name}", timeout=10.0)
    if resp.status_code == 404:
        raise ServiceError(f"deployment {flow}/{name} is not registered; run `dsllm deploy`.")
    resp.raise_for_status()
    return resp.json()

