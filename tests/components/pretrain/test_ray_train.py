"""Pretraining on a real two-node Ray cluster on loopback (one CPU per node): DDP with one worker on
each node, FSDP with activation checkpointing recovering from a killed worker through its sharded
checkpoint (the DDP/local checkpoint path is resumed in test_train_local), and the deepseek_7b layer
width (and deepseek_67b's attention shape at reduced width) trained, killed and resumed the same way,
with checkpoints on local disk and on a real S3 server on loopback (moto); workers on both nodes read the pack from that S3 server."""

from __future__ import annotations

import os
import shutil
import signal
import threading
from pathlib import Path

import pytest

from components import storage
from components.pretrain.metrics import read
from components.pretrain.trainer import fit, plan, pretrain
from tests.components.pretrain.conftest import tiny_model, tiny_train
from tests.components.pretrain.raycluster import LoopbackCluster, wait_for

# A driver connected to this two-node cluster cannot share its process with the local Ray of other test
# modules (Ray Train's controller never starts after a re-init), so it runs in a pytest process of its own.
pytestmark = [pytest.mark.integration, pytest.mark.own_process]
LONG = {"total_tokens": 60 * 512, "checkpoint_every": 10, "eval_every": 20}


@pytest.fixture(scope="module")
def cluster(s3_server):
    """Started after the S3 server: the nodes inherit its endpoint and test credentials."""
    import ray

    nodes = LoopbackCluster()
    previous = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    try:
        nodes.start_head(cpus=1, resources='{"node_a": 1}')
        nodes.add_node(cpus=1, resources='{"node_b": 1}')
        ray.init(address=nodes.address, logging_level="warning")
        yield nodes
    finally:
        ray.shutdown()
        nodes.stop()
        os.environ.pop("RAY_AUTH_MODE") if previous is None else os.environ.__setitem__("RAY_AUTH_MODE", previous)


def _train(inputs, folder, **train):
    return pretrain(tiny_model(inputs), tiny_train(**train), inputs["pack"], inputs["tokenizer"], folder / "out",
                    folder / "ckpt", progress=False)


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory):
    """The uninterrupted run in-process: the global batch does not depend on the number of workers."""
    return _train(inputs, tmp_path_factory.mktemp("reference"), cpus_per_worker=1, **LONG)


def _worker(folder, rank):
    import json

    path = folder / "ckpt" / "workers" / f"rank{rank}.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def test_one_worker_on_each_of_two_nodes(cluster, inputs, tmp_path):
    """DDP over gloo across the nodes, in bf16 with fp32 master weights."""
    counts = _train(inputs, tmp_path, num_workers=2, cpus_per_worker=1, keep_checkpoints=True, precision="bf16")
    nodes = {_worker(tmp_path, rank)["node"] for rank in (0, 1)}
    assert len(nodes) == 2 and None not in nodes
    assert counts["steps"] == 16 and counts["final_loss"] < 4.5


def test_killed_fsdp_worker_resumes_from_last_checkpoint(cluster, inputs, tmp_path, reference):
    """SIGKILL rank 1 mid-run: Ray restarts the workers, they load the sharded (DCP) checkpoint and finish."""
    killed = {}

    def kill_rank_1():
        info = wait_for(lambda: (w := _worker(tmp_path, 1)) and w["step"] >= 13 and w, timeout=900)
        os.kill(info["pid"], signal.SIGKILL)
        killed.update(info)

    killer = threading.Thread(target=kill_rank_1, daemon=True)
    killer.start()
    counts = _train(inputs, tmp_path, num_workers=2, cpus_per_worker=1, strategy="fsdp", keep_checkpoints=True,
                    max_failures=2, activation_checkpointing="full", **LONG)
    killer.join(timeout=5)
    assert killed, "the worker was never killed"
    assert _worker(tmp_path, 1)["pid"] != killed["pid"]  # a new worker finished the run
    assert (tmp_path / "ckpt" / "step_00000060" / "dcp").is_dir()
    steps = [r["step"] for r in read(tmp_path / "out" / "metrics.jsonl")]
    assert steps == list(range(1, 61))  # the steps after the checkpoint were redone, not duplicated
    assert counts["final_loss"] == pytest.approx(reference["final_loss"], rel=0.02)


