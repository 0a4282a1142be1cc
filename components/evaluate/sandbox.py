"""Run untrusted generated code: one process per sample, OS isolation, a verdict per sample.

Layers, strongest first (`isolation()` says which this machine has):
- namespaces (`unshare --net --pid --mount`, util-linux): no network but a loopback that is down;
  the program's init dies with the sample and takes every descendant with it (also those that
  called setsid); /tmp, /var/tmp and /dev/shm are private, size-limited tmpfs mounts.
- an unprivileged uid (when the harness runs as root): one uid per worker slot, so
  RLIMIT_NPROC counts only that sample's processes, the project's files are read-only to it and it
  cannot signal the harness. Without root (mode "userns" or "plain") the program runs as the
  user who owns the project, and only the audit hook below stands between it and those files.
- resource limits (setrlimit): CPU seconds, address space, file size (which also caps captured
  output: the capture files are ordinary files), process count, open files, no core dumps.
- a wall-clock timeout that kills the whole process group (and, with namespaces, the namespace).
- an audit hook in the program's interpreter that refuses fork/exec, sockets, signals to other
  processes and writes outside the work directory. It is a belt, not a wall: ctypes walks around it.

Verdicts: pass (exit 0 AND the per-run completion token, which the wrapper hands back only after
the program and its tests ran to the end), fail (an AssertionError: a wrong answer; or an exit
before the end: `sys.exit(0)`, `os._exit(0)`, `raise SystemExit`), timeout (wall clock or CPU
limit), error (any other exception, a crash, a limit hit), each with the tail of the output.

Wherever the checkout lives: the program's interpreter is a real one (symlinks resolved, not the
venv's launcher) outside the private /tmp, /var/tmp and /dev/shm; where none exists the namespaces
are not offered and `isolation()["note"]` (logged once) says why.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import queue
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from components.evaluate._sandbox_init import shell_command

INIT = Path(__file__).with_name("_sandbox_init.py")
UNSHARE = ["unshare", "--net", "--pid", "--mount", "--fork", "--kill-child", "--mount-proc"]
SETUP_FAILED = 70
STATUSES = ("pass", "fail", "timeout", "error")
PRIVATE = ("/tmp", "/var/tmp", "/dev/shm")
"""Hidden behind fresh tmpfs mounts inside the namespaces: an interpreter there cannot start."""
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """Per-sample limits."""

    timeout_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 512
    fsize_mb: int = 16
    nproc: int = 16
    nofile: int = 64
    message_chars: int = 2000


@dataclass
class ExecResult:
    status: str
    message: str
    returncode: int | None
    duration_s: float

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def to_dict(self) -> dict:
        return asdict(self)


@functools.lru_cache(maxsize=1)
def isolation() -> dict:
    """Which layers this machine offers: mode "root", "userns" or "plain", the python used, and a note
    on any layer that cannot be offered."""
    root = os.geteuid() == 0
    prefix: list[str] = []
    if sys.platform.startswith("linux") and shutil.which("unshare"):
        for candidate in ([UNSHARE] if root else []) + [[UNSHARE[0], "--map-root-user", *UNSHARE[1:]]]:
            try:
                ok = subprocess.run([*candidate, "true"], capture_output=True, timeout=10).returncode == 0
            except (OSError, subprocess.SubprocessError):
                ok = False
            if ok:
                prefix = candidate
                break
    python, note = _program_python(root, bool(prefix)), ""
    if python is None and prefix:
        note = (f"namespaces not used: every python found lives under {', '.join(PRIVATE)}, which the sandbox "
                "hides behind private mounts; install python3 elsewhere (e.g. /usr/bin/python3) to get them")
        prefix, python = [], _program_python(root, False)
    if root and python is None:
        raise RuntimeError("No python readable by an unprivileged user was found for the sandbox "
                           "(tried the running interpreter and /usr/bin/python3); install python3.")
    mode = "root" if root and prefix == UNSHARE else "userns" if prefix else "plain"
    tools = ["prlimit"] + (["setpriv"] if root else []) + (["mount"] if prefix else [])
    init = "shell" if sys.platform.startswith("linux") and all(shutil.which(t) for t in tools) else "python"
    if note:
        log.warning("sandbox: %s", note)
    return {"mode": mode, "prefix": prefix, "drop_uid": root, "python": python, "init": init,
            "network": "namespace" if prefix else "audit hook only",
            "files": "unprivileged uid" if root else "audit hook only", "note": note}


def _program_python(world: bool, private_tmp: bool) -> str | None:
    """The interpreter for programs: the real binary (a venv launcher resolved; the wrapper runs with -I -S and
    needs only the standard library), executable by others when `world`, outside /tmp & co when `private_tmp`."""
    for candidate in (sys.executable, getattr(sys, "_base_executable", None), shutil.which("python3"),
                      "/usr/bin/python3"):
        if not candidate:
            continue
        real = os.path.realpath(candidate)
        if private_tmp and any(real == d or real.startswith(d + os.sep) for d in PRIVATE):
            continue
        if os.access(real, os.X_OK) and (not world or _world_executable(Path(real))):
            return real
    return None


def _world_executable(path: Path) -> bool:
    try:
        if not path.is_file() or not path.stat().st_mode & stat.S_IXOTH:
            return False
        return all(p.stat().st_mode & stat.S_IXOTH for p in path.parents)
    except OSError:
        return False


class Sandbox:
    """Runs programs in isolation, `workers` at a time; each worker slot has its own uid."""

    def __init__(self, limits: Limits | None = None, workers: int = 2, uid_base: int = 61000):
        self.limits = limits or Limits()
        self.workers = workers
        self.layers = isolation()
        self._slots: queue.Queue[int] = queue.Queue()
        for slot in range(workers):
            self._slots.put(slot)
        self.uid_base = uid_base

    def run(self, program: str) -> ExecResult:
        """Execute one program; never raises for anything the program does."""
        slot = self._slots.get()
        try:
            return self._run(program, slot)
        finally:
            self._slots.put(slot)

    def run_many(self, programs: Iterable[str], progress: Callable[[], None] | None = None) -> list[ExecResult]:
        """Execute programs on `workers` threads (each waits on its own child process)."""
        def one(program: str) -> ExecResult:
            result = self.run(program)
            if progress:
                progress()
            return result
        with ThreadPoolExecutor(self.workers) as pool:
            return list(pool.map(one, programs))

    def _spec(self, slot: int, workdir: str) -> dict:
        lim, drop = self.limits, self.layers["drop_uid"]
        uid = self.uid_base + slot if drop else None
        nproc = lim.nproc if drop else lim.nproc + _processes_of(os.getuid())
        return {"python": self.layers["python"], "workdir": workdir, "uid": uid, "gid": uid,
                "cpu_s": lim.cpu_s, "memory_mb": lim.memory_mb, "fsize_mb": lim.fsize_mb, "nproc": nproc,
                "nofile": lim.nofile, "mount_tmpfs": bool(self.layers["prefix"]), "token_fd": -1, "done_fd": -1}

    def _run(self, program: str, slot: int) -> ExecResult:
        token = secrets.token_hex(16).encode()  # per run: the wrapper hands it back only after the last line ran
        token_r, token_w = os.pipe()
        done_r, done_w = os.pipe()
        try:
            os.write(token_w, token)
            os.close(token_w)
            return self._run_with(program, slot, token, token_r, done_r, done_w)
        finally:
            for fd in (token_r, done_r, done_w):
                os.close(fd)

    def _run_with(self, program: str, slot: int, token: bytes, token_r: int, done_r: int, done_w: int) -> ExecResult:
        with tempfile.TemporaryDirectory(prefix="dsllm-sandbox-") as scratch:
            scratch_path = Path(scratch)
            # With a private /tmp the work dir lives there; otherwise in a fresh directory of ours.
            workdir = "/tmp/sandbox" if self.layers["prefix"] else str(scratch_path / "work")
            spec = {**self._spec(slot, workdir), "token_fd": token_r, "done_fd": done_w}
            (scratch_path / "program.py").write_text(program, encoding="utf-8")
            if self.layers["init"] == "shell":
                command = [*self.layers["prefix"], *shell_command(spec)]
            else:
                command = [*self.layers["prefix"], sys.executable, "-I", "-S", str(INIT), json.dumps(spec)]
            start = time.monotonic()
            with open(scratch_path / "program.py", "rb") as stdin, open(scratch_path / "out", "wb") as out:
                proc = subprocess.Popen(command, stdin=stdin, stdout=out, stderr=subprocess.STDOUT,
                                        start_new_session=True, close_fds=True, pass_fds=(token_r, done_w))
                code, timed_out = self._wait(proc)
            duration = time.monotonic() - start
            if spec["uid"] is not None:
                _clear_uid(spec["uid"])  # the slot's next sample starts with its uid to itself
            tail = _tail(scratch_path / "out", self.limits.message_chars)
            flooded = (scratch_path / "out").stat().st_size >= self.limits.fsize_mb * 1024 * 1024
        result = verdict(code, timed_out, tail, duration, self.limits, finished=token in _drain(done_r))
        if flooded and result.status == "error":
            result.message = f"output limit of {self.limits.fsize_mb} MB reached\n{result.message}"
        return result

    def _wait(self, proc: subprocess.Popen) -> tuple[int, bool]:
        try:
            return proc.wait(timeout=self.limits.timeout_s), False
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            return proc.wait(), True


def verdict(code: int, timed_out: bool, tail: str, duration: float, limits: Limits,
            finished: bool = False) -> ExecResult:
    """Map an exit status to pass / fail / timeout / error with a message; a pass needs `finished` (the
    completion token came back: the program and its tests ran to the end)."""
    if code == SETUP_FAILED:
        raise RuntimeError(f"The sandbox could not be set up: {tail.strip()}")
    if timed_out:
        return ExecResult("timeout", f"wall-clock limit of {limits.timeout_s:g} s exceeded\n{tail}", code, duration)
    signum = code - 128 if code > 128 else -code if code < 0 else 0
    if signum == signal.SIGXCPU:
        return ExecResult("timeout", f"CPU limit of {limits.cpu_s} s exceeded\n{tail}", code, duration)
    if code == 0:
        if finished:
            return ExecResult("pass", tail, code, duration)
        return ExecResult("fail", "the program exited before its tests ran to the end (sys.exit, os._exit or "
                          f"SystemExit with status 0)\n{tail}", code, duration)
    if code == 3:
        return ExecResult("fail", tail, code, duration)
    if signum == signal.SIGXFSZ:
        message = f"file size / output limit of {limits.fsize_mb} MB exceeded"
    elif signum:
        message = f"killed by {signal.Signals(signum).name}"
    else:
        message = f"exit status {code}"
    return ExecResult("error", f"{message}\n{tail}" if code != 4 else tail, code, duration)


def _tail(path: Path, chars: int) -> str:
    size = path.stat().st_size
    with path.open("rb") as fh:
        fh.seek(max(0, size - 4 * chars))
        text = fh.read().decode("utf-8", errors="replace")
    return text[-chars:]


def _drain(fd: int) -> bytes:
    """What the sandbox wrote to the completion pipe (never blocks: a daemon may still hold its end)."""
    os.set_blocking(fd, False)
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _clear_uid(uid: int, wait_s: float = 10.0) -> None:
    """Return once no process of `uid` is left. Without a PID namespace, descendants that left the process
    group are still running; with one, the kernel kills them when the namespace's init dies, but that can
    finish after the harness has reaped `unshare` (a timed-out fork bomb on a loaded machine)."""
    deadline = time.monotonic() + wait_s
    while _processes_of(uid):
        if time.monotonic() > deadline:
            log.warning("sandbox: processes of uid %d still present %.0f s after their sample ended", uid, wait_s)
            return
        _kill_uid(uid)
        time.sleep(0.005)


def _kill_uid(uid: int) -> None:
    """Kill every process of `uid` from a helper that becomes that uid (kill(-1) reaches only its own)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            os.kill(-1, signal.SIGKILL)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def _processes_of(uid: int) -> int:
    count = 0
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            count += entry.stat().st_uid == uid
        except OSError:
            continue
    return count
