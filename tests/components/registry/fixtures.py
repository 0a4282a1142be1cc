"""A complete artifact lineage in a store, small and offline: corpus → data → tokenizer → pack → pretrain →
sft → dpo → evaluate, with manifests shaped like the real stages' (counts copied from a tiny-preset run) and
toy HF models (components.evaluate.toy) in the model artifacts' hf/ folders."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

from components.artifacts import ArtifactStore, StageResult
from components.evaluate.toy import toy_model

# a 1×1 PNG: the report plots only need to exist and be copied
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
MIXTURE = [{"bucket": "code", "tokens_before": 33035, "share_before": 0.0567, "target_share": 0.25, "rate": 4.0,
            "tokens_after": 132140, "share_after": 0.2572},
           {"bucket": "en", "tokens_before": 146346, "share_before": 0.251, "target_share": 0.4, "rate": 1.4447,
            "tokens_after": 187412, "share_after": 0.3648},
           {"bucket": "zh", "tokens_before": 403614, "share_before": 0.6923, "target_share": 0.35, "rate": 0.4583,
            "tokens_after": 194235, "share_after": 0.378}]
PRETRAIN = {"compute": 46707769344, "final_loss": 5.567, "flops_per_token": 786432, "mfu_mean": 0.365,
            "params": 223552, "params_non_embedding": 92480, "six_n1": 589824, "six_n2": 983040, "steps": 29,
            "tokens": 59392, "tokens_per_s": 20733.5, "val_loss": {"code": 5.49, "en": 5.60, "zh": 5.24}}
PRETRAIN_CONFIG = {"model": {"n_layer": 2, "d_model": 64}, "pretrain": {"batch_tokens": 2048, "lr": 0.003,
                                                                    "schedule": "multistep"}, "seq_len": 128}
RESULTS = {"bpb": {"bpb": 8.05, "bpb_en": 6.63, "n": 1524}, "gsm8k": {"exact_match": 0.25, "extracted": 0.5, "n": 4},
           "humaneval": {"pass@1": 0.0, "n": 4, "error": 2}, "mmlu": {"acc": 0.5, "acc_norm": 0.5, "n": 4}}


def _report(out: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = out / "report" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)


def _model(source: Path, out: Path) -> None:
    shutil.copytree(source, out / "hf")


def scorecard(results: dict) -> str:
    rows = "\n".join(f"| {t} | {next(iter(m))} | {m.get('n', '')} | {next(iter(m.values()))} |" for t, m in results.items())
    return f"# Scorecard: `model`\n\n| task | metric | n | this model |\n|---|---|---|---|\n{rows}\n\n## All metrics\n"


def build_lineage(store: ArtifactStore, models: Path, seed: int = 0, chat: Path | None = None, pack=None,
                  pretrain: dict | None = None) -> dict[str, str]:
    """Every stage's artifact; returns stage → URI. `models` caches the two toy models across calls; `chat` is
    another chat model for the sft/dpo artifacts, `pack(out)` writes the pack's files, `pretrain` its counts."""
    base_src, chat_src = models / "base", models / "chat"
    if not base_src.exists():
        toy_model(base_src, chat=False, seed=seed)
        toy_model(chat_src, chat=True, seed=seed + 1)
    chat_src = chat or chat_src
    uris: dict[str, str] = {}
    variant = str(chat) if chat else ""

    def build(stage: str, counts: dict, inputs: dict[str, str], fill=lambda out: None, config=None) -> StageResult:
        config = (config or {"fixture": stage, "seed": seed}) | ({"variant": variant} if variant else {})
        result = store.build(stage, 1, config, inputs, lambda out: (fill(out), counts)[1])
        uris[stage] = result.uri
        return result

    build("corpus", {"chars": {"shakespeare": 149487, "chinese_poetry": 149997}, "docs": {"shakespeare": 19,
                                                                                         "chinese_poetry": 1863}}, {})
    build("data", {"output": {"documents": 1923, "tokens_est": {"code": 132140, "en": 187412, "zh": 194235}},
                   "dedup": {"exact_removed": 86, "near_removed": 4}, "filter": {"min_chars": 477, "alpha_ratio": 10},
                   "decontam": {"ceval": 5, "cmmlu": 1}}, {"corpus": uris["corpus"]},
          lambda out: _report(out, {"mixture_table.json": json.dumps(MIXTURE)}))
    build("tokenizer", {"vocab_size": 512}, {"data": uris["data"]})
    build("pack", {"tokens_per_bucket": {"code": 276616, "en": 417996, "zh": 339015}, "train_tokens": 1033600},
          {"data": uris["data"], "tokenizer": uris["tokenizer"]}, pack or (lambda out: None))
    build("pretrain", pretrain or PRETRAIN, {"pack": uris["pack"], "tokenizer": uris["tokenizer"]},
          lambda out: (_model(base_src, out), _report(out, {"loss.png": PNG, "lr.png": PNG})), PRETRAIN_CONFIG | {"seed": seed})
    build("sft", {"examples": 137, "epochs": 20.0, "steps": 360, "train_loss": 3.31, "eval_loss": 7.39},
          {"model": uris["pretrain"]}, lambda out: (_model(chat_src, out), _report(out, {"curves.png": PNG})))
    build("dpo", {"pairs": 91, "epochs": 2.0, "steps": 24, "train_loss": 0.44, "reward_accuracy_sft": 0.43,
                  "reward_accuracy_dpo": 0.52}, {"model": uris["sft"]},
          lambda out: (_model(chat_src, out), _report(out, {"curves.png": PNG})))
    uris["evaluate"] = evaluation(store, uris, RESULTS)
    return uris


EVAL_CONFIG = {"dtype": "auto", "limit": 4, "max_length": None, "max_new_tokens": 64, "mode": "auto", "n_samples": 1,
               "seed": 0, "temperature": 0.8, "tasks": ["bpb", "gsm8k", "humaneval", "mmlu"]}


def evaluation(store: ArtifactStore, uris: dict[str, str], results: dict, model: str = "dpo",
               samples: dict[str, list[dict]] | None = None, config: dict | None = None) -> str:
    """An evaluate artifact of `uris[model]` with the given results and samples/<task>.jsonl records (distinct
    results → distinct artifact); its config is the harness's (EVAL_CONFIG with `config` over it)."""
    cfg = EVAL_CONFIG | {"tasks": list(results)} | (config or {})

    def fill(out: Path) -> dict:
        _report(out, {"scorecard.md": scorecard(results), "scorecard.png": PNG})
        (out / "samples").mkdir()
        for task, records in (samples or {}).items():
            (out / "samples" / f"{task}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        return results

    return store.build("evaluate", 1, cfg | {"fixture": [results, samples or {}]},
                       {"model": uris[model], "pack": uris["pack"]}, fill).uri


def with_scores(**scores: float) -> dict:
    """RESULTS with some headline metrics changed, e.g. with_scores(gsm8k=0.5, mmlu=0.25)."""
    headline = {"bpb": "bpb", "gsm8k": "exact_match", "humaneval": "pass@1", "mmlu": "acc"}
    return {task: {**metrics, **({headline[task]: scores[task]} if task in scores else {})}
            for task, metrics in RESULTS.items()}
