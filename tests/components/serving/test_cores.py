"""The engine's and the web server's cores: how they are split, and that pinning reaches every thread."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from components.serving import cores
from components.serving.cores import CoreSplit, split_cores

REPO = Path(__file__).resolve().parents[3]
LINUX_AFFINITY = hasattr(os, "sched_setaffinity")


@pytest.mark.parametrize(("usable", "threads", "expected"), [
    ([0, 1], 1, CoreSplit(frozenset({1}), frozenset({0}))),
    ([0, 1, 2, 3], 3, CoreSplit(frozenset({1, 2, 3}), frozenset({0}))),
    ([2, 5, 7], 1, CoreSplit(frozenset({7}), frozenset({2, 5}))),  # a taskset or container's cores, not 0..n
    ([0, 1], 2, None),  # no core left for the server
    ([0], 1, None),
    ([0, 1], 0, None),
])
def test_the_engine_gets_the_last_cores_and_the_server_the_rest(monkeypatch, usable, threads, expected):
    monkeypatch.setattr(cores, "usable_cores", lambda: usable)
    assert split_cores(threads) == (expected if LINUX_AFFINITY else None)


def test_default_threads_leave_one_usable_core_to_the_server(monkeypatch):
    from components.serving.config import DemoConfig

    monkeypatch.setattr("components.serving.config.usable_cores", lambda: [4, 5, 6])
    assert DemoConfig().torch_threads == 2
    assert DemoConfig(threads=1).torch_threads == 1


def test_pinning_is_a_demo_setting(monkeypatch):
    from components.services.demo import _argv
    from components.serving.config import DemoConfig

    monkeypatch.delenv("DSLLM_DEMO_PIN", raising=False)
    assert DemoConfig.resolve().pin is True
    monkeypatch.setenv("DSLLM_DEMO_PIN", "0")
    cfg = DemoConfig.resolve()
    assert cfg.pin is False and "--no-pin" in _argv(cfg)
    monkeypatch.setenv("DSLLM_DEMO_PIN", "perhaps")
    with pytest.raises(ValueError, match="DSLLM_DEMO_PIN"):
        DemoConfig.resolve()


PIN_AND_REPORT = """
import json, os, sys, threading
from components.serving.cores import pin_process
started = threading.Event()
threading.Thread(target=lambda: (started.set(), threading.Event().wait(30)), daemon=True).start()
started.wait()
pin_process(frozenset(json.loads(sys.argv[1])))
late = {}
t = threading.Thread(target=lambda: late.update(cores=sorted(os.sched_getaffinity(0))))
t.start(); t.join()
tasks = {int(t): sorted(os.sched_getaffinity(int(t))) for t in os.listdir("/proc/self/task")}
print(json.dumps({"tasks": list(tasks.values()), "late": late["cores"]}))
"""


@pytest.mark.skipif(not LINUX_AFFINITY, reason="pinning needs Linux's sched_setaffinity")
def test_pinning_a_process_reaches_threads_started_before_and_after():
    core = cores.usable_cores()[-1]
    out = subprocess.run([sys.executable, "-c", PIN_AND_REPORT, json.dumps([core])], capture_output=True,
                         text=True, check=True, env={**os.environ, "PYTHONPATH": str(REPO)}).stdout
    report = json.loads(out)
    assert len(report["tasks"]) >= 2, "the main thread and the one started before pinning"
    assert report["tasks"] == [[core]] * len(report["tasks"])
    assert report["late"] == [core]


def test_the_demo_pins_only_an_engine_process_and_only_when_asked(monkeypatch):
    from components.serving.config import DemoConfig

    for module in ("components.serving.config", "components.serving.cores"):
        monkeypatch.setattr(f"{module}.usable_cores", lambda: [0, 1, 2])
    expected = CoreSplit(frozenset({1, 2}), frozenset({0})) if LINUX_AFFINITY else None
    assert DemoConfig().core_split() == expected
    assert DemoConfig(pin=False).core_split() is None
    assert DemoConfig(engine="thread").core_split() is None
