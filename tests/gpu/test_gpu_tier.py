"""The GPU tier (`make test-gpu`): the project's own code on one CUDA device, skipped without one.

- the small preset's model pretrains in bf16 with FSDP and activation checkpointing through Ray Train
  (the pipeline's path: nccl, the worker's GPU from Ray, MFU against the datasheet peak);
- the same loop in-process at the 7B width: MFU against the datasheet peak and measured peak memory against
  the planner's estimate, with and without activation checkpointing;
- SFT and DPO steps (TRL) in bf16 on the GPU;
- the demo's engine decoding concurrent replies in one batch on the GPU.

Measured numbers are printed and, when `DSLLM_GPU_REPORT` names a file, appended to it as JSON lines
(infra/README.md quotes them). `DSLLM_GPU_TIER_ON_CPU=1` runs the tier on the CPU at toy sizes: a dry run
of the code paths, for machines without a GPU (it measures nothing worth quoting).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

import pytest
import torch

from tests.components.pretrain.fixtures import documents, make_pack, make_tokenizer
from tests.components.pretrain.raycluster import free_port

ON_CPU = os.environ.get("DSLLM_GPU_TIER_ON_CPU") == "1"
CUDA = torch.cuda.is_available() and not ON_CPU
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not (CUDA or ON_CPU), reason="needs a CUDA GPU")]


def record(name: str, **values) -> None:
    """Print a measurement and append it to DSLLM_GPU_REPORT."""
    line = {"check": name, "device": torch.cuda.get_device_name() if CUDA else "cpu (dry run)",
            "torch": torch.__version__, **values}
    print(json.dumps(line))
    if path := os.environ.get("DSLLM_GPU_REPORT"):
        with open(path, "a") as fh:
            fh.write(json.dumps(line) + "\n")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    """A byte-level BPE and packs of templated en/zh/code text at two sequence lengths."""
    root = tmp_path_factory.mktemp("gpu-inputs")
    docs = documents(3000 if ON_CPU else 40000)
    tok = make_tokenizer(root / "tokenizer", docs, vocab_size=512)
    packs = {n: root / f"pack{n}" for n in (256, 64 if ON_CPU else 2048)}
    for n, path in packs.items():
        make_pack(path, tok, docs, n, shard_tokens=1 << 20)
    return {"tokenizer": root / "tokenizer", "packs": packs, "vocab": len(tok)}


def test_small_preset_pretrains_in_bf16_with_fsdp_and_checkpointing_through_ray(corpus, tmp_path):
    from components.config import ModelConfig, PretrainConfig
    from components.presets import small
    from components.pretrain.trainer import pretrain

    preset = small()
    model = ModelConfig(**{**preset.model.model_dump(), "vocab_size": corpus["vocab"]})
    steps = 8 if ON_CPU else 60
    cfg = PretrainConfig(**{**preset.pretrain.model_dump(), "use_gpu": CUDA, "num_workers": 1, "strategy": "fsdp",
                            "activation_checkpointing": "full", "precision": "auto",
                            "total_tokens": steps * preset.pretrain.batch_tokens, "eval_every": steps // 2,
                            "checkpoint_every": steps // 2, "warmup_steps": 5,
                            "peak_flops": 1e13 if ON_CPU else None})
    counts = pretrain(model, cfg, corpus["packs"][256], corpus["tokenizer"], tmp_path / "out", tmp_path / "ckpt",
                      progress=False)
    records = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    record("pretrain_small_ray_fsdp_ac", steps=counts["steps"], tokens_per_s=counts["tokens_per_s"],
           mfu=counts["mfu_mean"], first_loss=losses[0], final_loss=counts["final_loss"],
           val_loss=counts["val_loss"])
    assert counts["steps"] == steps and losses[-1] < 0.7 * losses[0]
    assert 0 < counts["mfu_mean"] < 1
    assert (tmp_path / "out" / "hf" / "config.json").is_file()


@pytest.fixture(scope="module")
def process_group():
    """A one-process group (nccl on the GPU, gloo on the CPU), so FSDP shards as it would on a cluster."""
    import torch.distributed as dist

    dist.init_process_group("nccl" if CUDA else "gloo", init_method=f"tcp://127.0.0.1:{free_port()}",
                            rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def _wide_model():
    """The deepseek_7b layer (d 4096, 32 heads, d_ffn 11008) and vocabulary, with 4 layers (toy sizes on CPU)."""
    from components.config import ModelConfig
    from components.presets import deepseek_7b

    full = deepseek_7b().model.model_dump()
    if ON_CPU:
        return ModelConfig(**{**full, "n_layer": 2, "d_model": 128, "n_head": 4, "n_kv_head": 4, "d_ffn": 344,
                              "vocab_size": 1024})
    return ModelConfig(**{**full, "n_layer": 4})


def _wide_run(corpus, tmp_path, checkpointing: str):
    from components.config import PretrainConfig
    from components.pretrain.loop import Run, RunSpec

    model, seq = _wide_model(), (64 if ON_CPU else 2048)
    micro = 2 if ON_CPU else 4
    cfg = PretrainConfig(total_tokens=10 ** 9, batch_tokens=micro * seq * 2, micro_batch=micro, lr=3e-4,
                         warmup_steps=2, use_gpu=CUDA, strategy="fsdp", precision="auto", num_workers=1,
                         activation_checkpointing=checkpointing, peak_flops=1e13 if ON_CPU else None)
    spec = RunSpec(model=model.model_dump(), pretrain=cfg.model_dump(), pack_dir=str(corpus["packs"][seq]),
                   ckpt_dir=str(tmp_path / checkpointing), seq_len=seq, total_steps=1000)
    return Run(spec)


def _activation_peak(run) -> int:
    """Bytes a forward + backward of one micro-batch adds at its peak, gradients already allocated (as the
    CPU measurement in components.plan.measure counts them)."""
    batch = run._micro_batch(0)
    run.net(batch[:, :-1], batch[:, 1:]).backward()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    run.net(batch[:, :-1], batch[:, 1:]).backward()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    run.opt.zero_grad()
    return peak


def test_7b_width_mfu_and_memory_against_the_planner(corpus, process_group, tmp_path):
    from components.plan.memory import Layout, activations, breakdown, states

    measured = {}
    for mode in ("none", "full"):
        if CUDA:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        run = _wide_run(corpus, tmp_path, mode)
        assert run.sharded and (run.dtype == torch.bfloat16 or ON_CPU)
        steps = [run.train_step() for _ in range(3 if ON_CPU else 8)]
        step_peak = torch.cuda.max_memory_allocated() if CUDA else 0
        peak, source = run.peak_flops()
        tokens_per_s = statistics.median(s["tokens_per_s"] for s in steps[2:])
        model, cfg = run.spec.model_cfg, run.spec.cfg
        layout = Layout(1, "fsdp", cfg.micro_batch, run.spec.seq_len, mode, 2 if CUDA else 4,
                        "cuda" if CUDA else "cpu")
        # what a step adds on top of the resident shards: activations and FSDP's gathered weights and gradients
        planned = activations(model, layout)["peak"] + states(model, layout)["fsdp_buffers"]
        act = _activation_peak(run) if CUDA else planned
        measured[mode] = {"losses": [round(s["loss"], 4) for s in steps],
                          "activations": act - states(model, layout)["fsdp_buffers"]}
        record(f"pretrain_7b_width_{mode}", layers=model.n_layer, params=run.params["total"],
               seq_len=run.spec.seq_len, micro_batch=cfg.micro_batch, tokens_per_s=tokens_per_s,
               mfu=run.flops_per_token * tokens_per_s / peak, peak_flops=peak, peak_source=source,
               matmul_utilisation=run.matmul_flops_per_token * tokens_per_s / peak,
               step_peak_memory_gib=step_peak / 2 ** 30, planned_total_gib=breakdown(model, layout)["total"] / 2 ** 30,
               step_working_gib=act / 2 ** 30, planned_working_gib=planned / 2 ** 30, working_ratio=act / planned,
               losses=measured[mode]["losses"])
        assert steps[-1]["loss"] < steps[0]["loss"] and 0 < run.flops_per_token * tokens_per_s / peak < 1
        assert "datasheet" in source or ON_CPU
        assert 0.85 < act / planned < 1.15
        del run
    assert measured["full"]["activations"] < 0.5 * measured["none"]["activations"] or ON_CPU
    assert measured["full"]["losses"][:3] == pytest.approx(measured["none"]["losses"][:3], abs=2e-2)


@pytest.fixture(scope="module")
def chat_base(tmp_path_factory) -> Path:
    from tests.components.align.fixtures import make_base_model

    return make_base_model(tmp_path_factory.mktemp("chat-base")) / "hf"


def _align_cfg():
    from components.config import AlignConfig

    return AlignConfig(use_gpu=CUDA, bf16=CUDA, gradient_checkpointing=True, batch_size=16, max_length=128,
                       sft_epochs=2, dpo_epochs=1, sft_lr=3e-3, dpo_lr=1e-3, num_workers=1, warmup_ratio=0)


def _train(trainer, name: str) -> dict:
    started = time.perf_counter()
    output = trainer.train()
    seconds = time.perf_counter() - started
    device = next(trainer.model.parameters()).device.type
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    record(name, steps=trainer.state.global_step, seconds=seconds, device=device, train_loss=output.training_loss,
           first_loss=losses[0], last_loss=losses[-1])
    assert device == ("cuda" if CUDA else "cpu") and trainer.state.global_step > 0
    return {"losses": losses, "output": output}


def test_sft_then_dpo_steps_in_bf16_on_the_gpu(chat_base, tmp_path):
    from datasets import Dataset

    from components.align import dpo, sft
    from components.align.chat import load_tokenizer
    from components.align.prepare import training_records
    from components.align.runner import load_model
    from tests.components.align.fixtures import dpo_records, sft_records

    cfg, tok = _align_cfg(), load_tokenizer(chat_base)
    conversations = [{"messages": [{"role": "user", "content": r.get("instruction") or r["conversations"][0]["value"]},
                                   {"role": "assistant", "content": r.get("output") or r["conversations"][1]["value"]}]}
                     for r in sft_records()]
    trainer = sft.build_trainer(cfg, load_model(str(chat_base), cfg, tok), tok, Dataset.from_list(conversations),
                                None, str(tmp_path / "sft"))
    sft_run = _train(trainer, "sft_steps")
    assert sft_run["losses"][-1] < sft_run["losses"][0]
    trainer.save_model(str(tmp_path / "sft-model"))
    tok.save_pretrained(str(tmp_path / "sft-model"))
    pairs = [{"prompt": [{"role": "user", "content": r["prompt"]}],
              "chosen": [{"role": "assistant", "content": r["chosen"]}],
              "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in dpo_records()]
    policy, ref = (load_model(str(tmp_path / "sft-model"), cfg, tok) for _ in range(2))
    trainer = dpo.build_trainer(cfg, policy, ref, tok, Dataset.from_list(training_records(pairs)), None,
                                str(tmp_path / "dpo"))
    dpo_run = _train(trainer, "dpo_steps")
    assert all(map(torch.isfinite, torch.tensor(dpo_run["losses"])))


def test_the_demo_engine_batches_concurrent_replies_on_the_gpu(tmp_path):
    from components.evaluate.toy import toy_model
    from components.serving.engine import Engine
    from components.serving.refs import _resolve_dir, load
    from tests.components.serving.test_engine import TEXTS, collect, concurrently

    served = load(_resolve_dir(str(toy_model(tmp_path / "m", chat=True, n_layer=4, d_model=256, seed=3)), None),
                  dtype="float32")
    assert served.model.device.type == ("cuda" if CUDA else "cpu")
    ids = [served.tokenizer(t)["input_ids"] for t in TEXTS]
    tokens = 48
    started = time.perf_counter()
    alone = [collect(Engine(served), i, max_new_tokens=tokens)[0] for i in ids]
    one_rate = len(ids) * tokens / (time.perf_counter() - started)
    sessions = 32
    engine = Engine(served, max_batch=sessions)
    started = time.perf_counter()
    results = concurrently(engine, [(ids[k % len(ids)], {"max_new_tokens": tokens}) for k in range(sessions)],
                           stagger_s=0.002)
    batch_rate = sessions * tokens / (time.perf_counter() - started)
    same = sum(text == alone[k % len(ids)] for k, (text, _) in enumerate(results)) / sessions
    record("demo_engine_batching", sessions=sessions, tokens_per_reply=tokens, one_at_a_time_tokens_per_s=one_rate,
           batched_tokens_per_s=batch_rate, ratio=batch_rate / one_rate, steps=engine.steps,
           identical_to_alone=same)
    assert all(last.completion_tokens == tokens for _, last in results)
    assert engine.steps < sessions * tokens * 0.5 and same >= 0.75
