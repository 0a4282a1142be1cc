"""Unit tests of the service plumbing without any service: pid files, sessions, ports, settings."""

from __future__ import annotations

import os
import socket
import subprocess

import httpx
import psutil
import pytest
from typer.testing import CliRunner

from components.services import ServiceError, Settings, client_env, down, procs, status, up

pytestmark = pytest.mark.unit


@pytest.fixture
def listener():
    """A plain socket listening on a free loopback port (what 'something else holds the port' means)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()


def _sleeper(tmp_path, script: str = "sleep 60") -> int:
    return procs.spawn(["sh", "-c", script], os.environ, tmp_path / "sleeper.log")


def test_pid_file_of_a_live_process_is_kept(tmp_path):
    pid = _sleeper(tmp_path)
    try:
        procs.write_pid(tmp_path, "svc", pid)
        assert procs.read_pid(tmp_path, "svc") == pid
        assert procs.pid_path(tmp_path, "svc").exists()
    finally:
        procs.stop_session(pid, grace_s=1)


@pytest.mark.parametrize("content", ["", "not-a-pid\n"])
def test_unreadable_pid_file_is_removed(tmp_path, content):
    procs.pid_path(tmp_path, "svc").write_text(content)
    assert procs.read_pid(tmp_path, "svc") is None
    assert not procs.pid_path(tmp_path, "svc").exists()


def test_pid_file_of_a_dead_process_is_stale(tmp_path):
    proc = subprocess.Popen(["true"])
    proc.wait(10)  # reaped: the pid is free now
    procs.write_pid(tmp_path, "svc", proc.pid)
    assert procs.read_pid(tmp_path, "svc") is None
    assert not procs.pid_path(tmp_path, "svc").exists()


def test_pid_reused_by_a_younger_process_is_stale(tmp_path):
    """A pid file (without a start time) older than the process carrying that pid points at someone else's."""
    procs.pid_path(tmp_path, "svc").write_text(f"{os.getpid()}\n")
    old = psutil.Process().create_time() - 3600
    os.utime(procs.pid_path(tmp_path, "svc"), (old, old))
    assert procs.read_pid(tmp_path, "svc") is None
    assert not procs.pid_path(tmp_path, "svc").exists()


def test_a_wall_clock_adjusted_after_the_pid_file_was_written_leaves_the_pid_ours(tmp_path, monkeypatch):
    """psutil derives start times from the boot time, itself from the wall clock of now: a clock moved forward
    moves both (a VM here drifted 21 s in 30 min and its services' pid files were removed as stale)."""
    procs.write_pid(tmp_path, "svc", os.getpid())
    boot, created = psutil.boot_time(), psutil.Process().create_time()
    monkeypatch.setattr(psutil, "boot_time", lambda: boot + 30)
    monkeypatch.setattr(psutil.Process, "create_time", lambda self: created + 30)
    assert procs.read_pid(tmp_path, "svc") == os.getpid()
    monkeypatch.setattr(psutil.Process, "create_time", lambda self: created + 40)  # another start: a reused pid
    assert procs.read_pid(tmp_path, "svc") is None and not procs.pid_path(tmp_path, "svc").exists()


def test_a_pid_file_without_a_start_time_is_still_read(tmp_path):
    procs.pid_path(tmp_path, "svc").write_text(f"{os.getpid()}\n")  # as dsllm wrote them before
    assert procs.read_pid(tmp_path, "svc") == os.getpid()


def test_zombie_counts_as_dead():
    proc = subprocess.Popen(["true"])  # not waited for yet: a zombie once it exits
    assert procs.wait_until(lambda: psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE, 10, 0.05)
    assert not procs.alive(proc.pid)
    proc.wait(5)


def test_stop_session_ends_the_leader_and_everything_it_started(tmp_path):
    # the leader ignores SIGTERM and leaves a background child: both must still go
    pid = _sleeper(tmp_path, "trap '' TERM; sleep 60 & sleep 61; wait")
    assert procs.wait_until(lambda: len(procs.session_members(pid)) >= 3, 10, 0.05)
    members = procs.session_members(pid)
    assert procs.stop_session(pid, grace_s=1) == len(members)
    assert not any(procs.alive(p.pid) for p in members)
    assert procs.session_members(pid) == []


def test_port_checks_see_a_plain_listener(listener):
    assert not procs.port_free(listener)
    assert procs.port_open("127.0.0.1", listener)
    assert procs.port_holder(listener) == f"pid {os.getpid()} ({procs._cmdline(os.getpid())})"


def test_free_port_is_free():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert procs.port_free(port)
    assert procs.port_holder(port) is None
    assert not procs.port_open("127.0.0.1", port, timeout=0.2)


