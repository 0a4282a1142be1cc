"""Alignment throughput: tokens/s of SFT and DPO steps against the pretraining loop, same model, one run.

What it builds (nothing from the home): a sentencepiece tokenizer trained on the alignment sets' own text
(the tokenizer stage's trainer and HF export, so the real chat template), the preset's model (random
weights, `components.model.build_model`) saved as the pretrain stage saves it, and the preset's SFT
examples (alpaca_en + alpaca_zh) and DPO pairs (dpo_en + dpo_zh), prepared by `components.align.prepare`
with the preset's length limits. Then, in rounds (pretrain, SFT, DPO, pretrain, ...) after warm-up:
- pretraining: `components.pretrain.loop.Run.train_step` (the stage's loop, precision "auto") at
  batch_size × max_length tokens per step;
- SFT and DPO: the stages' own trainers (`sft.build_trainer`, `dpo.build_trainer`, the preset's align
  config, loaded by the stages' `load_model`), each `train()` running `--steps` + 1 optimizer steps; the
  first step of each call is warm-up, the rest are timed end to end (data, forward, backward, optimizer,
  logging).
Every loop runs with the same torch threads (`--threads`, default torch's): a per-token comparison on
one machine. (The stage's worker takes `cpus_per_worker` threads, by default the cluster's share as pretraining
does; the JSON shows both.)
Tokens are the definition's (shared/BENCHMARKS.md): prompt and answer tokens of every sequence in the
batch, chosen and rejected for DPO; padding does not count. Where DPO computes the reference log-probs
once before training, that pass's time is spread over the tokens of `dpo_epochs` epochs and counted in
the headline (`dpo_amortised`).

Prints one JSON object and a table; `--out DIR` writes DIR/align_throughput.json; `--quick` is a short
run. The machine may be shared: the ratios (SFT / pretrain, DPO / pretrain) are the headline.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import emit, summary  # noqa: E402
from benchmarks.pretrain_throughput import machine, ours, write_pack  # noqa: E402
from components.presets import preset  # noqa: E402

NAME = "align_throughput"


def build_artifacts(root: Path, cfg) -> Path:
    """A tokenizer trained on the alignment text and the preset's model with random weights, in root/hf."""
    from components.align.data import load
    from components.model import build_model
    from components.tokenizer.hf import export
    from components.tokenizer.train import train

    texts = [m["content"] for name, kind in (("alpaca_en", "sft"), ("alpaca_zh", "sft"), ("dpo_en", "dpo"),
                                              ("dpo_zh", "dpo")) for r in load(name, kind).records
             for m in r.get("messages", []) + r.get("prompt", []) + r.get("chosen", [])]
    train(texts, cfg.model.vocab_size, 0.9995, root / "spm.model")
    tok = export(root / "spm.model", root / "hf")
    lm = build_model(cfg.model, seed=0, bos_id=tok.bos_token_id, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id)
    lm.save_pretrained(root / "hf")
    return root / "hf"


def datasets(cfg, tok, root: Path) -> dict:
    from datasets import Dataset

    from components.align.prepare import prepare, training_records

    a = cfg.align
    common = dict(max_length=a.max_length, heldout_fraction=a.heldout_fraction, seed=a.seed, index=None)
    sft = prepare(["alpaca_en", "alpaca_zh"], "sft", tok, cap=a.max_sft_examples, quarantine=root / "q_sft.jsonl",
                  max_answer_tokens=a.max_answer_tokens, **common)
    dpo = prepare(["dpo_en", "dpo_zh"], "dpo", tok, cap=a.max_dpo_pairs, quarantine=root / "q_dpo.jsonl", **common)
    return {"sft": Dataset.from_list(training_records(sft.train)), "dpo": Dataset.from_list(training_records(dpo.train))}


