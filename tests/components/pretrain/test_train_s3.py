"""The pretrain stage with `DSLLM_ARTIFACTS_URI` on a real S3 server on loopback (moto), in Ray Train's local
mode: the pack is read from the bucket, checkpoints go to the bucket, a run killed mid-way resumes from the
bucket's checkpoint to the result of an uninterrupted run, and the model artifact is uploaded; a sharded
checkpoint waits for a server that is slow to complete its upload."""

from __future__ import annotations

import shutil

import pytest
import torch

from components import storage
from components.artifacts import ArtifactStore
from components.pretrain import checkpoint, stage
from components.pretrain.metrics import read
from components.pretrain.trainer import pretrain
from tests.components.pretrain.test_train_local import _config, _publish, crash_after_step

pytestmark = pytest.mark.integration


def test_stage_on_s3_resumes_a_killed_run_from_the_bucket(inputs, home, s3_root, tmp_path, monkeypatch):
    store = ArtifactStore(home)
    uris = {name: _publish(store, name, inputs[name]) for name in ("pack", "tokenizer")}
    cfg = _config(inputs, keep_checkpoints=True)
    paths = {name: store.resolve(uri) for name, uri in uris.items()}
    ckpt = stage.checkpoint_dir(cfg, paths)
    assert ckpt.startswith(f"{s3_root}/checkpoints/")
    assert stage.pack_location(paths["pack"]) == f"{s3_root}/artifacts/pack/{paths['pack'].name}"
    heal = crash_after_step(monkeypatch, 7)
    with pytest.raises(Exception, match="simulated crash"):
        stage.STAGE.run(cfg, uris, store)
    assert [n for n in storage.listdir(ckpt) if n.startswith("step_")] == ["step_00000005"]
    heal()
    shutil.rmtree(home.cache / "remote")  # the resumed run fetches the pack from the bucket again
    resumed = stage.STAGE.run(cfg, uris, store)
    reference = pretrain(cfg.model, cfg.pretrain, inputs["pack"], inputs["tokenizer"], tmp_path / "out",
                         tmp_path / "ckpt", seq_len=cfg.seq_len, progress=False)  # uninterrupted, local
    assert resumed.counts["final_loss"] == pytest.approx(reference["final_loss"], rel=1e-5)
    steps = [r["step"] for r in read(store.resolve(resumed.uri) / "metrics.jsonl")]
    assert steps == list(range(1, 17))  # steps 6-7 were redone, not duplicated
    assert storage.exists(f"{s3_root}/artifacts/pretrain/{resumed.key}/manifest.json")
    assert store.verify(resumed.uri) == {resumed.uri: []}


@pytest.mark.filterwarnings("ignore:torch.distributed is disabled:UserWarning")
def test_a_sharded_checkpoint_waits_for_a_slow_completion(s3_root, slow_s3_completion):
    """DCP's writer (the sharded checkpoints on S3) gets the same read timeout: a 52 MB shard, uploaded in
    parts, is completed once on a server slower than s3fs's default timeout, and loads back."""
    weights = torch.randn(13 * 2**18, 4)
    folder = checkpoint.save(f"{s3_root}/ckpt", 1, {"step": 1}, 0, lambda: {"w": weights}, dict, sharded=True)
    assert len(slow_s3_completion) == 1
    state, tensors = checkpoint.load(folder, 0, sharded=True,
                                     template=lambda: {"model": {"w": torch.zeros_like(weights)}, "optim": {}})
    assert state == {"step": 1} and torch.equal(tensors["model"]["w"], weights)
