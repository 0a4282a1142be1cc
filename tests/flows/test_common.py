"""The stage runner: artifact-keyed caching, Prefect cache hits, MLflow lineage."""

import mlflow
import pytest
from prefect import flow

from flows import common, stages, tracking
from tests.flows import demo_stage

pytestmark = pytest.mark.integration


@pytest.fixture
def demo(monkeypatch, home, prefect_server):
    monkeypatch.setitem(stages.SPECS, "demo", "tests.flows.demo_stage:STAGE")
    demo_stage.CALLS.clear()
    return demo_stage


@flow
def two_stages(n: int, m: int) -> dict:
    with tracking.pipeline_run("test-pipeline", {"n": n, "m": m}):
        first = common.run_stage("demo", demo_stage.Demo(n=n))
        second = common.run_stage("demo", demo_stage.Demo(n=m), {"up": first.uri})
    return {"first": first, "second": second}


def test_rerun_recomputes_nothing_and_change_recomputes_downstream_only(demo, home):
    runs = two_stages(1, 2)
    assert len(demo.CALLS) == 2 and not runs["first"].cached
    assert runs["second"].counts["value"] == 3

    again = two_stages(1, 2)
    assert len(demo.CALLS) == 2, "a re-run on the same config must not rebuild anything"
    assert again["first"].cached and again["second"].cached

    changed = two_stages(1, 5)
    assert len(demo.CALLS) == 3 and changed["first"].cached and not changed["second"].cached

    tracking.configure()
    stage_runs = mlflow.search_runs(filter_string="tags.`dsllm.stage` = 'demo'", output_format="list")
    assert len(stage_runs) == 6
    cached = sorted(r.data.tags["dsllm.cached"] for r in stage_runs)
    assert cached == ["false"] * 3 + ["true"] * 3
    one = stage_runs[0]
    assert one.data.tags["mlflow.parentRunId"] and one.data.metrics["nested.docs"] == 3
    assert "report/summary.md" in [a.path for a in mlflow.MlflowClient().list_artifacts(one.info.run_id, "report")]


def test_gc_artifact_is_rebuilt_not_served_from_prefect_cache(demo, home):
    from components.artifacts import ArtifactStore

    first = two_stages(7, 8)["first"]
    ArtifactStore(home).gc(older_than_days=0)
    rebuilt = two_stages(7, 8)
    assert not rebuilt["first"].cached and ArtifactStore(home).resolve(first.uri).is_dir()


def test_damaged_artifact_is_rebuilt_not_served_from_prefect_cache(demo, home):
    from components.artifacts import ArtifactStore

    first = two_stages(3, 4)["first"]
    store = ArtifactStore(home)
    folder = store.resolve(first.uri)
    victim = next(p for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "manifest.json"
                  and not p.name.startswith("."))
    victim.write_bytes(victim.read_bytes()[:-1] + b"!")
    rebuilt = two_stages(3, 4)
    assert not rebuilt["first"].cached and len(demo.CALLS) == 3  # first rebuilt; second's inputs unchanged
    assert store.problems(*first.uri.removeprefix("dsllm://").split("/")) == []
    assert any(".damaged-" in p.name for p in folder.parent.iterdir())
