import json
import os

import pytest

from components.artifacts import ArtifactStore, StageSpec, parse_uri, stage_key
from components.config import DataConfig, PipelineConfig, StageConfig

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


class _Counted(StageConfig):
    n: int
    workers: int = 1


def test_stage_spec_passes_resolved_inputs_and_uses_key_config(home):
    store = ArtifactStore(home)
    up = StageSpec("up", 1, lambda cfg, inputs, out: (out / "n.txt").write_text(str(cfg.n)) and {"n": cfg.n},
                   config=_Counted)
    seen = {}

    def down_work(cfg, inputs, out):
        seen.update(inputs)
        return {"read": int((inputs["up"] / "n.txt").read_text())}

    down = StageSpec("down", 1, down_work, key_config=lambda cfg: {"n": cfg.n}, config=_Counted)  # not workers
    up_result = up.run(_Counted(n=3), {}, store)
    first = down.run(_Counted(n=3, workers=1), {"up": up_result.uri}, store)
    second = down.run(_Counted(n=3, workers=8), {"up": up_result.uri}, store)
    assert first.counts == {"read": 3} and seen["up"].is_absolute()
    assert second.cached and second.key == down.key(store, _Counted(n=3, workers=2), {"up": up_result.uri})


def test_stage_spec_refuses_a_config_of_another_shape_before_any_work(home):
    calls = []
    spec = StageSpec("picky", 1, lambda cfg, inputs, out: calls.append(cfg) or {}, config=_Counted,
                     section=lambda pipeline: _Counted(n=len(pipeline.preset)))
    with pytest.raises(TypeError, match=r"picky takes a _Counted, not a dict \(pick it with the spec's `of"):
        spec.run({"n": 3}, {}, ArtifactStore(home))
    assert calls == [] and not list(ArtifactStore(home).root.glob("picky/*"))
    assert spec.run(spec.of(PipelineConfig(preset="tiny")), {}, ArtifactStore(home)).counts == {}
    assert calls == [_Counted(n=4)]
    with pytest.raises(ValueError, match="not part of the pipeline"):
        StageSpec("loose", 1, spec.work, config=_Counted).of(PipelineConfig())


def _two_files(out):
    (out / "shard.bin").write_bytes(bytes(range(256)) * 64)
    (out / "sub").mkdir()
    (out / "sub" / "val.bin").write_bytes(b"v" * 4096)
    return {"docs": 2}


@pytest.mark.parametrize("damage", ["truncate", "zero_in_place", "delete", "edit_manifest", "garbage_manifest"])
def test_damaged_artifact_is_named_moved_aside_and_rebuilt(home, damage):
    store = ArtifactStore(home)
    first = store.build("demo", 1, {}, {}, _two_files)
    folder = store.path("demo", first.key)
    shard, manifest = folder / "shard.bin", folder / "manifest.json"
    if damage == "truncate":
        shard.write_bytes(shard.read_bytes()[:100])
    elif damage == "zero_in_place":  # same size, new content: caught because the mtime moved
        with shard.open("r+b") as fh:
            fh.write(b"\0" * 512)
    elif damage == "delete":
        (folder / "sub" / "val.bin").unlink()
    elif damage == "edit_manifest":
        data = json.loads(manifest.read_text())
        data["counts"]["docs"] = 99
        manifest.write_text(json.dumps(data))
    else:
        manifest.write_text("{not json")
    problems = store.problems("demo", first.key)
    assert problems and str(folder) in problems[0]
    assert store.verify(first.uri)[first.uri]  # the full check finds it too
    calls = []
    rebuilt = store.build("demo", 1, {}, {}, lambda out: calls.append(1) or _two_files(out))
    assert calls == [1] and not rebuilt.cached and rebuilt.counts == {"docs": 2}
    assert store.problems("demo", first.key, full=True) == []
    aside = [p for p in folder.parent.iterdir() if ".damaged-" in p.name]
    assert len(aside) == 1
    rows = store.list()
    assert [r["damaged"] != "" for r in rows] == [False, True]
    assert aside[0] in store.gc() and not aside[0].exists() and store.is_done("demo", first.key)


def test_unreadable_manifest_is_listed_damaged_and_collected(home):
    store = ArtifactStore(home)
    result = store.build("demo", 1, {}, {}, _two_files)
    (store.path("demo", result.key) / "manifest.json").write_bytes(b"\xff\xfe")
    (row,) = store.list()
    assert "unreadable manifest" in row["damaged"] and row["uri"] == result.uri
    from components.artifacts import ArtifactDamaged

    with pytest.raises(ArtifactDamaged, match="manifest.json"):
        store.resolve(result.uri)
    assert store.path("demo", result.key) in store.gc(dry_run=True)
    store.gc()
    assert store.list() == []


def test_untouched_artifact_is_not_rehashed_on_reuse(home, monkeypatch):
    from components import integrity

    store = ArtifactStore(home)
    result = store.build("demo", 1, {}, {}, _two_files)
    hashed = []
    real = integrity.sha256_file
    monkeypatch.setattr(integrity, "sha256_file", lambda p: hashed.append(p) or real(p))
    assert store.build("demo", 1, {}, {}, _two_files).cached and hashed == []
    assert store.verify()[result.uri] == [] and len(hashed) == 2  # the full check hashes every file


def test_second_builder_waits_for_the_first_and_reuses_it(home):
    import threading

    store = ArtifactStore(home)
    started, release, calls = threading.Event(), threading.Event(), []

    def slow(out):
        calls.append(1)
        started.set()
        release.wait(10)
        return _two_files(out)

    results = []
    first = threading.Thread(target=lambda: results.append(store.build("demo", 1, {}, {}, slow)))
    first.start()
    started.wait(10)
    second = threading.Thread(target=lambda: results.append(ArtifactStore(home).build("demo", 1, {}, {}, slow)))
    second.start()
    second.join(0.5)
    assert second.is_alive()  # waiting on the lock, not building
    release.set()
    first.join(10)
    second.join(10)
    assert calls == [1] and sorted(r.cached for r in results) == [False, True]


def test_full_disk_during_work_names_the_path(home):
    import errno

    store = ArtifactStore(home)

    def fill(out):
        (out / "part").write_text("x")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match=r"No space left on device while writing .*demo/\w+\.tmp-\d+ \(\d+ MB free"):
        store.build("demo", 1, {}, {}, fill)