def test_workers_on_two_nodes_read_the_pack_from_s3(cluster, inputs, tmp_path, home, s3_root):
    """The pack uploaded to the bucket; the driver's checked copy is deleted before training, so the workers
    fetch the shards from S3 themselves (and check them against pack.json)."""
    pack = f"{s3_root}/pack"
    storage.upload_dir(inputs["pack"], pack, last="pack.json")
    spec, _ = plan(tiny_model(inputs), tiny_train(num_workers=2, cpus_per_worker=1, total_tokens=6 * 512),
                   pack, inputs["tokenizer"], tmp_path / "ckpt")
    copy = storage.cache_path(pack, Path(spec.cache_dir))
    shutil.rmtree(copy)
    fit(spec, progress=False)
    assert spec.pack_dir == pack and (copy / "pack.json").is_file()  # downloaded again, by the workers
    assert [r["step"] for r in read(tmp_path / "ckpt" / "metrics.jsonl")] == list(range(1, 7))
    assert len({_worker(tmp_path, rank)["node"] for rank in (0, 1)}) == 2


def _kill_rank_1_after(folder, step: int, killed: dict) -> threading.Thread:
    def kill():
        info = wait_for(lambda: (w := _worker(folder, 1)) and w["step"] >= step and w, timeout=1800)
        os.kill(info["pid"], signal.SIGKILL)
        killed.update(info)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


def _shape(name: str) -> dict:
    """One decoder layer of deepseek_7b's exact shape (d 4096, 32 heads, d_ffn 11008; ~200M parameters), or
    deepseek_67b's attention shape (64 query heads sharing 8 KV heads) at a quarter of its width (d 2048, head
    dim 32, the same d_ffn / d ratio; d 8192 does not fit two CPU workers beside the rest of a test run)."""
    from components.presets import deepseek_7b, deepseek_67b

    if name == "7b":
        m = deepseek_7b().model
        return {"d_model": m.d_model, "n_head": m.n_head, "n_kv_head": m.n_kv_head, "d_ffn": m.d_ffn}
    m = deepseek_67b().model
    return {"d_model": m.d_model // 4, "n_head": m.n_head, "n_kv_head": m.n_kv_head, "d_ffn": m.d_ffn // 4}


# The 7B layer's checkpoints on moto S3 (about 1.2 GB per shard): the duplicate completion behind an earlier
# flake is gone (a 300 s read timeout), but moto's server holds about four copies of each shard while it
# completes one, ~10 GB at the peak with both shards: more than a 24 GB machine running the suite can spare
# (one run here ended in Ray's out-of-memory kill). Opt in with DSLLM_TEST_S3_7B=1; S3 checkpoints, resume and
# a slow completion run in every `make test` at small size (test_train_s3.py), as does the pack from S3 on two
# nodes below.
S3_7B = pytest.mark.skipif(os.environ.get("DSLLM_TEST_S3_7B") != "1",
                           reason="7B-width checkpoints on moto S3 need ~10 GB in moto's server: DSLLM_TEST_S3_7B=1")


@pytest.mark.parametrize("shape, where", [("7b", "local"), pytest.param("7b", "s3", marks=S3_7B),
                                          ("67b_attention", "local")])
def test_deepseek_widths_under_fsdp_survive_a_kill(cluster, inputs, tmp_path, request, shape, where):
    """A deepseek layer shape (`_shape`) with the fixtures' small vocabulary, sharded over 2 CPU workers with
    full activation checkpointing: trains, checkpoints (DCP, on local disk or on the loopback S3 server), loses
    rank 1 to SIGKILL, resumes and finishes."""
    ckpt = f"{request.getfixturevalue('s3_root')}/ckpt" if where == "s3" else tmp_path / "ckpt"
    model = tiny_model(inputs, n_layer=1, **_shape(shape))
    train = tiny_train(total_tokens=8 * 128, batch_tokens=128, micro_batch=2, lr=3e-4, warmup_steps=1,
                       checkpoint_every=3, eval_every=8, val_batches=1, num_workers=2, cpus_per_worker=1,
                       strategy="fsdp", activation_checkpointing="full", keep_checkpoints=True, max_failures=2)
    killed: dict = {}
    killer = _kill_rank_1_after(tmp_path, 4, killed)
    counts = pretrain(model, train, inputs["pack"], inputs["tokenizer"], tmp_path / "out", ckpt, progress=False,
                      run_dir=tmp_path / "ckpt")
    killer.join(timeout=5)
    assert killed, "the worker was never killed"
    assert _worker(tmp_path, 1)["pid"] != killed["pid"]
    if where == "s3":  # the checkpoints are in the bucket, none on local disk
        assert all(storage.exists(f"{ckpt}/step_00000008/{name}") for name in ("dcp/.metadata", "state.json"))
        assert not list((tmp_path / "ckpt").glob("step_*"))
    else:
        assert (tmp_path / "ckpt" / "step_00000008" / "dcp").is_dir()
    records = read(tmp_path / "out" / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(1, 9))
    assert counts["params"] > (190_000_000 if shape == "7b" else 40_000_000)
    assert records[-1]["loss"] < records[0]["loss"]
