"""The chat demo as a background process of the home: start, stop, status, reload, wait for a version.

Like the other services: started in a session of its own (`python -m ui.app`), pid file
`<home>/run/demo.pid`, log `<home>/logs/demo.log`, port `DSLLM_DEMO_PORT` (7860) on 127.0.0.1.
It reads the registry through the MLflow server when `dsllm up` runs one, else the home's SQLite
file. Health is `GET /dsllm/version` answering with a loaded model. Used by `dsllm demo ...` and
the `deploy_demo` flow; imports neither gradio nor torch, so the CLI stays fast.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import httpx

from components.home import Home, quiet_telemetry
from components.services import procs
from components.services.specs import REPO, ServiceError, Settings, client_env
from components.serving.config import DemoConfig

NAME = "demo"
START_TIMEOUT_S = 240.0  # importing torch, transformers, mlflow and gradio takes a while on 2 busy cores
RELOAD_TIMEOUT_S = 120.0


def log_path(home: Home) -> os.PathLike:
    return home.logs / f"{NAME}.log"


def running_pid(home: Home | None = None) -> int | None:
    return procs.read_pid((home or Home.resolve()).run, NAME)


def served(cfg: DemoConfig | None = None, timeout: float = 5.0) -> dict | None:
    """What the demo on cfg's port serves (GET /dsllm/version), or None when nothing answers there."""
    cfg = cfg or DemoConfig.resolve()
    try:
        resp = httpx.get(f"{cfg.url}/dsllm/version", timeout=timeout)
    except httpx.HTTPError:
        return None
    return resp.json() if resp.status_code == 200 else None


def up(ref: str | None = None, cfg: DemoConfig | None = None, home: Home | None = None,
       timeout_s: float = START_TIMEOUT_S) -> dict:
    """Start the demo unless it runs; wait until it serves; returns GET /dsllm/version.

    One start at a time per home (a lock): the alias event's deploy_demo run and `make pipeline` may both try.
    A demo that runs but does not answer yet is still loading its model: wait for it like for a new one.
    """
    from filelock import FileLock

    home, cfg = home or Home.resolve(), cfg or DemoConfig.resolve(model=ref)
    home.run.mkdir(parents=True, exist_ok=True)
    with FileLock(str(home.run / f"{NAME}.lock")):
        pid = running_pid(home)
        if pid is None:
            _check_port(cfg)
            pid = procs.spawn(_argv(cfg), _env(home), log_path(home), cwd=REPO)
            procs.write_pid(home.run, NAME, pid)
    return served(cfg) or _wait_started(pid, cfg, home, timeout_s)


def _check_port(cfg: DemoConfig) -> None:
    if not procs.port_free(cfg.port, cfg.host if cfg.host not in ("", "0.0.0.0") else "127.0.0.1"):
        holder = procs.port_holder(cfg.port)
        raise ServiceError(f"port {cfg.port} for the demo is already in use{f' by {holder}' if holder else ''}; "
                           "stop that process or choose another port with DSLLM_DEMO_PORT=<port>.")


def _argv(cfg: DemoConfig) -> list[str]:
    return [sys.executable, "-m", "ui.app", "--model", cfg.model, "--host", cfg.host, "--port", str(cfg.port),
            "--poll-s", str(cfg.poll_s), "--concurrency", str(cfg.concurrency), "--queue-size",
            str(cfg.queue_size), "--dtype", cfg.dtype, "--threads", str(cfg.threads),
            "--stream-interval-s", str(cfg.stream_interval_s), "--engine", cfg.engine,
            "--pin" if cfg.pin else "--no-pin"]


def _env(home: Home) -> dict[str, str]:
    """This environment (DSLLM_DEMO_AUTH stays out of argv), the home, and the MLflow server when it is up."""
    quiet_telemetry()
    env = {**os.environ, "DSLLM_HOME": str(home.root), "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    if "MLFLOW_TRACKING_URI" not in os.environ:
        server = client_env(Settings.resolve(home), check=True).get("MLFLOW_TRACKING_URI")
        if server:
            env["MLFLOW_TRACKING_URI"] = server
    return env


def _wait_started(pid: int, cfg: DemoConfig, home: Home, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = served(cfg, timeout=2.0)
        if state is not None:  # the app listens only once its first model is loaded
            return state
        if not procs.alive(pid):
            procs.pid_path(home.run, NAME).unlink(missing_ok=True)
            raise ServiceError(f"The demo exited while starting. Last lines of {log_path(home)}:\n"
                               f"{procs.tail(log_path(home))}")
        time.sleep(0.5)
    raise ServiceError(f"The demo (pid {pid}) does not answer on {cfg.url} after {timeout_s:.0f} s. Last lines of "
                       f"{log_path(home)}:\n{procs.tail(log_path(home))}\n`dsllm demo down` stops it.")


def down(home: Home | None = None, cfg: DemoConfig | None = None) -> int | None:
    """Stop the demo this home started; returns its pid (None when it was not running)."""
    home, cfg = home or Home.resolve(), cfg or DemoConfig.resolve()
    pid = running_pid(home)
    if pid is None:
        return None
    procs.stop_session(pid)
    procs.pid_path(home.run, NAME).unlink(missing_ok=True)
    procs.wait_until(lambda: procs.port_free(cfg.port), 15)
    return pid


def reload(cfg: DemoConfig | None = None, timeout_s: float = RELOAD_TIMEOUT_S) -> dict:
    """POST /dsllm/reload: the demo checks its reference now and swaps; returns what it serves after."""
    cfg = cfg or DemoConfig.resolve()
    try:
        resp = httpx.post(f"{cfg.url}/dsllm/reload", timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise ServiceError(f"The demo on {cfg.url} did not answer the reload: {exc}") from None
    state = resp.json()
    if resp.status_code != 200:
        raise ServiceError(f"The demo could not reload ({state.get('last_error')}); it still serves "
                           f"{state.get('label')}.")
    return state


def wait_for(check: Callable[[dict], bool], cfg: DemoConfig | None = None, timeout_s: float = 30.0,
             interval_s: float = 0.5) -> dict:
    """Poll GET /dsllm/version until `check(state)`; the last state, or ServiceError after `timeout_s`."""
    cfg, last = cfg or DemoConfig.resolve(), None
    deadline = time.monotonic() + timeout_s
    while True:
        last = served(cfg) or last
        if last is not None and check(last):
            return last
        if time.monotonic() >= deadline:
            shown = f"{last.get('label')} ({last.get('last_error') or 'no error'})" if last else "nothing (no answer)"
            raise ServiceError(f"The demo on {cfg.url} did not reach the expected model within {timeout_s:.0f} s; "
                               f"it serves {shown}.")
        time.sleep(interval_s)