class Meter:
    """Counts the tokens of each training step's batch (padding excluded) and when each step ends."""

    def __init__(self, trainer):
        from transformers import TrainerCallback

        self.tokens: list[int] = []
        self.ends: list[float] = []
        meter, step = self, trainer.training_step

        def counted(model, inputs, *args, **kwargs):
            meter.tokens.append(real_tokens(inputs))
            return step(model, inputs, *args, **kwargs)

        class _Clock(TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                meter.ends.append(time.perf_counter())

        trainer.training_step = counted
        trainer.add_callback(_Clock())

    def rate(self) -> float:
        """Tokens/s over the steps after the first (its end is the clock's start)."""
        assert len(self.ends) == len(self.tokens) >= 2, "one training_step per optimizer step (grad_accum 1)"
        return sum(self.tokens[1:]) / (self.ends[-1] - self.ends[0])


def real_tokens(inputs: dict) -> int:
    """Tokens of the batch that are not padding (padding-free batches carry position_ids, no mask)."""
    if "attention_mask" in inputs:
        return int(inputs["attention_mask"].sum())
    return int(inputs["position_ids"].shape[-1])


@contextmanager
def timed_precompute(into: list[float]):
    """Time TRL's one-off reference log-prob pass (DPOTrainer._precompute_ref_logps) while trainers are built."""
    from trl import DPOTrainer

    original = DPOTrainer._precompute_ref_logps

    def wrapper(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            into.append(time.perf_counter() - started)

    DPOTrainer._precompute_ref_logps = wrapper
    try:
        yield
    finally:
        DPOTrainer._precompute_ref_logps = original


def trainers(cfg, model_dir: Path, data: dict, scratch: Path) -> dict:
    """The SFT and DPO trainers exactly as the stages build them, with a Meter each."""
    from transformers.trainer_callback import PrinterCallback

    from components.align import dpo, sft
    from components.align.chat import load_tokenizer
    from components.align.runner import load_model

    tok, a, precompute = load_tokenizer(model_dir), cfg.align, []
    built = {"sft": sft.build_trainer(a, load_model(str(model_dir), a, tok), tok, data["sft"], None,
                                      str(scratch / "sft"))}
    started = time.perf_counter()
    with timed_precompute(precompute):
        built["dpo"] = dpo.build_trainer(a, *(load_model(str(model_dir), a, tok) for _ in range(2)), tok,
                                         data["dpo"], None, str(scratch / "dpo"))
    for trainer in built.values():  # as the stages do (components.align.runner.attach)
        trainer.remove_callback(PrinterCallback)
    return {"trainers": built, "precompute_s": sum(precompute), "dpo_build_s": time.perf_counter() - started}


def align_round(trainer, steps: int) -> float:
    meter = Meter(trainer)
    trainer.args.max_steps = steps + 1
    trainer.train()
    trainer.callback_handler.callbacks.pop()  # the Meter's clock; the next round adds its own
    trainer.training_step = type(trainer).training_step.__get__(trainer)
    return meter.rate()


def pretrain_round(run, steps: int) -> float:
    run.train_step()  # warm-up, as the first step of an alignment round
    started = time.perf_counter()
    for _ in range(steps):
        run.train_step()
    return steps * run.spec.cfg.batch_tokens / (time.perf_counter() - started)


def measure(args, cfg, root: Path) -> dict:
    from components.align.chat import load_tokenizer

    model_dir = build_artifacts(root, cfg)
    data = datasets(cfg, load_tokenizer(model_dir), root)
    built = trainers(cfg, model_dir, data, root)
    write_pack(root / "pack", cfg.model.vocab_size, cfg.pack.seq_len,
               cfg.align.batch_size * cfg.pack.seq_len * (args.repeats * (args.steps + 1) + 2) + 1)
    run = ours(root / "pack", argparse.Namespace(preset=args.preset, batch=cfg.align.batch_size, compile="off",
                                                  precision="auto"), torch.device("cpu"))
    rates: dict[str, list[float]] = {"pretrain": [], "sft": [], "dpo": []}
    for _ in range(args.repeats):
        rates["pretrain"].append(pretrain_round(run, args.steps))
        for stage in ("sft", "dpo"):
            rates[stage].append(align_round(built["trainers"][stage], args.steps))
    dpo_tokens = sum(real_tokens(b) for b in built["trainers"]["dpo"].get_train_dataloader())
    return {"rates": rates, "precompute_s": built["precompute_s"], "dpo_build_s": built["dpo_build_s"],
            "dpo_epoch_tokens": dpo_tokens, "threads": torch.get_num_threads(),
            "pretrain_dtype": str(run.dtype).replace("torch.", ""), "examples": {k: len(v) for k, v in data.items()}}


def report(args, cfg, m: dict) -> tuple[dict, list[list]]:
    med = {k: statistics.median(v) for k, v in m["rates"].items()}
    # the one-off reference pass spread over the epochs it serves: seconds per token add up
    epochs_tokens = m["dpo_epoch_tokens"] * cfg.align.dpo_epochs
    med["dpo_amortised"] = 1 / (1 / med["dpo"] + m["precompute_s"] / epochs_tokens)
    ratios = {f"{k}_over_pretrain": v / med["pretrain"] for k, v in med.items() if k != "pretrain"}
    a = cfg.align
    result = {"benchmark": NAME, "machine": {**machine(torch.device("cpu")), "threads_all_loops": m["threads"],
                                             "stage_worker_cpus": a.cpus_per_worker or "share of cluster"},
              "config": {"preset": args.preset, "steps_per_round": args.steps, "repeats": args.repeats,
                         "batch_size": a.batch_size, "max_length": a.max_length, "packing": a.packing,
                         "pretrain_batch_tokens": a.batch_size * cfg.pack.seq_len,
                         "pretrain_precision": m["pretrain_dtype"], "dpo_epochs": a.dpo_epochs,
                         "examples": m["examples"]},
              "tokens_per_s": {k: summary(v) for k, v in m["rates"].items()}, "medians": med,
              "dpo_reference_precompute_s": m["precompute_s"], "dpo_trainer_build_s": m["dpo_build_s"],
              "dpo_epoch_tokens": m["dpo_epoch_tokens"], "headline": ratios}
    rows = [[k, f"{v:,.0f}", f"{v / med['pretrain']:.2f}x"] for k, v in med.items()]
    return result, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--quick", action="store_true", help="few steps, two rounds")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--steps", type=int, default=None, help="timed optimizer steps per round (default 6, quick 2)")
    parser.add_argument("--repeats", type=int, default=None, help="rounds (default 3, quick 2)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of every loop")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.steps = args.steps or (2 if args.quick else 6)
    args.repeats = args.repeats or (2 if args.quick else 3)
    cfg = preset(args.preset)
    with tempfile.TemporaryDirectory(prefix="align-throughput-") as tmp:
        measured = measure(args, cfg, Path(tmp))
    result, rows = report(args, cfg, measured)
    emit(NAME, result, rows, ["loop", "tokens/s (median)", "vs pretrain"], args.out)


if __name__ == "__main__":
    main()
