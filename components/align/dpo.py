"""DPO stage: TRL DPOTrainer from the SFT model, with the SFT model as the frozen reference, on Ray Train.

Input `model`: the sft artifact. Output: `hf/` (the aligned model, tokenizer and chat template),
`data/`, `quarantine/dpo.jsonl` and `report/`: samples before/after, curves of the DPO loss,
implicit reward margins and accuracies, and `preference.json`, the held-out preference accuracy
of the SFT model against the DPO model. That accuracy is measured, not assumed: on held-out pairs,
the share where the model gives the chosen reply a higher summed log-probability than the rejected
one (the same quantity for both models, see `chat.preference`). TRL's own held-out metrics (implicit
rewards relative to the SFT reference) are reported beside it.
"""

from __future__ import annotations

import json
import shutil
from operator import attrgetter
from pathlib import Path

from components.align.chat import generate, load_tokenizer, preference
from components.align.prepare import default_index, prepare, read_jsonl, training_records, write_jsonl
from components.align.report import log_samples_table, mlflow_target, plot_curves, sample_rows, write_samples
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
from components.align.sft import HELDOUT_SAMPLES_PER_LANG, balanced, model_dir
from components.align.timing import Phases
from components.artifacts import StageSpec
from components.config import AlignConfig
from components.sources.benchmarks import fingerprint

SFT_ONLY = {"sft_datasets", "sft_epochs", "sft_lr", "max_sft_examples", "max_answer_tokens", "packing",
            "monitor_prompts"}
MAX_PREFERENCE_PAIRS = 512  # held-out pairs scored one by one on rank 0; enough for a ±2% accuracy


def build_trainer(cfg: AlignConfig, model, ref_model, tokenizer, train, heldout, output_dir: str):
    """TRL's DPOTrainer for `cfg` with the lean log-prob head (components.align.fused) and an explicit frozen
    reference (the SFT model), whose log-probs are computed once before training when `cfg.dpo_precompute_ref`
    (TRL's `precompute_ref_log_probs`)."""
    from trl import DPOConfig

    from components.align.fused import FusedDPOTrainer

    base = training_args(cfg, output_dir, len(train), cfg.dpo_epochs, evaluate=heldout is not None)
    # TRL's rank 0 writes the cached log-probs next to the dataset, which for an in-memory dataset is a
    # temporary folder of its own process: the other ranks would not find them, so one worker only
    precompute = cfg.dpo_precompute_ref and cfg.num_workers <= 1
    args = DPOConfig(**base, learning_rate=cfg.dpo_lr, beta=cfg.dpo_beta, max_length=cfg.max_length,
                     precompute_ref_log_probs=precompute)
    trainer = FusedDPOTrainer(model=model, ref_model=ref_model, args=args, train_dataset=train, eval_dataset=heldout,
                              processing_class=tokenizer)
    return with_master_weights(trainer)


def final_eval(trainer) -> dict:
    """TRL's held-out metrics of the trained model: the epoch-end evaluation's when it ran at the last step
    (one epoch, the paper's DPO, or a whole number of them), else evaluated now (on every rank)."""
    last = next((h for h in reversed(trainer.state.log_history) if "eval_loss" in h), None)
    if last is not None and last.get("step") == trainer.state.global_step:
        return {k: v for k, v in last.items() if k.startswith("eval_") or k == "epoch"}
    return trainer.evaluate()


def worker(config: dict) -> None:
    """One Ray Train worker: score the SFT model, train DPO, score the DPO model, report from rank 0."""
    import ray.train
    from datasets import Dataset

    from components.align.callbacks import MlflowLive

    phases = Phases("dpo worker")
    with phases("load"):
        cfg, scratch = worker_setup(config)
        tok = load_tokenizer(config["model_dir"])
        model, ref = (load_model(config["model_dir"], cfg, tok) for _ in range(2))
        train, held = (read_jsonl(config[k]) for k in ("train", "heldout"))
    rank0 = ray.train.get_context().get_world_rank() == 0
    scored = held[:MAX_PREFERENCE_PAIRS]
    with phases("preference_sft"):
        pref_sft = preference(model, tok, scored, cfg.max_length) if rank0 else {}
    with phases("samples_before"):
        before = generate(model, tok, config["sample_prompts"], cfg.gen_max_new_tokens) if rank0 else []
    live = MlflowLive(config["run_id"], config["tracking_uri"], "dpo")
    with phases("build_trainer"):
        trainer = attach(build_trainer(cfg, model, ref, tok, *(Dataset.from_list(training_records(r)) for r in
                                                              (train, held)), scratch), live,
                         progress=config.get("progress"), stage="dpo")
    with phases("train"):
        output = trainer.train()
    train_phases(phases, trainer)
    with phases("evaluate"):
        heldout_eval = final_eval(trainer)  # implicit rewards against the SFT reference
    with phases("preference_dpo"):
        pref_dpo = preference(trainer.model, tok, scored, cfg.max_length) if rank0 else {}
    with phases("samples_after"):
        after = generate(trainer.model, tok, config["sample_prompts"], cfg.gen_max_new_tokens) if rank0 else []
    if rank0:
        live.log({"heldout/reward_accuracy_sft": pref_sft["accuracy"], "heldout/reward_accuracy_dpo":
                  pref_dpo["accuracy"], "heldout/margin_sft": pref_sft["margin"],
                  "heldout/margin_dpo": pref_dpo["margin"]}, trainer.state.global_step)
    results = {"before": before, "after": after, "preference_sft": pref_sft, "preference_dpo": pref_dpo,
               "heldout_eval": heldout_eval, "log_history": trainer.state.log_history,
               "train_loss": output.training_loss, "steps": trainer.state.global_step, "epochs": trainer.state.epoch}
    report_final(trainer, tok, results, {"train_loss": output.training_loss}, phases,
                 local=not cfg.num_workers)
    shutil.rmtree(scratch, ignore_errors=True)


