"""Failure classification (retry or stop), disk errors that name the path, and the preflight refusals."""

from __future__ import annotations

import errno
from types import SimpleNamespace

import pytest

from components import faults, preflight
from components.config import ModelConfig, PretrainConfig
from components.integrity import ArtifactDamaged

pytestmark = pytest.mark.unit


def _chained(outer: BaseException, inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as exc:
            raise outer from exc
    except BaseException as caught:
        return caught


@pytest.mark.parametrize("error, deterministic", [
    (OSError(errno.ENOSPC, "No space left on device"), True),
    (OSError(errno.EROFS, "Read-only file system"), True),
    (ValueError("bad value"), True),
    (FileNotFoundError("Artifact dsllm://pack/abc is not in the home"), True),  # raised by hand: no errno
    (KeyError("tokenizer"), True),
    (ArtifactDamaged("x: missing"), True),
    (RuntimeError("PytorchStreamWriter failed: No space left on device"), True),
    (_chained(RuntimeError("stage failed"), OSError(errno.ENOSPC, "full")), True),
    (OSError(errno.ECONNRESET, "Connection reset by peer"), False),
    (RuntimeError("worker lost"), False),
    (ConnectionError("refused"), False),
])
def test_deterministic_errors_are_told_from_transient_ones(error, deterministic):
    assert faults.is_deterministic(error) is deterministic


def test_prefect_retry_condition_never_retries_a_full_disk():
    from flows import ops

    def state(error):
        return SimpleNamespace(result=lambda raise_on_failure=False: error)

    assert not ops.retry_unless_mistake(None, None, state(_chained(RuntimeError("x"), OSError(errno.ENOSPC, "f"))))
    assert ops.retry_unless_mistake(None, None, state(RuntimeError("HTTP 503 from the registry")))


def test_disk_full_error_names_the_path_and_free_space(tmp_path):
    error = faults.disk_full(RuntimeError("file write failed"), tmp_path / "ckpt")
    assert error.errno == errno.ENOSPC and str(tmp_path / "ckpt") in str(error) and "MB free" in str(error)
    assert faults.is_disk_full(error) and faults.is_deterministic(error)


def test_ray_train_stops_on_deterministic_worker_errors_and_retries_lost_workers():
    from ray.exceptions import RayActorError
    from ray.train.v2.api.exceptions import WorkerGroupError

    from components.pretrain import failures

    full = WorkerGroupError("w", {0: OSError(errno.ENOSPC, "No space left on device"), 1: RuntimeError("gloo")})
    lost = WorkerGroupError("w", {0: RayActorError(), 1: ValueError("collateral")})
    flaky = WorkerGroupError("w", {0: RuntimeError("connection reset")})
    assert failures.should_stop(full) and not failures.should_stop(lost) and not failures.should_stop(flaky)
    plain = failures.plain_error(full, preflight.Path("/tmp/ckpt"))
    assert "/tmp/ckpt" in str(plain) and "\n" not in str(plain)


def test_policy_is_installed_while_training_and_removed_after():
    from ray.train.v2.api import data_parallel_trainer as dpt

    from components.pretrain import failures

    original = dpt.create_failure_policy
    with failures.deterministic_failures_stop():
        from ray.train import FailureConfig

        policy = dpt.create_failure_policy(FailureConfig(max_failures=3))
        assert isinstance(policy, failures.StopOnDeterministic)
    assert dpt.create_failure_policy is original


TINY = ModelConfig(n_layer=2, d_model=64, n_head=4, n_kv_head=2, d_ffn=176, vocab_size=1024, max_seq_len=128)


def test_gpu_requested_without_gpus_is_refused_in_one_line():
    with pytest.raises(preflight.PreflightError, match="use_gpu=true needs 1 GPU.*sees 0") as info:
        preflight.check_training(PretrainConfig(use_gpu=True), TINY, {"CPU": 2, "GPU": 0})
    assert "\n" not in str(info.value)


def test_more_worker_cpus_than_the_cluster_has_is_refused():
    cfg = PretrainConfig(num_workers=4, cpus_per_worker=1)
    with pytest.raises(preflight.PreflightError, match="num_workers=4 × 1 CPUs.*Ray has 2"):
        preflight.check_training(cfg, TINY, {"CPU": 2})
    with pytest.raises(preflight.PreflightError, match="num_workers=4"):  # default share: 0.95 each
        preflight.check_training(PretrainConfig(num_workers=4), TINY, {"CPU": 2})
    preflight.check_training(PretrainConfig(num_workers=2), TINY, {"CPU": 2})
    preflight.check_training(PretrainConfig(num_workers=0, cpus_per_worker=8), TINY, {"CPU": 2})


def test_model_too_big_for_memory_is_refused():
    big = ModelConfig(n_layer=30, d_model=4096, n_head=32, n_kv_head=32, d_ffn=11008, vocab_size=102400,
                      max_seq_len=4096)
    assert 6.5e9 < preflight.model_params(big) < 7.5e9  # DeepSeek 7B
    with pytest.raises(preflight.PreflightError, match="GiB of memory"):
        preflight.check_training(PretrainConfig(), big, {"CPU": 2, "memory": 24 * 2**30})


def test_disk_check_names_the_path(tmp_path):
    preflight.check_disk(tmp_path, 1, "corpus")
    with pytest.raises(preflight.PreflightError, match=f"under {tmp_path}.*MB free"):
        preflight.check_disk(tmp_path, 1e12, "pretrain")


def test_rank_outside_ray_train_is_local_and_inside_an_unreadable_context_is_an_error(monkeypatch):
    import ray.train

    from components.pretrain import runtime

    assert runtime.rank_and_world() == (0, 1)
    monkeypatch.setattr(runtime, "in_ray_train", lambda: True)

    def broken():
        raise RuntimeError("context not ready")

    monkeypatch.setattr(ray.train, "get_context", lambda: SimpleNamespace(get_world_rank=broken, get_world_size=broken))
    with pytest.raises(RuntimeError, match="gave no rank"):
        runtime.rank_and_world()
