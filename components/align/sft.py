"""Supervised fine-tuning stage: TRL SFTTrainer on the project's chat template, inside Ray Train.

Input `model`: an artifact whose `hf/` holds a causal LM and its tokenizer (the pretrain stage's).
Output: `hf/` (the SFT model, tokenizer and chat template; loads with AutoModelForCausalLM /
AutoTokenizer), `data/` (the exact train and held-out conversations), `quarantine/sft.jsonl`,
and `report/` (samples before/after, curves, repetition rate per epoch). The loss covers assistant
tokens only (the template's generation markers, eos included), so the model learns to answer and
to stop; conversations longer than max_length are skipped rather than cut.
"""

from __future__ import annotations

import json
import shutil
from operator import attrgetter
from pathlib import Path

from components.align.chat import generate, load_tokenizer, prompt_of
from components.align.prepare import default_index, prepare, read_jsonl, training_records, write_jsonl
from components.align.report import (
    language,
    log_samples_table,
    mlflow_target,
    plot_curves,
    sample_rows,
    write_samples,
)
from components.align.runner import (
    attach,
    fit,
    load_model,
    report_final,
    train_phases,
    training_args,
    with_master_weights,
    worker_setup,
)
from components.align.timing import Phases
from components.artifacts import StageSpec
from components.config import AlignConfig
from components.sources.benchmarks import fingerprint

DPO_ONLY = {"dpo_datasets", "dpo_epochs", "dpo_lr", "dpo_beta", "max_dpo_pairs", "dpo_precompute_ref"}
HELDOUT_SAMPLES_PER_LANG = 8  # held-out prompts added to the configured sample prompts, per language: the
# gate's chat rates (language match, stop rate) come from these replies, so 4 + 16 of them, not 4 + 4


def model_dir(artifact: Path) -> Path:
    """The HF model directory inside an input artifact."""
    path = Path(artifact).resolve() / "hf"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} holds no HF model (config.json); the input must be a pretrain or sft "
                                "artifact with an hf/ folder")
    return path