def test_up_refuses_a_taken_port_and_starts_nothing(home, listener, monkeypatch):
    monkeypatch.setenv("DSLLM_PREFECT_PORT", str(listener))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    settings = Settings.resolve()
    try:
        with pytest.raises(ServiceError) as caught:
            up(settings)
    finally:
        down(settings)  # would only matter if the check failed and something started
    message = str(caught.value)
    assert f"port {listener} for prefect is already in use by pid {os.getpid()}" in message
    assert "DSLLM_PREFECT_PORT=<port>" in message and "Nothing was started" in message
    assert list(home.run.glob("*.pid")) == []


def test_cli_up_names_the_taken_port(home, listener, monkeypatch):
    from dsllm.cli import app

    monkeypatch.setenv("DSLLM_MLFLOW_PORT", str(listener))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    result = CliRunner().invoke(app, ["up"], env={"COLUMNS": "200"})
    down(Settings.resolve())
    assert result.exit_code == 1
    assert f"port {listener} for mlflow is already in use" in result.output
    assert "DSLLM_MLFLOW_PORT" in result.output


@pytest.mark.parametrize(("var", "value", "expected"), [
    ("DSLLM_PREFECT_PORT", "http", "not a port number"),
    ("DSLLM_MLFLOW_PORT", "70000", "not a port number"),
    ("DSLLM_RAY_PORT", "12000", "Ray's worker port range"),
])
def test_bad_port_settings_are_clear(home, monkeypatch, var, value, expected):
    monkeypatch.setenv(var, value)
    with pytest.raises(ServiceError, match=expected):
        Settings.resolve()


def test_ray_temp_dir_falls_back_to_a_short_path_for_long_homes(tmp_path, monkeypatch):
    from components.home import Home

    short = Settings.resolve(Home.resolve(tmp_path / "h"))
    long = Settings.resolve(Home.resolve(tmp_path / ("x" * 60)))
    if len(str(short.home.ray)) + 72 <= 107:
        assert short.ray_temp_dir() == (short.home.ray, "")
    path, note = long.ray_temp_dir()
    assert str(path).startswith("/tmp/dsllm-ray-") and len(str(path)) < 30
    assert "too long" in note and str(path) in note
    assert long.ray_temp_dir() == (path, note)  # the same home always gets the same directory


def test_ray_address_selects_an_external_cluster(home, monkeypatch):
    monkeypatch.setenv("DSLLM_RAY_PORT", "26379")
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:26379")  # our own local address: not external
    assert Settings.resolve().ray_external is None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{closed}")
    settings = Settings.resolve()
    assert settings.services() == ("prefect", "mlflow", "prefect-worker")
    ray = next(st for st in status(settings) if st.name == "ray")
    assert (ray.state, ray.url) == ("unreachable", f"127.0.0.1:{closed}")


def test_nothing_running_means_stopped_and_no_client_env(home, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    states = status()
    assert [st.state for st in states] == ["stopped"] * 4
    assert client_env() == {}
    from dsllm.cli import app

    result = CliRunner().invoke(app, ["status"], env={"COLUMNS": "200"})
    assert result.exit_code == 1 and "stopped" in result.output


def test_pipeline_without_services_says_it_runs_embedded(home, monkeypatch, capsys):
    from dsllm import cli

    for key in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "PREFECT_API_URL"):
        monkeypatch.delenv(key, raising=False)
    cli.use_services()
    out = " ".join(capsys.readouterr().out.split())  # rich wraps lines
    assert "not running" in out and "embedded Prefect server" in out and "a local Ray" in out
    assert "PREFECT_API_URL" not in os.environ and "MLFLOW_TRACKING_URI" not in os.environ


def test_tail_returns_the_last_lines(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert procs.tail(log, 3) == "line 97\nline 98\nline 99"
    assert procs.tail(tmp_path / "missing.log") == ""


def test_spawned_process_outlives_its_parent_session(tmp_path):
    pid = _sleeper(tmp_path)
    try:
        assert os.getsid(pid) == pid != os.getsid(0)
        assert (tmp_path / "sleeper.log").read_text().startswith("\n==== ")
    finally:
        procs.stop_session(pid, grace_s=1)


def test_prefect_api_calls_wait_out_a_slow_server_but_not_forever(monkeypatch):
    from components.services import control

    calls = []

    def slow_twice(method, url, **kwargs):
        calls.append(url)
        if len(calls) <= 2:
            raise httpx.ReadTimeout("the server is busy")
        return httpx.Response(409, text="conflict")  # any answer counts, error statuses too

    monkeypatch.setattr(control.httpx, "request", slow_twice)
    monkeypatch.setattr(control.time, "sleep", lambda s: None)
    assert control._api("GET", "http://127.0.0.1:9/api/x").status_code == 409 and len(calls) == 3
    calls.clear()
    with pytest.raises(control.ServiceError, match="did not answer GET http://127.0.0.1:9/api/x within 0 s"):
        control._api("GET", "http://127.0.0.1:9/api/x", patience_s=0)
    assert len(calls) == 1
