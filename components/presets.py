"""Named presets and the one way to build a validated `PipelineConfig`.

`load_config(preset, yaml_path, overrides)` starts from a preset, merges a YAML file and then
`--set key.path=value` overrides, and validates everything up front: a bad value raises
`ConfigError` naming the field, the allowed range and the value given.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml
from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, ValidationError

from components.config import (
    AlignConfig,
    DataConfig,
    EvalConfig,
    ModelConfig,
    PackConfig,
    PipelineConfig,
    PretrainConfig,
    RegistryConfig,
    SourcesConfig,
    StudyConfig,
    TokenizerConfig,
)
from components.names import did_you_mean


class ConfigError(ValueError):
    """A configuration a user gave is invalid; the message says which field and why."""


def tiny() -> PipelineConfig:
    """The whole pipeline in a few minutes on 2 cores; the e2e tests use it."""
    return PipelineConfig(
        preset="tiny",
        sources=SourcesConfig(max_chars_per_source=150_000),
        data=DataConfig(),
        tokenizer=TokenizerConfig(vocab_size=1024, sample_chars=400_000),
        pack=PackConfig(seq_len=128, val_fraction=0.05),
        model=ModelConfig(n_layer=2, d_model=64, n_head=4, n_kv_head=2, d_ffn=176, vocab_size=1024,
                          max_seq_len=128),
        pretrain=PretrainConfig(total_tokens=60_000, batch_tokens=2048, micro_batch=8, lr=3e-3,
                                warmup_steps=5, eval_every=10, checkpoint_every=10, cpus_per_worker=1),
        # A 2-layer model barely pretrained learns the template and to stop on short answers (GSM8K's worked
        # solutions do not fit 128 tokens). The demo pairs' own preferences are beyond it (no held-out gain at
        # any setting tried), so DPO learns one it can: reply in the user's language; over a third of the
        # pairs held out, so the gain is measured on 40 of them. Ray Train local mode: starting actors would
        # take most of the time.
        align=AlignConfig(sft_datasets=["alpaca_en", "alpaca_zh"], sft_epochs=6, sft_lr=1e-2, max_answer_tokens=24,
                          dpo_datasets=["dpo_language"], dpo_epochs=3, dpo_lr=1e-3, max_length=128,
                          heldout_fraction=0.35, monitor_prompts=8, gen_max_new_tokens=64, num_workers=0),
        eval=EvalConfig(limit=4, max_new_tokens=64),
        # 4 samples per task: every task comparison is "inconclusive" (< 20 shared items) and never blocks.
        # Better than trivial: the base model's validation bpb below the unigram bar (a tiny run: 4.55 < 4.87).
        # Not the chat model's: SFT at lr 1e-2 on 128-token windows costs its raw-text bpb (5.22 in that run).
        registry=RegistryConfig(chat_bpb_bar=False),
    )


def small() -> PipelineConfig:
    """The default: the whole pipeline in under 45 min on 2 cores, a model that writes recognisable
    English, Chinese and Python."""
    return PipelineConfig(
        preset="small",
        sources=SourcesConfig(max_chars_per_source=6_000_000),
        tokenizer=TokenizerConfig(vocab_size=8000, sample_chars=8_000_000),
        pack=PackConfig(seq_len=256),
        # ~7M parameters, pretrained for 25 minutes (`time_budget_min`) rather than a token count: on 2 cores that is
        # ~3.5M tokens without bf16 matmul (AVX2, fp32, ~2.3k tokens/s; the other stages take ~13 min there) and
        # ~15M with it (AVX512-BF16, ~10k tokens/s), so the run fits 45 min on both and spends most of it learning.
        # At most the pack's one epoch (16.6M tokens).
        model=ModelConfig(n_layer=4, d_model=256, n_head=4, n_kv_head=4, d_ffn=688, vocab_size=8000,
                          max_seq_len=256),
        pretrain=PretrainConfig(total_tokens=16_000_000, time_budget_min=25, batch_tokens=16_384, micro_batch=16,
                                lr=2e-3, warmup_steps=10, eval_every=20, checkpoint_every=40),
        # SFT at ~1.4k tokens/s on the same cores (both threads): 1,600 conversations × 2 epochs ≈ 8 min, so that
        # pretraining keeps over 60% of the run.
        align=AlignConfig(sft_epochs=2, sft_lr=2e-4, max_length=256, max_answer_tokens=160, max_sft_examples=1600,
                          dpo_lr=2e-5, max_dpo_pairs=600, gen_max_new_tokens=96),
        eval=EvalConfig(limit=200),
        # Better than trivial (the default), and a chat model that answers in the prompt's language and stops:
        # over the 16 held-out monitor prompts, more than chance for the language (a model that always answers
        # in one language gets 0.5 on the balanced set) and at least a quarter of replies ending the turn.
        registry=RegistryConfig(thresholds={"chat.language_match": 0.6, "chat.stop_rate": 0.25}),
    )


def _deepseek(layers: int, d: int, heads: int, kv: int, ffn: int, batch_seqs: int, lr: float,
              workers: int, micro: int, sft_epochs: float, sft_lr: float, name: str,
              checkpointing: str = "full") -> PipelineConfig:
    # Architecture, batch, LR and schedule as in DeepSeek LLM (arXiv 2401.02954), Table 2 and §5.1.
    return PipelineConfig(
        preset=name,
        sources=SourcesConfig(),
        tokenizer=TokenizerConfig(vocab_size=102_400, sample_chars=2_000_000_000),
        pack=PackConfig(seq_len=4096, val_fraction=0.001, shard_tokens=500_000_000),
        model=ModelConfig(n_layer=layers, d_model=d, n_head=heads, n_kv_head=kv, d_ffn=ffn,
                          vocab_size=102_400, max_seq_len=4096),
        pretrain=PretrainConfig(total_tokens=2_000_000_000_000, batch_tokens=batch_seqs * 4096,
                                micro_batch=micro, lr=lr, warmup_steps=2000, schedule="multistep",
                                num_workers=workers, use_gpu=True, strategy="fsdp",
                                eval_every=1000, checkpoint_every=1000, activation_checkpointing=checkpointing),
        # SFT epochs and LR per model size (§5.1); DPO one epoch at 5e-6, batch 512 (8 × 4 × 16), warmup + cosine.
        align=AlignConfig(sft_epochs=sft_epochs, sft_lr=sft_lr, dpo_epochs=1, dpo_lr=5e-6, max_length=4096,
                          batch_size=4, grad_accum=16, num_workers=8, use_gpu=True, bf16=True,
                          gradient_checkpointing=True, gen_max_new_tokens=512),
        eval=EvalConfig(tasks=["bpb", "gsm8k", "math", "humaneval", "mbpp", "mmlu", "ceval", "cmmlu",
                               "hellaswag", "arc_easy", "arc_challenge"]),
    )


def deepseek_7b() -> PipelineConfig:
    """DeepSeek LLM 7B: 30 layers, d 4096, 32 heads, batch 2304 × 4096, LR 4.2e-4, 2T tokens."""
    # selective checkpointing (the MLPs) leaves micro-batch 4 room on 80 GB devices (`dsllm plan`); full would
    # recompute the attention too for memory it does not need
    return _deepseek(30, 4096, 32, 32, 11008, 2304, 4.2e-4, workers=64, micro=4,
                     sft_epochs=4, sft_lr=1e-5, name="deepseek_7b", checkpointing="selective")


def deepseek_67b() -> PipelineConfig:
    """DeepSeek LLM 67B: 95 layers, d 8192, 64 heads (8 KV), batch 4608 × 4096, LR 3.2e-4, 2T tokens."""
    # without full checkpointing it does not fit 80 GB devices even at micro-batch 1 (`dsllm plan`)
    return _deepseek(95, 8192, 64, 8, 22016, 4608, 3.2e-4, workers=256, micro=2,
                     sft_epochs=2, sft_lr=5e-6, name="deepseek_67b", checkpointing="full")


def tiny_study() -> StudyConfig:
    """A scaling study of a few dozen seconds of training (the tests): 8 grid runs, 2 IsoFLOP profiles of
    4 shapes and a validation run, on the tiny preset's pack."""
    return StudyConfig(budget_min=1.5e9, budget_max=6e9, n_budgets=3, hp_budgets=2, hp_skip_smallest=0,
                       iso_budgets=2, hp_n_layer=1, hp_d_model=32, batch_tokens=[512, 1024],
                       learning_rates=[3e-3, 3e-2], iso_shapes=4, iso_span=8, iso_tokens_per_m=0.5,
                       min_steps=8, val_batches=8, bootstrap=200, validate_factor=2, micro_batch=2,
                       bracket_rounds=1, fit_unbracketed=True)  # too small a grid to bracket


