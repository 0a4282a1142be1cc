"""Issue 14's acceptance on real models and real per-document bits: v1 (trained a little) is approved as better
than trivial; a version with another vocabulary trained on twice the tokens is approved as significantly better;
a version as initialised (nearly untrained) is rejected, its reasons naming bpb. Each version has its own pack
(its own tokenizer), so the unigram bar is each tokenizer's own; bpb is compared over the same documents."""

from __future__ import annotations

import pytest

from components.registry import audit, gate, gate_summary, register
from tests.components.registry import trained
from tests.components.registry.fixtures import build_lineage, evaluation

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("trained")
    return {"v1": trained.model(root / "v1", vocab=512, steps=60),
            "v2": trained.model(root / "v2", vocab=384, steps=120),
            "untrained": trained.model(root / "untrained", vocab=512, steps=0, seed=3)}


def _register(registry, toy_models, name: str, model_dir) -> str:
    uris = build_lineage(registry.store, toy_models, chat=model_dir, pack=lambda out: trained.write_pack(out, model_dir))
    records = trained.bpb_records(model_dir)
    bpb = sum(r["nll_bits"] for r in records) / sum(r["bytes"] for r in records)
    results = {"bpb": {"bpb": bpb, "bpb_code": bpb, "n": len(records)}}
    ev = evaluation(registry.store, uris, results, samples={"bpb": records}, config={"limit": None})
    return str(register("chat", uris["dpo"], evaluation=ev, name=name, home=registry.home).version)


def test_better_version_approved_untrained_rejected_naming_bpb(registry, toy_models, models, name):
    v1 = _register(registry, toy_models, name, models["v1"])
    first = gate(name, v1, home=registry.home)
    bar = first.compared["trivial: bpb.bpb"]
    assert first.passed and bar.ok and bar.value < bar.threshold, first.markdown()
    assert first.reasons[0].startswith("first approval")
    met = audit.client(registry.home).get_model_version(name, v1).tags["dsllm.gate.met"]
    assert met == "bpb.bpb: below the unigram entropy of the validation text"

    v2 = _register(registry, toy_models, name, models["v2"])
    second = gate(name, v2, home=registry.home)
    row = second.compared["regression: bpb.bpb"]
    assert second.passed and row.verdict == "better" and row.n == len(trained.documents()["val"]), second.markdown()
    assert row.high < 0 and row.test == "paired bootstrap over documents"

    v3 = _register(registry, toy_models, name, models["untrained"])
    third = gate(name, v3, home=registry.home)
    assert not third.passed and third.moves == []
    assert third.compared["trivial: bpb.bpb"].ok is False and third.compared["regression: bpb.bpb"].verdict == "worse"
    assert all(r.startswith("bpb.bpb") for r in third.reasons) and len(third.reasons) == 2, third.reasons
    summary = gate_summary(name, home=registry.home)
    assert (summary["verdict"], summary["approved"]) == ("rejected", v2) and "bpb.bpb" in summary["reason"]
