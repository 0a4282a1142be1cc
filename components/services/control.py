"""Start and stop the local services: `up` (idempotent, waits for health) and `down`.

`up` checks every port it needs before starting anything, so a taken port fails fast with nothing
half-started; services that are already healthy are left alone, stale pid files are cleaned.
The three servers start together; the Prefect worker follows once its pool exists.
"""

from __future__ import annotations

import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from filelock import FileLock
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from components.services import procs
from components.services.specs import (
    POOL,
    PORT_ENV,
    SERVERS,
    TRAINING_SLOTS_ENV,
    TRAINING_TAG,
    ServiceError,
    ServiceState,
    Settings,
    argv_for,
    env_for,
    healthy,
    status,
    tool,
)

START_TIMEOUT_S = 180.0
HEALTH_REQUEST_S = 10.0  # one health request while `up` waits: a loaded machine's servers answer slowly, not never
API_PATIENCE_S = 120.0  # how long a Prefect API call is retried while the server is slow or briefly unreachable


def up(s: Settings | None = None, console: Console | None = None,
       timeout_s: float = START_TIMEOUT_S) -> list[ServiceState]:
    """Start whatever is not running and wait until everything is healthy; returns the states."""
    s, console = s or Settings.resolve(), console or Console()
    with _lock(s):
        return _up(s, console, timeout_s)


def _lock(s: Settings) -> FileLock:
    """One `up` or `down` at a time per home (two terminals must not start two of everything)."""
    return FileLock(s.home.run / "services.lock", timeout=START_TIMEOUT_S * 2)


def _up(s: Settings, console: Console, timeout_s: float) -> list[ServiceState]:
    servers = [n for n in s.services() if n in SERVERS]
    running = {n: procs.read_pid(s.home.run, n) for n in s.services()}
    check_ports(s, [n for n in servers if running[n] is None])
    if "ray" in servers and s.ray_temp_dir()[1]:
        console.print(f"[yellow]ray: {s.ray_temp_dir()[1]}[/yellow]")
    started = {n: _start(n, s) for n in servers if running[n] is None}
    _wait(s, {n: started.get(n) or running[n] for n in servers}, started, console, timeout_s)
    ensure_pool(s)
    ensure_concurrency_limit(s)
    worker = running["prefect-worker"] or _start("prefect-worker", s)
    _wait(s, {"prefect-worker": worker}, {"prefect-worker": worker} if not running["prefect-worker"] else {},
          console, timeout_s)
    return status(s)


def check_ports(s: Settings, names: list[str]) -> None:
    """Raise one ServiceError naming every port that something else already holds."""
    problems = []
    for name in names:
        port = s.ports[name]
        if not procs.port_free(port, s.host):
            holder = procs.port_holder(port)
            problems.append(f"port {port} for {name} is already in use"
                            f"{f' by {holder}' if holder else ''}; stop that process or choose another port "
                            f"with {PORT_ENV[name]}=<port>")
    if problems:
        raise ServiceError("\n".join(problems) + "\nNothing was started.")


def _start(name: str, s: Settings) -> int:
    pid = procs.spawn(argv_for(name, s), env_for(name, s), s.home.logs / f"{name}.log", cwd=s.home.root)
    procs.write_pid(s.home.run, name, pid)
    return pid


def _wait(s: Settings, pids: dict[str, int], started: dict[str, int], console: Console,
          timeout_s: float) -> None:
    """Spin until every service is healthy; a dead or slow one fails with the end of its log."""
    t0, pending = time.monotonic(), dict(pids)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        tasks = {n: progress.add_task(f"{n}: {'starting' if n in started else 'checking'}") for n in pids}
        while pending:
            for name, pid in list(pending.items()):
                if healthy(name, s, pid, HEALTH_REQUEST_S):
                    what = "started" if name in started else "already running"
                    progress.update(tasks[name], description=f"{name}: {what} (pid {pid}) {s.url(name)}")
                    progress.stop_task(tasks[name])
                    del pending[name]
                elif not procs.alive(pid) or time.monotonic() - t0 > timeout_s:
                    progress.update(tasks[name], description=f"{name}: failed")
                    raise ServiceError(_failure(name, s, pid, timeout_s))
            time.sleep(0.5)


