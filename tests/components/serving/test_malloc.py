"""The engine process keeps freed memory: a decode-like step that allocates and frees a few tensors of
hundreds of KiB stops touching new pages once the allocator is told to keep them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from components.serving.malloc import keep_freed_memory

REPO = Path(__file__).resolve().parents[3]

STEPS = """
import json, resource, sys, torch
from components.serving.malloc import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else None

def step():  # what sampling does at 20 rows: logits, their softmax and noise, [20, 8064] floats each
    logits = torch.randn(20, 8064)
    probs = logits.softmax(-1)
    return int((probs * torch.rand_like(probs)).argmax())

for _ in range(5):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    step()
print(json.dumps({"kept": kept, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def page_faults(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", STEPS, mode], cwd=REPO, capture_output=True, text=True, timeout=120,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_step_that_frees_its_tensors_stops_faulting_in_new_pages_once_freed_memory_is_kept():
    plain, kept = page_faults("plain"), page_faults("keep")
    if not kept["kept"]:
        pytest.skip("the C library is not glibc")
    assert plain["faults"] > 1000, plain  # glibc's default: the freed blocks go back to the OS, every step
    assert kept["faults"] < 50, kept


def test_elsewhere_nothing_is_changed(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert keep_freed_memory() is False
