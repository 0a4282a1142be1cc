"""What each local service is: its command, environment, URL and health check; status and client_env.

Prefect server (SQLite under the home) with a process work pool and a worker, an MLflow server
(SQLite backend, artifacts served from the home) and a local Ray head; `RAY_ADDRESS` selects an
existing cluster instead. Ports come from DSLLM_PREFECT_PORT / DSLLM_MLFLOW_PORT / DSLLM_RAY_PORT.
Pid files live in <home>/run, logs in <home>/logs; this module never imports prefect, mlflow or ray
(health is plain HTTP/TCP), so the CLI stays fast.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx

from components.home import Home, quiet_telemetry
from components.services import procs

REPO = Path(__file__).resolve().parents[2]
POOL = "dsllm-process"
WORKER_NAME = "dsllm-worker"
TRAINING_TAG = "dsllm-training"
"""Prefect tag of training tasks; the server holds a tag concurrency limit for it (`ensure_concurrency_limit`)."""
TRAINING_SLOTS_ENV = "DSLLM_TRAINING_CONCURRENCY"  # how many training tasks may run at once (default 1)
SERVERS = ("prefect", "mlflow", "ray")  # started together; the worker follows once they are healthy
PORT_ENV = {"prefect": "DSLLM_PREFECT_PORT", "mlflow": "DSLLM_MLFLOW_PORT", "ray": "DSLLM_RAY_PORT"}
DEFAULT_PORT = {"prefect": 4200, "mlflow": 5000, "ray": 6379}
RAY_WORKER_PORTS = (10002, 19999)  # `ray start` defaults; the GCS port must not fall inside
_UNIX_SOCKET_MAX = 107  # AF_UNIX path limit on Linux (108 with the NUL)
_RAY_SOCKET_SUFFIX = 72  # "/session_<date>_<usec>_<pid>/sockets/plasma_store" and a margin


class ServiceError(RuntimeError):
    """A service could not be started or a port is taken; the message says what to do."""


@dataclass(frozen=True)
class Settings:
    """Where each service listens, resolved from the environment."""

    home: Home
    ports: dict[str, int]
    host: str = "127.0.0.1"
    ray_external: str | None = None

    @classmethod
    def resolve(cls, home: Home | None = None) -> Settings:
        home = home or Home.resolve()
        ports = {name: _port_from_env(PORT_ENV[name], DEFAULT_PORT[name]) for name in SERVERS}
        local_ray = f"127.0.0.1:{ports['ray']}"
        external = os.environ.get("RAY_ADDRESS") or None
        return cls(home, ports, ray_external=None if external == local_ray else external)

    def url(self, name: str) -> str:
        if name == "ray":
            return self.ray_address
        if name == "prefect-worker":
            return f"pool {POOL}"
        return f"http://{self.host}:{self.ports[name]}"

    @property
    def prefect_api(self) -> str:
        return f"{self.url('prefect')}/api"

    @property
    def ray_address(self) -> str:
        return self.ray_external or f"{self.host}:{self.ports['ray']}"

    @property
    def ray_token(self) -> Path:
        return self.home.ray / "auth_token"

    def ray_temp_dir(self) -> tuple[Path, str]:
        """Ray's temp dir under the home, or a short /tmp path when Ray's sockets would not fit."""
        path = self.home.ray
        if len(str(path)) + _RAY_SOCKET_SUFFIX <= _UNIX_SOCKET_MAX:
            return path, ""
        short = Path("/tmp") / f"dsllm-ray-{_digest(str(path))}"
        return short, f"home path too long for Ray's AF_UNIX sockets; temp dir {short}"

    def services(self) -> tuple[str, ...]:
        local = tuple(n for n in SERVERS if n != "ray" or not self.ray_external)
        return (*local, "prefect-worker")


@dataclass
class ServiceState:
    """One row of `dsllm status`."""

    name: str
    state: str  # healthy | stopped | unhealthy | external | unreachable
    url: str
    pid: int | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.state in ("healthy", "external")


def _port_from_env(var: str, default: int) -> int:
    raw = os.environ.get(var) or str(default)
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ServiceError(f"{var}={raw!r} is not a port number (1-65535); unset it or pick a free port.")
    if var == PORT_ENV["ray"] and RAY_WORKER_PORTS[0] <= int(raw) <= RAY_WORKER_PORTS[1]:
        raise ServiceError(f"{var}={raw} lies in Ray's worker port range {RAY_WORKER_PORTS[0]}-"
                           f"{RAY_WORKER_PORTS[1]}; pick a port outside it.")
    return int(raw)


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def tool(name: str) -> str:
    """The tool next to this interpreter (the same virtual environment), else on PATH."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise ServiceError(f"`{name}` is not installed in this environment; run `make install`.")
    return found


# ---- commands and environments ---------------------------------------------------------------

def argv_for(name: str, s: Settings) -> list[str]:
    host, port = s.host, str(s.ports.get(name, 0))
    if name == "prefect":
        return [tool("prefect"), "server", "start", "--host", host, "--port", port, "--analytics-off"]
    if name == "prefect-worker":
        return [tool("prefect"), "worker", "start", "--pool", POOL, "--type", "process", "--name", WORKER_NAME]
    if name == "mlflow":
        return [tool("mlflow"), "server", "--host", host, "--port", port, "--workers", "1",
                "--backend-store-uri", f"sqlite:///{s.home.mlflow_db}",
                "--serve-artifacts", "--artifacts-destination", str(s.home.mlflow_artifacts),
                # new experiments get a file:// root in the home, which the embedded mode (no server) can write too
                "--default-artifact-root", s.home.mlflow_artifacts.as_uri()]
    assert name == "ray", name
    argv = [tool("ray"), "start", "--head", "--block", "--port", port, "--temp-dir", str(s.ray_temp_dir()[0]),
            "--num-cpus", str(os.cpu_count() or 1), "--include-dashboard", "false", "--disable-usage-stats"]
    if os.environ.get("DSLLM_RAY_OBJECT_STORE_MB"):
        argv += ["--object-store-memory", str(int(os.environ["DSLLM_RAY_OBJECT_STORE_MB"]) * 1024**2)]
    return argv


