"""Ray Train's failure budget on a real local Ray: a deterministic worker error stops at once, a transient one is
retried (a lost worker's restart is asserted by the killed-worker resume in test_ray_train)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _fails(config: dict) -> None:
    marks = Path(config["marks"])
    marks.mkdir(exist_ok=True)
    (marks / f"attempt-{len(list(marks.iterdir()))}").touch()
    if config["kind"] == "deterministic":
        raise OSError(28, "No space left on device")
    if len(list(marks.iterdir())) == 1:  # the first attempt fails with an error a retry may fix
        raise ConnectionResetError("peer went away")


@pytest.mark.parametrize("kind, attempts", [("deterministic", 1), ("transient", 2)])
def test_deterministic_errors_stop_and_transient_ones_are_retried(tmp_path, kind, attempts):
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from components.pretrain import failures

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 2**20, ignore_reinit_error=True)
    try:
        trainer = TorchTrainer(_fails, train_loop_config={"marks": str(tmp_path / "marks"), "kind": kind},
                               scaling_config=ScalingConfig(num_workers=1, resources_per_worker={"CPU": 0.5}),
                               run_config=RunConfig(storage_path=str(tmp_path / "ray"),
                                                    failure_config=FailureConfig(max_failures=3)))
        with failures.deterministic_failures_stop():
            if kind == "deterministic":
                with pytest.raises(Exception) as info:
                    trainer.fit()
                plain = failures.plain_error(info.value, tmp_path / "ckpt")
                assert "No space left on device" in str(plain) and str(tmp_path / "ckpt") in str(plain)
            else:
                trainer.fit()
    finally:
        ray.shutdown()
    assert len(list((tmp_path / "marks").iterdir())) == attempts
