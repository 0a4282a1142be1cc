"""The whole pipeline on the tiny preset, twice: the second run recomputes nothing, and a changed field
recomputes only the stages downstream of it."""

import mlflow
import pytest

from components.artifacts import ArtifactStore
from components.presets import load_config
from flows import tracking
from flows.pipeline import pipeline
from tests.extras import extras_dir

pytestmark = pytest.mark.e2e

# A field of a late stage: every stage before it must come from the cache when it changes.
CHANGED = "align.dpo_beta=0.2"
UPSTREAM_OF_CHANGE = {"corpus", "data", "tokenizer", "pack", "pretrain", "sft"}
STAGES = ["corpus", "data", "tokenizer", "pack", "pretrain", "sft", "dpo", "evaluate"]
MODELS = ["dsllm-base", "dsllm-chat"]


@pytest.fixture(scope="module")
def runs(prefect_server, shared_cache_home, tmp_path_factory):
    """Three pipeline runs in one fresh home that shares only the download cache."""
    import os

    home = tmp_path_factory.mktemp("e2e-home")
    (home / "cache").mkdir()
    downloads = shared_cache_home.cache / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    (home / "cache" / "downloads").symlink_to(downloads, target_is_directory=True)
    old = os.environ.get("DSLLM_HOME")
    os.environ["DSLLM_HOME"] = str(home)
    extras = extras_dir()  # C-Eval and CMMLU, named explicitly (the product never looks for them)
    with pytest.MonkeyPatch.context() as mp:
        if extras:
            mp.setenv("DSLLM_BENCHMARKS", str(extras))
        try:
            first = pipeline(config=load_config("tiny"))
            second = pipeline(config=load_config("tiny"))
            changed = pipeline(config=load_config("tiny", overrides=[CHANGED]))
            yield first, second, changed
        finally:
            os.environ.pop("DSLLM_HOME") if old is None else os.environ.__setitem__("DSLLM_HOME", old)


def _stage_runs(parent_run_name_index: int) -> dict[str, bool]:
    tracking.configure()
    parents = mlflow.search_runs(filter_string="attributes.run_name = 'pipeline-tiny'", order_by=["start_time ASC"],
                                 output_format="list")
    parent = parents[parent_run_name_index]
    children = mlflow.search_runs(filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
                                  output_format="list")
    return {c.data.tags["dsllm.stage"]: c.data.tags["dsllm.cached"] == "true" for c in children
            if "dsllm.cached" in c.data.tags}  # stage runs, not the registration runs


def test_every_stage_produces_a_finished_artifact(runs):
    first, _, _ = runs
    assert list(first) == STAGES + MODELS
    store = ArtifactStore()
    for stage in STAGES:
        assert (store.resolve(first[stage]) / "manifest.json").is_file()
    for name in MODELS:
        assert first[name].startswith(f"models:/{name}/")


def test_rerun_recomputes_nothing(runs):
    first, second, _ = runs
    assert first == second
    assert all(_stage_runs(1).values()), "every stage of the second run is a cache hit in MLflow"
    assert not any(_stage_runs(0).values()), "the first run built every stage"


def test_changed_field_recomputes_only_downstream(runs):
    first, _, changed = runs
    cached = _stage_runs(2)
    assert changed["dsllm-base"] == first["dsllm-base"], "the base model is the same version"
    assert changed["dsllm-chat"] != first["dsllm-chat"], "the new chat model is a new version"
    for stage in STAGES:
        uri = changed[stage]
        upstream = stage in UPSTREAM_OF_CHANGE
        assert (uri == first[stage]) == upstream, stage
        assert cached[stage] == upstream, stage


def test_chat_model_is_approved_for_the_demo(runs):
    first, _, changed = runs
    tracking.configure()
    approved = mlflow.MlflowClient().get_model_version_by_alias("dsllm-chat", "approved")
    assert f"models:/dsllm-chat/{approved.version}" in (first["dsllm-chat"], changed["dsllm-chat"])
