import json
import os

import pytest

from components.artifacts import ArtifactStore, parse_uri, stage_key
from components.config import DataConfig

pytestmark = pytest.mark.unit


def test_key_depends_on_config_and_inputs_not_paths():
    a = stage_key("data", 1, DataConfig(), {"corpus": "abc"})
    assert a == stage_key("data", 1, DataConfig(), {"corpus": "abc"})
    assert a != stage_key("data", 1, DataConfig(seed=1), {"corpus": "abc"})
    assert a != stage_key("data", 1, DataConfig(), {"corpus": "abd"})
    assert a != stage_key("data", 2, DataConfig(), {"corpus": "abc"})


def test_build_runs_once_then_is_cached(home):
    store = ArtifactStore(home)
    calls = []

    def work(out):
        calls.append(out)
        (out / "data.txt").write_text("hello")
        return {"docs": 1}

    first = store.build("demo", 1, {"x": 1}, {}, work)
    second = store.build("demo", 1, {"x": 1}, {}, work)
    assert len(calls) == 1 and not first.cached and second.cached
    assert first.uri == second.uri and parse_uri(first.uri) == ("demo", first.key)
    manifest = json.loads((store.resolve(first.uri) / "manifest.json").read_text())
    assert manifest["counts"] == {"docs": 1} and "data.txt" in manifest["files"]
    assert manifest["code_version"]


def test_crash_leaves_no_artifact_and_rerun_succeeds(home):
    store = ArtifactStore(home)

    def crash(out):
        (out / "partial").write_text("x")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.build("demo", 1, {}, {}, crash)
    key = stage_key("demo", 1, {}, {})
    assert not store.is_done("demo", key)
    result = store.build("demo", 1, {}, {}, lambda out: {"ok": True})
    assert result.counts == {"ok": True} and not result.cached


def test_downstream_key_changes_with_upstream(home):
    store = ArtifactStore(home)
    up1 = store.build("up", 1, {"v": 1}, {}, lambda out: {})
    up2 = store.build("up", 1, {"v": 2}, {}, lambda out: {})
    down1 = store.build("down", 1, {}, {"up": up1.uri}, lambda out: {})
    down2 = store.build("down", 1, {}, {"up": up2.uri}, lambda out: {})
    assert down1.key != down2.key


def test_gc_removes_dead_leftovers_keeps_live_and_finished(home):
    store = ArtifactStore(home)
    done = store.build("demo", 1, {}, {}, lambda out: {})
    dead = store.root / "demo" / "abc.tmp-999999999"
    live = store.root / "demo" / f"abd.tmp-{os.getpid()}"
    dead.mkdir()
    live.mkdir()
    removed = store.gc()
    assert dead in removed and not dead.exists() and live.exists()
    assert store.is_done("demo", done.key)
    assert store.gc(older_than_days=0) and not store.is_done("demo", done.key)


def test_resolve_missing_artifact_says_what_to_do(home):
    with pytest.raises(FileNotFoundError, match="re-run the pipeline"):
        ArtifactStore(home).resolve("dsllm://demo/000")


def test_stage_spec_passes_resolved_inputs_and_uses_key_config(home):
    from components.artifacts import StageSpec

    store = ArtifactStore(home)
    up = StageSpec("up", 1, lambda cfg, inputs, out: (out / "n.txt").write_text(str(cfg["n"])) and {"n": cfg["n"]})
    seen = {}

    def down_work(cfg, inputs, out):
        seen.update(inputs)
        return {"read": int((inputs["up"] / "n.txt").read_text())}

    down = StageSpec("down", 1, down_work, key_config=lambda cfg: {"n": cfg["n"]})  # ignores "workers"
    up_result = up.run({"n": 3}, {}, store)
    first = down.run({"n": 3, "workers": 1}, {"up": up_result.uri}, store)
    second = down.run({"n": 3, "workers": 8}, {"up": up_result.uri}, store)
    assert first.counts == {"read": 3} and seen["up"].is_absolute()
    assert second.cached and second.key == down.key(store, {"n": 3, "workers": 2}, {"up": up_result.uri})
