"""dsllm's training step (fused loss head, master-weight AdamW, clipping, schedule) follows the
textbook loop (HF logits + cross-entropy, torch AdamW, clip_grad_norm_) step by step."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from components.model import build_model
from components.pretrain.loop import Run
from components.pretrain.trainer import plan
from tests.components.pretrain.conftest import tiny_model, tiny_train

pytestmark = pytest.mark.unit


def _reference_losses(run: Run, steps: int, autocast: bool) -> list[float]:
    cfg, spec = run.spec.cfg, run.spec
    lm = build_model(spec.model_cfg, seed=cfg.seed, **spec.ids)
    params = list(lm.named_parameters())
    groups = [{"params": [p for _, p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for _, p in params if p.ndim < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, run.sched.lr_lambdas[0])
    losses = []
    for step in range(steps):
        total = 0.0
        for micro in range(run.accum):
            batch = torch.from_numpy(run.order.batch(step * run.global_seqs + micro * cfg.micro_batch, cfg.micro_batch))
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                logits = lm(input_ids=batch[:, :-1]).logits
            loss = F.cross_entropy(logits.float().flatten(0, 1), batch[:, 1:].flatten()) / run.accum
            loss.backward()
            total += loss.item()
        torch.nn.utils.clip_grad_norm_(lm.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad()
        losses.append(total)
    return losses


@pytest.mark.parametrize(("precision", "tolerance", "compiled"),
                         [("fp32", 1e-4, False), ("bf16", 0.02, False), ("fp32", 1e-4, True)])
def test_losses_follow_the_textbook_loop(inputs, tmp_path, precision, tolerance, compiled):
    """`compiled`: pretrain.compile (torch.compile of each decoder layer, what takes the small model's step
    past 60% of the bf16 peak in benchmarks/pretrain_throughput.py --compile) trains the same."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _compare(inputs, tmp_path, precision, tolerance, compiled)
    finally:
        torch.set_num_threads(threads)


def _compare(inputs, tmp_path, precision, tolerance, compiled=False):
    spec, _ = plan(tiny_model(inputs), tiny_train(precision=precision, compile=compiled), inputs["pack"],
                   inputs["tokenizer"], tmp_path / "ckpt")
    counters = torch._dynamo.utils.counters
    counters.clear()
    run = Run(spec)
    ours = [run.train_step()["loss"] for _ in range(12)]
    assert (counters["stats"]["unique_graphs"] > 0) == compiled  # compiled means compiled, not a silent fallback
    reference = _reference_losses(run, 12, autocast=precision == "bf16")
    assert ours[-1] < ours[0] - 0.5
    assert ours == pytest.approx(reference, rel=tolerance)


def test_compile_without_a_cpp_compiler_trains_eagerly_and_says_why(inputs, tmp_path, monkeypatch, caplog):
    """pretrain.compile on a machine without a C++ compiler (inductor's CPU kernels need one): a warning and
    the eager step, not a crash at the first step."""
    from components.pretrain.runtime import compile_blocker

    assert compile_blocker(torch.device("cpu")) is None  # this machine can (the compiled case above)
    compile_blocker.cache_clear()
    torch._dynamo.reset()
    import torch._inductor.config as inductor

    monkeypatch.setattr(inductor.cpp, "cxx", (None, str(tmp_path / "no-such-c++")))  # the compiler inductor calls
    monkeypatch.setattr(inductor, "force_disable_caches", True)  # no kernel built before
    try:
        assert "torch.compile failed on a probe" in compile_blocker(torch.device("cpu"))
        spec, _ = plan(tiny_model(inputs), tiny_train(compile=True), inputs["pack"], inputs["tokenizer"],
                       tmp_path / "ckpt")
        counters = torch._dynamo.utils.counters
        counters.clear()
        run = Run(spec)
        assert run.train_step()["loss"] > 0
        assert counters["stats"]["unique_graphs"] == 0
        assert "trains eagerly: torch.compile failed" in caplog.text
    finally:
        compile_blocker.cache_clear()
        torch._dynamo.reset()


def test_auto_compiles_long_runs_where_compiling_was_measured_to_pay(monkeypatch):
    """pretrain.compile="auto": GPUs, and CPUs training in native bf16, for runs long enough to repay compiling."""
    from components.pretrain import runtime
    from components.pretrain.runtime import COMPILE_MIN_STEPS, compiles

    cpu, gpu, long = torch.device("cpu"), torch.device("cuda"), 10 * COMPILE_MIN_STEPS
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    assert compiles("auto", cpu, torch.bfloat16, COMPILE_MIN_STEPS)
    assert not compiles("auto", cpu, torch.bfloat16, COMPILE_MIN_STEPS - 1)  # the tiny preset: eager
    assert not compiles("auto", cpu, torch.float32, long)  # precision=fp32 asked for: the gain is not measured
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"avx2"}))
    assert not compiles("auto", cpu, torch.bfloat16, long)  # bf16 emulated
    assert compiles("auto", gpu, torch.bfloat16, COMPILE_MIN_STEPS)
    assert compiles(True, cpu, torch.float32, 1) and not compiles(False, gpu, torch.bfloat16, long)


def test_compile_setting_accepts_auto_and_booleans():
    from pydantic import ValidationError

    from components.config import PretrainConfig

    assert PretrainConfig().compile == "auto"
    assert PretrainConfig.model_validate({"compile": "true"}).compile is True  # as --set pretrain.compile=true gives it
    assert PretrainConfig.model_validate({"compile": False}).compile is False
    with pytest.raises(ValidationError, match="compile"):
        PretrainConfig.model_validate({"compile": "sometimes"})
