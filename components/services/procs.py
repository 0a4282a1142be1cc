"""Background processes the CLI starts and stops: pid files, ports, sessions, log tails.

Each managed process is started in its own session (setsid), so it outlives the CLI and
everything it forks (Ray's daemons, Prefect's flow-run subprocesses) can be found again by its
session id and stopped without touching anyone else's processes. A pid file holds the leader's
pid and when it started (`started_after_boot`); it is stale when that process is gone, a zombie, or
started at another time (a reused pid).
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import psutil

# A process created this long after its pid file was written is a reused pid, not ours (pid files that hold no
# start time, written by dsllm before 2026-12-05).
_CREATE_SLACK_S = 2.0
_SAME_START_S = 1.0  # start times of one process read at different moments differ by rounding only


def pid_path(run_dir: Path, name: str) -> Path:
    return run_dir / f"{name}.pid"


def read_pid(run_dir: Path, name: str) -> int | None:
    """The live pid recorded for `name`, or None; a stale pid file is removed."""
    path = pid_path(run_dir, name)
    try:
        fields = path.read_text().split()
        pid, started = int(fields[0]), float(fields[1]) if len(fields) > 1 else None
        written = path.stat().st_mtime
    except (FileNotFoundError, ValueError, IndexError):
        path.unlink(missing_ok=True)
        return None
    if started is not None and alive(pid) and _started_at(pid, started):
        return pid
    if started is None and alive(pid, not_after=written + _CREATE_SLACK_S):
        return pid
    path.unlink(missing_ok=True)
    return None


def write_pid(run_dir: Path, name: str, pid: int) -> None:
    path = pid_path(run_dir, name)
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_text(f"{pid} {started_after_boot(pid):.2f}\n")
    except psutil.Error:  # it has ended already: the pid alone, which reads as stale
        tmp.write_text(f"{pid}\n")
    tmp.replace(path)


def started_after_boot(pid: int) -> float:
    """Seconds from boot to the start of `pid` (NoSuchProcess when there is none). Unlike psutil's create_time, the
    boot time plus this, with the boot time derived from the wall clock of *now*, it does not move when the wall
    clock is adjusted: on a VM here the clock moved 21 s during a 33-min `make pipeline`, and every service's pid
    file, compared by wall-clock times, was taken for a reused pid and removed (the pipeline ended with exit 2)."""
    boot = psutil.boot_time()  # read first: create_time adds the boot time psutil last read
    return psutil.Process(pid).create_time() - boot


def _started_at(pid: int, started: float) -> bool:
    try:
        return abs(started_after_boot(pid) - started) < _SAME_START_S
    except psutil.Error:  # it ended since it was seen alive
        return False


def alive(pid: int, not_after: float | None = None) -> bool:
    """True when `pid` runs (zombies count as dead) and, if given, was created by `not_after`."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return not_after is None or proc.create_time() <= not_after
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def spawn(argv: list[str], env: Mapping[str, str], log: Path, cwd: Path | None = None) -> int:
    """Start `argv` in a new session, output appended to `log`; returns the leader's pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(argv, env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    return proc.pid


def session_members(sid: int) -> list[psutil.Process]:
    """Every live process in session `sid` (the leader and all it started that kept the session)."""
    members = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getsid(proc.pid) == sid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (ProcessLookupError, PermissionError, psutil.NoSuchProcess):
            continue
    return members


def stop_session(sid: int, grace_s: float = 10.0) -> int:
    """Stop session `sid`; returns how many processes it had.

    The leader gets SIGTERM first, so a supervisor (`ray start --block`, `mlflow server`) can shut its
    children down in order; whatever is left then gets SIGTERM, and SIGKILL after `grace_s`.
    """
    procs = session_members(sid)
    leader = [p for p in procs if p.pid == sid]
    for proc in leader:
        _signal(proc, signal.SIGTERM)
    psutil.wait_procs(leader, timeout=grace_s / 2)
    left = session_members(sid)
    for proc in left:
        _signal(proc, signal.SIGTERM)
    _, left = psutil.wait_procs(left, timeout=grace_s / 2)
    for proc in left + session_members(sid):  # also late forks made during the grace period
        _signal(proc, signal.SIGKILL)
    psutil.wait_procs(left, timeout=5)
    return len(procs)


def _signal(proc: psutil.Process, sig: int) -> None:
    try:
        proc.send_signal(sig)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        pass


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on host:port now (SO_REUSEADDR, as servers bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_holder(port: int) -> str | None:
    """'pid 123 (python -m http.server 4200)' for the process listening on `port`, when it can be told."""
    try:
        conns = psutil.net_connections(kind="inet")
    except (psutil.AccessDenied, PermissionError):
        return None
    for conn in conns:
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
            return f"pid {conn.pid} ({_cmdline(conn.pid)})"
    return None


def _cmdline(pid: int, limit: int = 80) -> str:
    try:
        text = " ".join(psutil.Process(pid).cmdline()) or psutil.Process(pid).name()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "unknown"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def tail(path: Path, lines: int = 20) -> str:
    """The last `lines` lines of a log file ('' when there is none)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def wait_until(check, timeout_s: float, interval_s: float = 0.5) -> bool:
    """Poll `check()` until it is true or `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)
