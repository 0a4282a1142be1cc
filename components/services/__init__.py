"""Local services for dsllm: Prefect server + process worker, MLflow server, Ray head.

`up()` starts what is not running and waits for health, `down()` stops what this home started,
`status()` reports each one, `client_env()` gives the env vars a client should use, `deploy()`
registers prefect.yaml's deployments. See `specs` (what each service is), `control` (start/stop),
`procs` (pid files, sessions, ports) and `deployments`.
"""

from components.services.control import down, ensure_concurrency_limit, ensure_pool, up
from components.services.deployments import DEFAULT_PREFECT_FILE, deploy, deployment
from components.services.specs import (
    POOL,
    REPO,
    TRAINING_TAG,
    ServiceError,
    ServiceState,
    Settings,
    client_env,
    status,
)

__all__ = ["DEFAULT_PREFECT_FILE", "POOL", "REPO", "TRAINING_TAG", "ServiceError", "ServiceState", "Settings", "client_env",
           "deploy", "deployment", "down", "ensure_concurrency_limit", "ensure_pool", "status", "up"]
