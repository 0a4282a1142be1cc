"""A real Ray cluster on loopback for integration tests: `ray start --head` plus more nodes with
`ray start --address=...`, each with its own ports, in a private temp dir.

Stopping never uses `ray stop` (it would kill every Ray on the machine, other users' included):
only the processes whose command line names this cluster's temp dir, and their children, are
terminated.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ports() -> list[str]:
    args = []
    for flag in ("--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
                 "--dashboard-agent-grpc-port", "--metrics-export-port", "--runtime-env-agent-port"):
        args += [flag, str(free_port())]
    return args


class LoopbackCluster:
    def __init__(self):
        self.temp = Path(tempfile.mkdtemp(prefix="rayt", dir="/tmp"))  # short: unix socket paths
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_ADDRESS": self.address,
                    "RAY_USAGE_STATS_ENABLED": "0"}

    def _start(self, args: list[str]) -> None:
        subprocess.run([RAY, "start", *args, *_ports(), "--disable-usage-stats"], env=self.env, check=True,
                       capture_output=True, timeout=180)

    def start_head(self, cpus: float, resources: str = "{}") -> None:
        self._start(["--head", f"--port={self.port}", "--node-ip-address=127.0.0.1", f"--num-cpus={cpus}",
                     f"--resources={resources}", f"--temp-dir={self.temp}", "--include-dashboard=false",
                     "--object-store-memory=150000000", "--min-worker-port=0", "--max-worker-port=0"])

    def add_node(self, cpus: float, resources: str = "{}") -> None:
        self._start([f"--address={self.address}", "--node-ip-address=127.0.0.1", f"--num-cpus={cpus}",
                     f"--resources={resources}", f"--temp-dir={self.temp}",
                     "--object-store-memory=150000000", "--min-worker-port=0", "--max-worker-port=0"])

    def processes(self) -> list[psutil.Process]:
        mine = []
        for proc in psutil.process_iter(["cmdline"]):
            try:
                if any(str(self.temp) in part for part in proc.info["cmdline"] or []):
                    mine.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return mine

    def stop(self) -> None:
        procs = self.processes()
        for proc in list(procs):
            try:
                procs.extend(proc.children(recursive=True))
            except psutil.NoSuchProcess:
                continue
        for proc in procs:
            try:
                proc.terminate()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(procs, timeout=5)
        for proc in alive:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        shutil.rmtree(self.temp, ignore_errors=True)


def wait_for(predicate, timeout: float, every: float = 0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError("condition not met in time")