def env_for(name: str, s: Settings) -> dict[str, str]:
    quiet_telemetry()
    env = {**os.environ, "DSLLM_HOME": str(s.home.root), "PREFECT_HOME": str(s.home.prefect)}
    if name == "prefect":
        env.setdefault("PREFECT_SERVER_DATABASE_CONNECTION_URL",
                       f"sqlite+aiosqlite:///{s.home.prefect / 'prefect.db'}")
        env.update(PREFECT_API_URL=s.prefect_api, PREFECT_SERVER_ANALYTICS_ENABLED="false")
    elif name == "mlflow":
        env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")  # GenAI job runners: ~1 GB, unused here
    elif name == "ray":
        env.update(_ray_auth_env(s))
    elif name == "prefect-worker":
        # flow runs inherit this: they talk to our servers and import the code of this checkout
        env.update(client_env(s, check=False), DSLLM_REPO=str(REPO),
                   PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    return env


def _ray_auth_env(s: Settings) -> dict[str, str]:
    """Token auth for our local Ray, the token kept in the home (not ~/.ray) so it goes with it."""
    if s.ray_external:
        return {}
    if not s.ray_token.exists():
        s.ray_token.touch(mode=0o600)
        s.ray_token.write_text(secrets.token_hex(32))
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(s.ray_token)}


def client_env(s: Settings | None = None, check: bool = True) -> dict[str, str]:
    """Env vars a client process should use to reach the services (only healthy ones when `check`)."""
    s = s or Settings.resolve()
    ok = {st.name for st in status(s) if st.ok} if check else set(SERVERS)
    env: dict[str, str] = {}
    if "prefect" in ok:
        env["PREFECT_API_URL"] = s.prefect_api
    if "mlflow" in ok:
        env["MLFLOW_TRACKING_URI"] = s.url("mlflow")
    if "ray" in ok:
        env.update(RAY_ADDRESS=s.ray_address, **_ray_auth_env(s))
    return env


# ---- health ----------------------------------------------------------------------------------

def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def _worker_online(s: Settings, since: float, timeout: float = 2.0) -> bool:
    """Our worker has sent a heartbeat to the pool since it was started."""
    try:
        resp = httpx.post(f"{s.prefect_api}/work_pools/{POOL}/workers/filter", json={}, timeout=timeout)
        workers = resp.json() if resp.status_code == 200 else []
    except (httpx.HTTPError, ValueError):
        return False
    for worker in workers:
        beat = worker.get("last_heartbeat_time")
        if worker.get("name") == WORKER_NAME and beat and datetime.fromisoformat(beat).timestamp() >= since - 5:
            return worker.get("status") == "ONLINE"
    return False


def _ray_ready(s: Settings, pid: int) -> bool:
    """GCS accepts connections and a raylet of our session runs."""
    if not procs.port_open(s.host, s.ports["ray"]):
        return False
    return any(p.name() == "raylet" for p in procs.session_members(pid))


def healthy(name: str, s: Settings, pid: int, timeout: float = 2.0) -> bool:
    """One check of `name` (`timeout`: per HTTP request; `status` is quick, `up` waits longer on a busy machine)."""
    checks: dict[str, Callable[[], bool]] = {
        "prefect": lambda: http_ok(f"{s.prefect_api}/health", timeout),
        "mlflow": lambda: http_ok(f"{s.url('mlflow')}/health", timeout),
        "ray": lambda: _ray_ready(s, pid),
        "prefect-worker": lambda: _worker_online(s, procs.pid_path(s.home.run, name).stat().st_mtime, timeout),
    }
    return procs.alive(pid) and checks[name]()


def _external_ray(s: Settings) -> ServiceState:
    address = s.ray_external or ""
    hostport = address.split("://")[-1]
    host, _, port = hostport.rpartition(":")
    reachable = bool(port.isdigit() and procs.port_open(host or "127.0.0.1", int(port)))
    if address == "auto":
        return ServiceState("ray", "external", address, detail="RAY_ADDRESS=auto (not checked)")
    return ServiceState("ray", "external" if reachable else "unreachable", address,
                        detail="RAY_ADDRESS is set; no local Ray is started")


def status(s: Settings | None = None) -> list[ServiceState]:
    """The state of every service (cheap: pid files, HTTP and TCP checks)."""
    s = s or Settings.resolve()
    states = []
    for name in s.services():
        pid = procs.read_pid(s.home.run, name)
        state = "stopped" if pid is None else ("healthy" if healthy(name, s, pid) else "unhealthy")
        states.append(ServiceState(name, state, s.url(name), pid, _detail(name, s)))
    if s.ray_external:
        states.insert(2, _external_ray(s))
    return states


def _detail(name: str, s: Settings) -> str:
    """A note worth a person's attention (empty when there is none)."""
    return s.ray_temp_dir()[1] if name == "ray" else ""
