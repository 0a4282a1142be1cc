"""Operations around stages: retries with backoff, timeouts, the training concurrency limit, resume hints."""

from __future__ import annotations

import logging
import re
import shlex
import sys
import threading

import pytest
from prefect import flow

from flows import common, ops, stages
from tests.flows import flaky_stage

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ops_home(tmp_path_factory):
    """One home for this module: its MLflow database is created once (seconds each on a busy machine)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DSLLM_HOME", str(tmp_path_factory.mktemp("ops") / "home"))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield


@pytest.fixture
def flaky(monkeypatch, ops_home, prefect_server):
    monkeypatch.setitem(stages.SPECS, "flaky", "tests.flows.flaky_stage:STAGE")
    for state in (flaky_stage.CALLS, flaky_stage.FAIL, flaky_stage.SPANS):
        state.clear()
    return flaky_stage


@pytest.fixture
def fast_retries(monkeypatch):
    """The real retry machinery with the first backoff at 0.1 s instead of 10 s."""
    real = ops.policy
    monkeypatch.setattr(ops, "policy", lambda stage: ops.StagePolicy(**{**vars(real(stage)), "backoff_s": 0.1}))


@flow
def chain(first: int, second: int, sleep: float = 0) -> dict:
    one = common.run_stage("flaky", flaky_stage.Flaky(n=first))
    two = common.run_stage("flaky", flaky_stage.Flaky(n=second, sleep=sleep), {"up": one.uri})
    return {"one": one.uri, "two": two.uri}


@flow
def single(n: int, sleep: float = 0) -> str:
    return common.run_stage("flaky", flaky_stage.Flaky(n=n, sleep=sleep)).uri


def test_policy_per_stage():
    corpus, pretrain, data = ops.policy("corpus"), ops.policy("pretrain"), ops.policy("data")
    assert corpus.retries > pretrain.retries and ops.TRAINING_TAG not in corpus.tags
    assert ops.task_options("corpus")["retry_delay_seconds"] == [30.0, 60.0, 120.0, 240.0]  # exponential
    assert pretrain.tags == {"dsllm-training"} and ops.policy("sft").tags == ops.policy("dpo").tags == pretrain.tags
    assert data.tags == frozenset() and pretrain.timeout_s > data.timeout_s >= 24 * 3600
    assert ops.task_options("tokenizer")["tags"] == set() and ops.task_options("tokenizer")["retries"] == 1


def test_timeouts_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("DSLLM_TIMEOUT_DATA_H", "0.5")
    assert ops.timeout_s("data") == 1800
    monkeypatch.setenv("DSLLM_TIMEOUT_DATA_H", "0")
    assert ops.timeout_s("data") is None
    monkeypatch.setenv("DSLLM_TIMEOUT_DATA_H", "soon")
    with pytest.raises(ValueError, match="DSLLM_TIMEOUT_DATA_H=48"):
        ops.timeout_s("data")


def test_transient_failure_is_retried_with_backoff(flaky, fast_retries, caplog):
    flaky.FAIL[1] = [RuntimeError]
    with caplog.at_level(logging.INFO):
        uri = single(1)
    assert len(flaky.CALLS) == 2 and uri.startswith("dsllm://flaky/")
    assert "Retry 1/1 will start" in caplog.text


def test_mistake_is_not_retried_and_the_log_says_how_to_resume(flaky, fast_retries, caplog):
    flaky.FAIL[5] = [ValueError]
    with caplog.at_level(logging.INFO), pytest.raises(ValueError, match="n=5 on purpose"):
        chain(3, 5)
    assert len(flaky.CALLS) == 2, "a ValueError is a mistake: no retry"
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stage flaky FAILED")]
    first = stages.spec("flaky").key(common.ArtifactStore(), flaky_stage.Flaky(n=3), {})
    assert line.startswith("stage flaky FAILED (ValueError: failure of n=5 on purpose)")
    assert f"inputs: up=dsllm://flaky/{first}" in line
    command = line.split("so this resumes it: ", 1)[1]
    # the exact command reruns the root flow with its parameters: run it (in-process) and the stage finishes
    words = shlex.split(command)
    assert words[:2] == ["cd", str(ops.REPO)] and words[3:6] == ["PYTHONPATH=.", "python", "-c"]
    code, params = words[6], words[7]
    assert "from tests.flows.test_ops import chain" in code and '"second": 5' in params
    sys_argv = sys.argv
    try:
        sys.argv = ["-c", params]
        exec(code, {})
    finally:
        sys.argv = sys_argv
    assert [c.n for c in flaky.CALLS] == [3, 5, 5], "the resumed run reused n=3 and built only n=5"


def test_stage_past_its_timeout_fails_without_retry(flaky, monkeypatch, caplog):
    monkeypatch.setenv("DSLLM_TIMEOUT_FLAKY_H", str(1 / 3600))  # one second
    with caplog.at_level(logging.INFO), pytest.raises(TimeoutError):
        single(6, sleep=120)
    assert len(flaky.CALLS) == 1 and "exceeded timeout" in caplog.text


@pytest.fixture
def training_limit():
    """The tag limit `dsllm up` creates, on the test server, removed afterwards."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        client.create_concurrency_limit(tag=ops.TRAINING_TAG, concurrency_limit=1)
        yield
        client.delete_concurrency_limit_by_tag(ops.TRAINING_TAG)


def test_two_training_runs_never_overlap(flaky, monkeypatch, training_limit):
    monkeypatch.setattr(ops, "TRAINING_STAGES", frozenset({"flaky"}))
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            single(10 + n, sleep=1.5)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    spans = sorted(flaky.SPANS)
    assert len(spans) == 2
    assert all(earlier[1] <= later[0] for earlier, later in zip(spans, spans[1:], strict=False)), spans



def test_each_stage_leaves_its_mlflow_link_and_artifact_keys_on_the_flow_run(flaky):
    import mlflow
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    state = chain(21, 22, return_state=True)
    uris = state.result()
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])))
    links = [a.data for a in found if a.key == "dsllm-flaky-mlflow"]  # link artifacts are stored as markdown
    tables = [a.data for a in found if a.key == "dsllm-flaky-lineage"]
    assert len(links) == len(tables) == 2
    # on a SQLite store the link is the run's runs:/ URI; the run is the stage's nested MLflow run
    run_ids = {re.search(r"\]\(runs:/(\w+)\)$", link).group(1) for link in links}
    tracked = {r.info.run_id: r for r in mlflow.search_runs(search_all_experiments=True, output_format="list")}
    assert run_ids <= set(tracked) and {tracked[i].data.tags["dsllm.artifact_uri"] for i in run_ids} == set(uris.values())
    second = next(table for table in tables if uris["two"] in table)
    assert f"| input `up` | `{uris['one']}` |" in second and f"`{uris['two'].rsplit('/', 1)[1]}`" in second