def work(cfg: AlignConfig, inputs: dict[str, Path], out_dir: Path) -> dict:
    """Prepare the preference pairs, run DPO on Ray Train from the SFT model, write hf/ and report/."""
    out_dir, phases = Path(out_dir).resolve(), Phases("dpo")
    sft_model = model_dir(inputs["model"])
    with phases("prepare_data"):
        data = prepare(cfg.dpo_datasets, "dpo", load_tokenizer(sft_model), max_length=cfg.max_length,
                       cap=cfg.max_dpo_pairs, heldout_fraction=cfg.heldout_fraction, seed=cfg.seed,
                       quarantine=out_dir / "quarantine" / "dpo.jsonl",
                       index=default_index() if cfg.decontaminate else None)
    run_id, uri = mlflow_target()
    config = {"stage": "dpo", "cfg": cfg.model_dump(), "model_dir": str(sft_model), "run_id": run_id,
              "tracking_uri": uri,
              "train": str(write_jsonl(data.train, out_dir / "data" / "train.jsonl")),
              "heldout": str(write_jsonl(data.heldout, out_dir / "data" / "heldout.jsonl")),
              "sample_prompts": list(cfg.sample_prompts) + balanced([r["prompt"] for r in data.heldout],
                                                                    2 * HELDOUT_SAMPLES_PER_LANG)}
    results = fit(worker, config, cfg, f"dpo-{out_dir.name}", out_dir, phases)
    with phases("report"):
        counts = _report(results, data.counts, out_dir)
    return {**counts, "seconds": {**phases.seconds, "worker": results["seconds"]}}


def _report(results: dict, data_counts: dict, out_dir: Path) -> dict:
    report = out_dir / "report"
    rows = sample_rows(results["before"], results["after"])
    write_samples(rows, report, "DPO", "SFT model", "DPO model")
    sft, dpo, held = results["preference_sft"], results["preference_dpo"], results["heldout_eval"]
    (report / "preference.json").write_text(json.dumps(
        {"heldout_pairs": sft["pairs"], "sft": sft, "dpo": dpo, "trl_heldout_eval": held}, indent=2))
    plot_curves(results["log_history"], {"loss": ["loss", "eval_loss"],
                                         "reward accuracy": ["rewards/accuracies", "eval_rewards/accuracies"],
                                         "rewards": ["rewards/chosen", "rewards/rejected", "rewards/margins"]},
                report / "curves.png", "DPO")
    train_logs = [h for h in results["log_history"] if "rewards/margins" in h]
    counts = {**data_counts, "pairs": data_counts["train"], "train_loss": results["train_loss"],
              "epochs": results["epochs"], "steps": results["steps"],
              "reward_accuracy_sft": sft["accuracy"], "reward_accuracy_dpo": dpo["accuracy"],
              "margin_sft": sft["margin"], "margin_dpo": dpo["margin"], "heldout_pairs": sft["pairs"],
              "reward_accuracy_per_token_sft": sft["accuracy_per_token"],
              "reward_accuracy_per_token_dpo": dpo["accuracy_per_token"],
              "heldout_implicit_reward_accuracy": held.get("eval_rewards/accuracies"),
              "heldout_implicit_reward_margin": held.get("eval_rewards/margins"),
              "train_reward_margin": train_logs[-1]["rewards/margins"] if train_logs else None,
              "train_reward_accuracy": train_logs[-1]["rewards/accuracies"] if train_logs else None,
              "samples_stopped_at_eos": sum(r["after_stopped_at_eos"] for r in rows),
              "reward_accuracy_by_dataset": {name: {"sft": sft["by_dataset"][name]["accuracy"], "dpo": d["accuracy"],
                                                    "pairs": d["pairs"]}
                                             for name, d in dpo.get("by_dataset", {}).items()}}
    log_samples_table("dpo", rows)
    return counts


def key_config(cfg: AlignConfig) -> dict:
    return {**cfg.model_dump(exclude=SFT_ONLY), "evalsets": fingerprint()}


# v3: the key covers the eval sets available to decontamination
# v4: `precision` (bf16 weights with fp32 masters where native), 4 + 16 distinct sample replies
STAGE = StageSpec("dpo", 4, work, key_config, config=AlignConfig, section=attrgetter("align"))
