"""The CPU peak for MFU is probed once per machine and cached with its conditions; never re-probed under load."""

from __future__ import annotations

import json

import pytest
import torch

from components.plan import peak

pytestmark = pytest.mark.unit


def _probe(calls: list, value: float):
    def probe(dtype, sizes):
        calls.append((dtype, sizes))
        return value
    return probe


def test_probe_once_then_reuse_the_cache(tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(peak.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    first = peak.cpu_peak(torch.float32, 2, tmp_path, _probe(calls, 5e11))
    again = peak.cpu_peak(torch.float32, 2, tmp_path, _probe(calls, 9e11))
    assert len(calls) == 1 and again["flops"] == first["flops"] == 5e11
    stored = next(iter(json.loads((tmp_path / "peak.json").read_text()).values()))
    assert {"cpu", "cores", "torch", "threads", "load_avg", "quiet", "dtype"} <= set(stored)
    assert stored["threads"] == 2 and stored["quiet"] is True
    peak.cpu_peak(torch.float32, 1, tmp_path, _probe(calls, 3e11))  # other threads: other conditions
    assert len(calls) == 2


def test_busy_probe_is_replaced_only_by_a_quiet_one(tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(peak.os, "getloadavg", lambda: (64.0, 64.0, 64.0))
    assert peak.cpu_peak(torch.float32, 1, tmp_path, _probe(calls, 1e11))["quiet"] is False
    assert peak.cpu_peak(torch.float32, 1, tmp_path, _probe(calls, 2e11))["flops"] == 1e11  # still busy: reuse
    monkeypatch.setattr(peak.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert peak.cpu_peak(torch.float32, 1, tmp_path, _probe(calls, 4e11))["flops"] == 4e11
    monkeypatch.setattr(peak.os, "getloadavg", lambda: (64.0, 64.0, 64.0))
    assert peak.cpu_peak(torch.float32, 1, tmp_path, _probe(calls, 1e9))["flops"] == 4e11  # never under load
    assert len(calls) == 2