def _failure(name: str, s: Settings, pid: int, timeout_s: float) -> str:
    log = s.home.logs / f"{name}.log"
    why = "exited" if not procs.alive(pid) else f"is not healthy after {timeout_s:.0f} s"
    return (f"{name} (pid {pid}) {why}. Last lines of {log}:\n{procs.tail(log)}\n"
            "Run `dsllm down` to stop what did start, fix the cause, then `dsllm up` again.")


def ensure_pool(s: Settings) -> None:
    """Create the process work pool unless it exists (the Prefect CLI fills its job template)."""
    resp = _api("GET", f"{s.prefect_api}/work_pools/{POOL}")
    if resp.status_code == 200:
        return
    env = env_for("prefect-worker", s)
    done = subprocess.run([tool("prefect"), "work-pool", "create", POOL, "--type", "process"], env=env,
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0 and "already exists" not in done.stdout + done.stderr:
        raise ServiceError(f"could not create work pool {POOL}:\n{done.stdout}{done.stderr}")


def _api(method: str, url: str, patience_s: float = API_PATIENCE_S, **kwargs) -> httpx.Response:
    """A Prefect API request, sent again while the server does not answer (slow under load, or restarting);
    any answer, error statuses included, is returned at once; silence past `patience_s` is a ServiceError."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            return httpx.request(method, url, timeout=HEALTH_REQUEST_S * 3, **kwargs)
        except httpx.TransportError as exc:
            if time.monotonic() >= deadline:
                raise ServiceError(f"The Prefect server did not answer {method} {url} within {patience_s:.0f} s "
                                   f"({type(exc).__name__}); `dsllm status` shows the services.") from None
            time.sleep(1.0)


def training_slots() -> int:
    """How many training tasks may run at once: `DSLLM_TRAINING_CONCURRENCY` (default 1)."""
    raw = os.environ.get(TRAINING_SLOTS_ENV) or "1"
    if not raw.isdigit() or int(raw) < 1:
        raise ServiceError(f"{TRAINING_SLOTS_ENV}={raw!r} is not a positive whole number; unset it or use e.g. 1.")
    return int(raw)


def ensure_concurrency_limit(s: Settings) -> dict:
    """Give the training tag its concurrency limit (created or updated: the API upserts); returns the limit."""
    resp = _api("POST", f"{s.prefect_api}/concurrency_limits/",  # an upsert: safe to send again
                json={"tag": TRAINING_TAG, "concurrency_limit": training_slots()})
    if resp.status_code not in (200, 201):
        raise ServiceError(f"could not set the concurrency limit of tag {TRAINING_TAG}: {resp.status_code} {resp.text}")
    return resp.json()


def down(s: Settings | None = None, console: Console | None = None) -> list[str]:
    """Stop every service this home started (the worker first) and wait for its port; returns the names."""
    s, console = s or Settings.resolve(), console or Console()
    with _lock(s):
        stopped = _stop(s, "prefect-worker", console)
        with ThreadPoolExecutor(len(SERVERS)) as pool:  # the servers stop independently: in parallel
            stopped += [name for found in pool.map(lambda n: _stop(s, n, console), SERVERS) for name in found]
    if not stopped:
        console.print("nothing to stop")
    return stopped


def _stop(s: Settings, name: str, console: Console) -> list[str]:
    pid = procs.read_pid(s.home.run, name)
    if pid is None:
        return []
    count = procs.stop_session(pid)
    procs.pid_path(s.home.run, name).unlink(missing_ok=True)
    if name in s.ports and not procs.wait_until(lambda: procs.port_free(s.ports[name], s.host), 15):
        console.print(f"[yellow]{name}: port {s.ports[name]} is still in use after stopping[/yellow]")
    console.print(f"{name}: stopped (pid {pid}, {count} process{'es' if count != 1 else ''})")
    return [name]
