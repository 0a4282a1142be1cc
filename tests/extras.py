"""The optional benchmark extras (GSM8K train, C-Eval, CMMLU) for the tests that want them.

The product never looks beside the checkout; a test that wants the extras calls `use_extras(monkeypatch)`,
which sets `DSLLM_BENCHMARKS` explicitly to `$DSLLM_TEST_BENCHMARKS` (CI sets it) or, failing that, to
`<repo>/../shared/data/benchmarks` when that folder exists, and skips the test (saying why) otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

BESIDE_REPO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "benchmarks"


def extras_dir() -> Path | None:
    candidates = [os.environ.get("DSLLM_TEST_BENCHMARKS"), BESIDE_REPO]
    return next((Path(c) for c in candidates if c and Path(c).is_dir()), None)


def use_extras(monkeypatch) -> Path:
    """Point DSLLM_BENCHMARKS at the extras folder for this test (skip when there is none)."""
    root = extras_dir()
    if root is None:
        pytest.skip(f"benchmark extras not found: set DSLLM_TEST_BENCHMARKS (or put them at {BESIDE_REPO})")
    monkeypatch.setenv("DSLLM_BENCHMARKS", str(root))
    return root


def no_extras(monkeypatch) -> None:
    """A machine without the extras (the default on a fresh clone)."""
    monkeypatch.delenv("DSLLM_BENCHMARKS", raising=False)