STUDIES: dict[str, Callable[[], StudyConfig]] = {"default": StudyConfig, "tiny": tiny_study}
"""Named scaling studies (the `scaling` section of a config): `dsllm scaling run --study tiny`."""
STUDY_DATA: dict[str, list[str]] = {"tiny": ["sources.max_chars_per_source=1500000", "pack.seq_len=32"]}
"""The default study's data for a preset: for tiny, ten times its text (about 10M tokens, so the largest
trials read each token about once) packed into 32-token sequences. At 1e10-1e11 FLOPs the 2×64 grid model
sees 13k-130k tokens, and with 128-token sequences the best batch sat on the floor of one sequence (128
tokens) at 1e10 and 1e11; 32-token sequences let the grid try 32 and 64 tokens, so the optimum can be
bracketed from below."""

PRESETS: dict[str, Callable[[], PipelineConfig]] = {
    "tiny": tiny, "small": small, "deepseek_7b": deepseek_7b, "deepseek_67b": deepseek_67b,
}
DEFAULT_PRESET = "small"


def preset(name: str) -> PipelineConfig:
    """The preset called `name`, with a did-you-mean error for unknown names."""
    if name not in PRESETS:
        hint = did_you_mean(name, PRESETS)
        raise ConfigError(f"Unknown preset {name!r}.{hint} Known presets: {', '.join(PRESETS)}.")
    return PRESETS[name]()


