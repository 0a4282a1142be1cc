"""The process environment `dsllm` sets up: telemetry off and no remote Hub kernels, unless the user chose."""

from __future__ import annotations

import pytest

from components.home import quiet_telemetry

pytestmark = pytest.mark.unit


def test_hub_kernels_are_off_unless_the_user_turned_them_on(monkeypatch):
    from transformers.integrations.hub_kernels import _kernels_enabled

    monkeypatch.delenv("USE_HUB_KERNELS", raising=False)
    assert _kernels_enabled()  # transformers' own default: on (remote kernels for GPU models)
    quiet_telemetry()
    assert not _kernels_enabled()
    monkeypatch.setenv("USE_HUB_KERNELS", "YES")
    quiet_telemetry()
    assert _kernels_enabled()
