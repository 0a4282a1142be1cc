"""The `dsllm` command's failures: one short paragraph, exit 2, the traceback in the home's log file."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dsllm import errors

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]


def dsllm(home: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "DSLLM_HOME": str(home), "PYTHONPATH": str(REPO), "COLUMNS": "250"}
    for var in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI", "RAY_ADDRESS"):
        env.pop(var, None)
    proc = subprocess.Popen([sys.executable, "-m", "dsllm", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=REPO, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:  # whatever it started (a Prefect server, Ray) goes with it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.parametrize("content, words", [
    (b"pretrain:\n  lr: [1, 2\n", "invalid YAML (line 3"),
    (b"pretrain:\n  lr: 0.001 \xff\xfe\n", "is not UTF-8"),
])
def test_bad_yaml_is_one_short_message_and_exit_2(tmp_path, content, words):
    config = tmp_path / "bad.yaml"
    config.write_bytes(content)
    done = dsllm(tmp_path / "home", "config", "show", "-p", "tiny", "-c", str(config))
    assert done.returncode == 2 and words in done.stdout + done.stderr
    assert len((done.stdout + done.stderr).strip().splitlines()) <= 3 and "Traceback" not in done.stderr


def test_directory_as_config_says_it_is_a_directory_and_1e6_is_an_integer(tmp_path):
    done = dsllm(tmp_path / "home", "config", "show", "-p", "tiny", "-c", str(tmp_path))
    assert done.returncode == 2 and "is a directory" in done.stdout + done.stderr
    done = dsllm(tmp_path / "home", "config", "show", "-p", "tiny", "-s", "pretrain.total_tokens=1e6")
    assert done.returncode == 0 and "total_tokens: 1000000\n" in done.stdout


@pytest.mark.parametrize("overrides, words", [
    (["sources.names=[shakspeare]"], "Did you mean 'shakespeare'"),
    (["pretrain.use_gpu=true"], "use_gpu=true needs 1 GPU"),
    (["pretrain.num_workers=4", "pretrain.cpus_per_worker=1", "pretrain.micro_batch=4"], "num_workers=4 × 1 CPUs"),
])
def test_unrunnable_pipeline_is_refused_before_it_starts(tmp_path, overrides, words):
    if "use_gpu" in overrides[0]:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
    if "num_workers" in overrides[0] and (os.cpu_count() or 1) >= 4:
        pytest.skip("this machine has 4 CPUs")
    args = [a for o in overrides for a in ("-s", o)]
    until = "pack" if "sources" in overrides[0] else "pretrain"  # resources are checked when pretrain will run
    done = dsllm(tmp_path / "home", "pipeline", "-p", "tiny", *args, "--until", until, timeout=120)
    out = done.stdout + done.stderr
    assert done.returncode == 2 and words in out and "Traceback" not in out, out[-3000:]
    assert not list((tmp_path / "home" / "artifacts").glob("*/*")), "nothing may be built"
    (log,) = (tmp_path / "home" / "logs").glob("dsllm-*.log")
    assert str(log) in out and "Traceback" in log.read_text()


def test_artifacts_verify_ls_show_and_gc_on_a_damaged_artifact(tmp_path, monkeypatch):
    from components.artifacts import ArtifactStore
    from components.home import Home

    home = Home.resolve(tmp_path / "home")
    store = ArtifactStore(home)
    good = store.build("demo", 1, {"n": 1}, {}, lambda out: (out / "a.bin").write_bytes(b"a" * 100) and {})
    bad = store.build("demo", 1, {"n": 2}, {}, lambda out: (out / "a.bin").write_bytes(b"b" * 100) and {})
    (store.path("demo", bad.key) / "a.bin").write_bytes(b"b" * 10)
    done = dsllm(home.root, "artifacts", "verify")
    assert done.returncode == 2 and f"{bad.uri}: DAMAGED" in done.stdout and f"{good.uri}: ok" in done.stdout
    assert "a.bin: 10 bytes, the manifest says 100" in done.stdout
    assert dsllm(home.root, "artifacts", "verify", good.uri).returncode == 0
    (store.path("demo", bad.key) / "manifest.json").write_text("{")
    listed = dsllm(home.root, "artifacts", "ls")
    assert listed.returncode == 0 and "DAMAGED" in listed.stdout
    shown = dsllm(home.root, "artifacts", "show", bad.uri)
    assert shown.returncode == 2 and "unreadable manifest" in shown.stdout + shown.stderr
    assert dsllm(home.root, "artifacts", "gc").returncode == 0
    assert [row["uri"] for row in store.list()] == [good.uri]


def test_report_of_a_full_disk_is_expected_and_names_the_path(tmp_path, monkeypatch, capsys):
    from components.faults import disk_full

    monkeypatch.setenv("DSLLM_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(errors, "_log_path", None)
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as exc:
            raise RuntimeError("stage corpus failed") from disk_full(exc, tmp_path / "artifacts")
    except RuntimeError as exc:
        code = errors.report(exc)
    err = capsys.readouterr().err
    assert code == 2 and f"writing {tmp_path / 'artifacts'}" in err and len(err.strip().splitlines()) == 2
    assert errors.report(KeyError("bug")) == 2  # LookupError: a mistake in the input
    assert errors.report(ZeroDivisionError("bug")) == 1


def test_console_shows_failures_without_tracebacks_and_logs_them(tmp_path, monkeypatch):
    import io
    import logging

    monkeypatch.setenv("DSLLM_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(errors, "_log_path", None)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logging.getLogger().addHandler(handler)
    try:
        errors.short_tracebacks_on_console()
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            logging.getLogger("prefect.task_runs").exception("Task run failed with exception: OSError")
        logging.getLogger("prefect.task_runs").warning("a warning\nover two lines")
    finally:
        logging.getLogger().removeHandler(handler)
    shown = stream.getvalue()
    assert "Traceback" not in shown and "Task run failed with exception: OSError (traceback in" in shown
    assert "over two lines" in shown  # only failures are shortened
    assert "Traceback" in errors.log_path().read_text()