class _Loader(yaml.SafeLoader):
    """YAML with YAML 1.2 floats: `1e6` and `3e-4` are numbers (PyYAML's 1.1 rules read them as strings), so an
    integer field accepts `1e6` and pydantic rejects only non-integral values like `1.5`."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(
    r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))


def read_yaml(text: str, where: str) -> Any:
    """Parse YAML text; a syntax error names `where`, the line and the column."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).split("\n", 1)[0]
        raise ConfigError(f"{where}: invalid YAML{at}: {problem}") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """`pretrain.lr=3e-4` → (["pretrain", "lr"], 0.0003); the value is read as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"Override {text!r} must look like section.field=value, e.g. pretrain.lr=3e-4")
    return key.strip().split("."), read_yaml(raw, f"override {text!r}") if raw.strip() else None


def _set_path(tree: dict, path: list[str], value: Any) -> None:
    node = tree
    for i, part in enumerate(path[:-1]):
        child = node.get(part)
        if not isinstance(child, dict):
            raise ConfigError(f"Unknown config field {'.'.join(path[:i + 1])!r} in override {'.'.join(path)}")
        node = child
    if path[-1] not in node:
        close = difflib.get_close_matches(path[-1], list(node), n=1)
        hint = f" Did you mean {'.'.join([*path[:-1], close[0]])!r}?" if close else ""
        raise ConfigError(f"Unknown config field {'.'.join(path)!r}.{hint}")
    node[path[-1]] = value


def _merge(tree: dict, from_yaml: dict) -> None:
    """Sections merge field by field; a field's value (a dict-valued field too) is replaced whole."""
    for section, fields in from_yaml.items():
        if isinstance(fields, dict) and isinstance(tree.get(section), dict):
            for field, value in fields.items():
                _set_path(tree, [section, field], value)
        else:
            _set_path(tree, [section], fields)


def load_config(preset_name: str | None = None, yaml_path: str | Path | None = None,
                overrides: Iterable[str] = ()) -> PipelineConfig:
    """Preset, then YAML file, then `--set` overrides; validated once at the end."""
    from_yaml: dict = {}
    if yaml_path is not None:
        from_yaml = _read_config_file(Path(yaml_path))
        if not isinstance(from_yaml, dict):
            raise ConfigError(f"Config file {yaml_path} must hold a mapping of sections, not {type(from_yaml).__name__}")
    name = preset_name or from_yaml.get("preset") or DEFAULT_PRESET
    tree = preset(name).model_dump()
    _merge(tree, {k: v for k, v in from_yaml.items() if k != "preset"})
    for text in overrides:
        _set_path(tree, *parse_override(text))
    return validate(tree)


def _read_config_file(path: Path) -> Any:
    if path.is_dir():
        raise ConfigError(f"Config file {path} is a directory; pass a YAML file (e.g. {path}/tiny.yaml)")
    if not path.is_file():
        raise FileNotFoundError(f"Config file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"Config file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    return read_yaml(text, f"Config file {path}") or {}


def validate(tree: dict) -> PipelineConfig:
    """Build a `PipelineConfig` from a plain dict, turning pydantic errors into readable ones."""
    try:
        return PipelineConfig.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError("Invalid configuration:\n" + "\n".join(_describe(e) for e in exc.errors())) from None


def _describe(error: dict) -> str:
    loc = ".".join(str(p) for p in error["loc"])
    msg = error["msg"].removeprefix("Value error, ")
    allowed = allowed_range(PipelineConfig, [str(p) for p in error["loc"]])
    got = f"; got {error['input']!r}" if error.get("type") != "missing" and "input" in error and \
        not isinstance(error["input"], dict) else ""
    return f"  {loc or 'config'}: {msg}" + (f" (allowed: {allowed})" if allowed else "") + got


def allowed_range(model: type[BaseModel], loc: list[str]) -> str:
    """The numeric bounds declared on the field at `loc`, e.g. '> 0, <= 1'."""
    for i, part in enumerate(loc):
        field = model.model_fields.get(part)
        if field is None:
            return ""
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and i < len(loc) - 1:
            model = annotation
            continue
        bounds = []
        for meta in field.metadata:
            for cls, sym, attr in ((Gt, ">", "gt"), (Ge, ">=", "ge"), (Lt, "<", "lt"), (Le, "<=", "le")):
                if isinstance(meta, cls):
                    bounds.append(f"{sym} {getattr(meta, attr)}")
        return ", ".join(bounds)
    return ""