def balanced(prompts: list[list[dict]], n: int) -> list[list[dict]]:
    """Up to n distinct prompts, alternating Chinese and English ones while both last (preference sets repeat a
    prompt with other replies: each counts once)."""
    by_lang: dict[str, list] = {"zh": [], "en": []}
    for p in {json.dumps(p, ensure_ascii=False, sort_keys=True): p for p in prompts}.values():
        by_lang[language(p[-1]["content"])].append(p)
    mixed = [p for pair in zip(by_lang["en"], by_lang["zh"], strict=False) for p in pair]
    rest = by_lang["en"][len(mixed) // 2:] + by_lang["zh"][len(mixed) // 2:]
    return (mixed + rest)[:n]


def build_trainer(cfg: AlignConfig, model, tokenizer, train, heldout, output_dir: str):
    """TRL's SFTTrainer (assistant-only loss) for `cfg` with the project's fused loss head, on padding-free
    batches: a step's conversations are concatenated into one row (no padding computed; attention stays
    within each conversation), the same examples per step as padded batches. Used by the worker and tests."""
    from trl import SFTConfig

    from components.align.fused import FusedSFTTrainer

    base = training_args(cfg, output_dir, len(train), cfg.sft_epochs, evaluate=heldout is not None)
    # without packing TRL refuses max_length on padding-free batches: prepare() has already skipped every
    # conversation longer than cfg.max_length, so there is nothing to cut
    args = SFTConfig(**base, learning_rate=cfg.sft_lr, max_length=cfg.max_length if cfg.packing else None,
                     packing=cfg.packing, packing_strategy="bfd", padding_free=True, assistant_only_loss=True)
    trainer = FusedSFTTrainer(model=model, args=args, train_dataset=train, eval_dataset=heldout,
                              processing_class=tokenizer)
    return with_master_weights(trainer)


def worker(config: dict) -> None:
    """One Ray Train worker: build the SFT trainer here, train, report the final model from rank 0."""
    import ray.train
    from datasets import Dataset

    from components.align.callbacks import MlflowLive, RepetitionMonitor

    phases = Phases("sft worker")
    with phases("load"):
        cfg, scratch = worker_setup(config)
        tok = load_tokenizer(config["model_dir"])
        model = load_model(config["model_dir"], cfg, tok)
        train, heldout = (Dataset.from_list(training_records(read_jsonl(config[k]))) for k in ("train", "heldout"))
    rank0 = ray.train.get_context().get_world_rank() == 0
    with phases("samples_before"):
        before = generate(model, tok, config["sample_prompts"], cfg.gen_max_new_tokens) if rank0 else []
    live = MlflowLive(config["run_id"], config["tracking_uri"], "sft")
    monitor = RepetitionMonitor(tok, config["monitor_prompts"], cfg.gen_max_new_tokens, live)
    with phases("build_trainer"):
        trainer = attach(build_trainer(cfg, model, tok, train, heldout, scratch), monitor, live,
                         progress=config.get("progress"), stage="sft")
    with phases("train"):
        output = trainer.train()
    train_phases(phases, trainer, monitor.seconds)
    with phases("samples_after"):
        after = generate(trainer.model, tok, config["sample_prompts"], cfg.gen_max_new_tokens) if rank0 else []
    results = {"before": before, "after": after, "repetition": monitor.history,
               "log_history": trainer.state.log_history, "train_loss": output.training_loss,
               "steps": trainer.state.global_step, "epochs": trainer.state.epoch}
    report_final(trainer, tok, results, {"train_loss": output.training_loss}, phases,
                 local=not cfg.num_workers)
    shutil.rmtree(scratch, ignore_errors=True)


def work(cfg: AlignConfig, inputs: dict[str, Path], out_dir: Path) -> dict:
    """Prepare the SFT data, train on Ray Train, write hf/ and report/; return the counts."""
    out_dir, phases = Path(out_dir).resolve(), Phases("sft")
    base = model_dir(inputs["model"])
    with phases("prepare_data"):
        data = _prepare(cfg, load_tokenizer(base), out_dir)
    held_prompts = [prompt_of(r["messages"]) for r in data.heldout]
    run_id, uri = mlflow_target()
    config = {"stage": "sft", "cfg": cfg.model_dump(), "model_dir": str(base), "run_id": run_id, "tracking_uri": uri,
              "train": str(write_jsonl(data.train, out_dir / "data" / "train.jsonl")),
              "heldout": str(write_jsonl(data.heldout, out_dir / "data" / "heldout.jsonl")),
              "sample_prompts": list(cfg.sample_prompts) + balanced(held_prompts, 2 * HELDOUT_SAMPLES_PER_LANG),
              "monitor_prompts": balanced(held_prompts, cfg.monitor_prompts)}
    results = fit(worker, config, cfg, f"sft-{out_dir.name}", out_dir, phases)
    with phases("report"):
        counts = _report(results, data.counts, out_dir)
    return {**counts, "seconds": {**phases.seconds, "worker": results["seconds"]}}


def _prepare(cfg: AlignConfig, tok, out_dir: Path):
    return prepare(cfg.sft_datasets, "sft", tok, max_length=cfg.max_length, cap=cfg.max_sft_examples,
                   heldout_fraction=cfg.heldout_fraction, seed=cfg.seed,
                   quarantine=out_dir / "quarantine" / "sft.jsonl",
                   index=default_index() if cfg.decontaminate else None, max_answer_tokens=cfg.max_answer_tokens)


def _report(results: dict, data_counts: dict, out_dir: Path) -> dict:
    report = out_dir / "report"
    rows = sample_rows(results["before"], results["after"])
    write_samples(rows, report, "SFT", "base model", "SFT model")
    reps = results["repetition"]
    (report / "repetition.json").write_text(json.dumps(reps, indent=2))
    plot_curves(results["log_history"], {"loss": ["loss", "eval_loss"], "held-out replies": [
        "repetition_rate", "eos_rate"], "learning rate": ["learning_rate"]}, report / "curves.png", "SFT")
    evals = [h["eval_loss"] for h in results["log_history"] if "eval_loss" in h]
    counts = {**data_counts, "examples": data_counts["train"], "train_loss": results["train_loss"],
              "eval_loss": evals[-1] if evals else None, "epochs": results["epochs"], "steps": results["steps"],
              "repetition_rate": reps[-1]["repetition_rate"] if reps else None,
              "repetition_rate_before": reps[0]["repetition_rate"] if reps else None,
              "eos_rate": reps[-1]["eos_rate"] if reps else None,
              "repetition_by_epoch": {str(r["epoch"]): r["repetition_rate"] for r in reps},
              "samples_stopped_at_eos": sum(r["after_stopped_at_eos"] for r in rows)}
    log_samples_table("sft", rows)
    return counts


def key_config(cfg: AlignConfig) -> dict:
    return {**cfg.model_dump(exclude=DPO_ONLY), "evalsets": fingerprint()}


# v3: gsm8k_train optional; the key covers the eval sets available (decontamination, optional sets)
# v4: `precision` (bf16 weights with fp32 masters where native), per-conversation attention, 4 + 16 sample replies
STAGE = StageSpec("sft", 4, work, key_config, config=AlignConfig, section=attrgetter("align"))
