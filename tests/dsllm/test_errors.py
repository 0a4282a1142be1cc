"""`dsllm.errors` walks a failure's cause chain once (a long chain of wrappers costs linear time, not quadratic)."""

from __future__ import annotations

import errno

import pytest

from dsllm import errors

pytestmark = pytest.mark.unit


def _wrapped(depth: int) -> BaseException:
    """A full disk under `depth` plain wrappers, each raised from the one below."""
    exc: BaseException = OSError(errno.ENOSPC, "No space left on device", "/home/ckpt")
    for level in range(depth):
        outer = Exception(f"wrapper {level}")
        outer.__cause__ = exc
        exc = outer
    return exc


def test_a_deep_cause_chain_is_checked_once_per_link(monkeypatch):
    checked = []
    real = errors.deterministic_here
    monkeypatch.setattr(errors, "deterministic_here", lambda exc: checked.append(exc) or real(exc))
    error = _wrapped(300)
    assert errors.is_expected(error)
    assert "/home/ckpt" in errors.summary(error)
    assert len(checked) <= 3 * 301  # a few times per link (a walk per link from each would be ~45,000)
