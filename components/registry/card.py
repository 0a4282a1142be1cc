"""The model card in markdown: what the model is, what it was trained on, with how much compute, and how
it scores. Built from the HF config, the parameter accounting of components/model and the manifests
of the lineage (data mixture, pretraining counts, alignment counts, the evaluate scorecard)."""

from __future__ import annotations

import json
from pathlib import Path

from components.artifacts import ArtifactStore, parse_uri
from components.config import ModelConfig
from components.model.accounting import accounting
from components.registry.lineage import Lineage

KIND_TEXT = {"base": "pretrained base model (next-token prediction)",
             "chat": "chat model (pretrained, then SFT and DPO; the tokenizer carries the chat template)"}
FRONT_MATTER = ("---\nlicense: apache-2.0\nlanguage: [en, zh]\nlibrary_name: transformers\npipeline_tag: text-generation\n"
                "tags: [dsllm, deepseek-llm-recipe, llama]\n---\n")


def si(n: float | None) -> str:
    """1234567 → '1.23M'; None → '–'."""
    if n is None:
        return "–"
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.4g}" if isinstance(n, float) else str(n)


def _table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *["| " + " | ".join(str(c) for c in row) + " |" for row in rows], ""]


def model_config_from_hf(hf_config: dict) -> ModelConfig | None:
    """The project's ModelConfig for a saved Llama config (None when it is not one the project builds)."""
    try:
        return ModelConfig(n_layer=hf_config["num_hidden_layers"], d_model=hf_config["hidden_size"],
                           n_head=hf_config["num_attention_heads"],
                           n_kv_head=hf_config.get("num_key_value_heads") or hf_config["num_attention_heads"],
                           d_ffn=hf_config["intermediate_size"], vocab_size=hf_config["vocab_size"],
                           max_seq_len=hf_config["max_position_embeddings"],
                           rope_theta=(hf_config.get("rope_parameters") or {}).get("rope_theta", 10000.0),
                           tie_embeddings=bool(hf_config.get("tie_word_embeddings", False)))
    except (KeyError, ValueError):
        return None


def architecture(hf_dir: Path, params: dict[str, int], seq_len: int | None, tokens: int | None) -> list[str]:
    hf = json.loads((hf_dir / "config.json").read_text())
    lines = ["## Architecture", "", f"`{', '.join(hf.get('architectures', ['?']))}` in DeepSeek LLM's layout "
             "(pre-norm RMSNorm, SwiGLU, RoPE, grouped-query attention).", ""]
    lines += _table(["layers", "d_model", "heads", "kv heads", "d_ffn", "vocab", "context", "RoPE θ", "tied embeddings"],
                    [[hf.get("num_hidden_layers"), hf.get("hidden_size"), hf.get("num_attention_heads"),
                      hf.get("num_key_value_heads"), hf.get("intermediate_size"), hf.get("vocab_size"),
                      hf.get("max_position_embeddings"), (hf.get("rope_parameters") or {}).get("rope_theta", "–"),
                      hf.get("tie_word_embeddings", False)]])
    lines.append(f"Parameters: **{si(params['total'])}** ({params['total']:,}): embedding {si(params['embedding'])}, "
                 f"non-embedding {si(params['non_embedding'])}.")
    mc = model_config_from_hf(hf)
    if mc is not None:
        acc = accounting(mc, seq_len or mc.max_seq_len, tokens or 0, params)
        lines.append(f"Model scale M = {si(acc['flops_per_token'])} non-embedding FLOPs/token at sequence length "
                     f"{acc['seq_len']} (6N₁ = {si(acc['six_n1'])}, 6N₂ = {si(acc['six_n2'])}).")
    return [*lines, ""]


def data_section(lineage: Lineage, store: ArtifactStore) -> list[str]:
    data, pack, corpus = (lineage.counts(s) for s in ("data", "pack", "corpus"))
    if not (data or pack or corpus):
        return ["## Data", "", "Not recorded (no data, pack or corpus artifact in the lineage).", ""]
    lines = ["## Data", ""]
    mixture = _mixture_rows(lineage, store)
    if mixture:
        lines += ["Mixture after cleaning, deduplication, decontamination and remixing (tokens estimated):", ""]
        lines += _table(["bucket", "tokens", "share", "target share", "remix rate"], mixture)
    if per_bucket := _numbers(pack.get("tokens_per_bucket")):
        total = sum(per_bucket.values()) or 1
        lines += [f"Packed for pretraining: {si(pack.get('train_tokens'))} training tokens; per bucket "
                  + ", ".join(f"{b} {si(n)} ({n / total:.0%})" for b, n in sorted(per_bucket.items())) + ".", ""]
    if sources := corpus.get("chars"):
        lines += _table(["source", "documents", "characters"],
                        [[s, corpus.get("docs", {}).get(s, "–"), si(c)] for s, c in sorted(sources.items())])
    dedup, filt, decon = data.get("dedup", {}), data.get("filter", {}), data.get("decontam", {})
    if data:
        dropped, missing = numeric_total(decon)
        missing = data.get("decontam_unavailable") or missing  # older artifacts: strings in decontam
        lines += [f"Cleaning: {numeric_total(filt)[0]} documents filtered, {dedup.get('exact_removed', 0)} exact and "
                  f"{dedup.get('near_removed', 0)} near duplicates removed, {dropped} contaminated "
                  f"documents dropped; {data.get('output', {}).get('documents', '–')} documents kept.", ""]
        if missing:
            lines += [f"Not decontaminated against (evaluation sets not available when the data was built): "
                      f"{', '.join(missing)}.", ""]
    return lines


def _numbers(counts) -> dict:
    """The numeric entries of a counts dict (a set recorded as 'not available' is not a count)."""
    if not isinstance(counts, dict):
        return {}
    return {k: v for k, v in counts.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def numeric_total(counts) -> tuple[int, list[str]]:
    """(sum of the numeric counts, sorted names of the sets without one): {gsm8k: 3, ceval: 'not available'} and
    {gsm8k: 3, not_available: ['ceval']} both give (3, ['ceval'])."""
    numbers, missing = _numbers(counts), set()
    for key, value in (counts.items() if isinstance(counts, dict) else ()):
        if key not in numbers:
            missing |= {str(v) for v in value} if isinstance(value, list | tuple) else {str(key)}
    return int(sum(numbers.values())), sorted(missing)


def _mixture_rows(lineage: Lineage, store: ArtifactStore) -> list[list]:
    if "data" in lineage.manifests:
        table = store.path(*parse_uri(lineage.uris["data"])) / "report" / "mixture_table.json"
        if table.is_file():
            return [[r["bucket"], si(r["tokens_after"]), f"{r['share_after']:.1%}", f"{r['target_share']:.1%}",
                     r["rate"]] for r in json.loads(table.read_text())]
    tokens = _numbers(lineage.counts("data").get("output", {}).get("tokens_est"))
    total = sum(tokens.values()) or 1
    return [[b, si(n), f"{n / total:.1%}", "–", "–"] for b, n in sorted(tokens.items())]


def compute_section(lineage: Lineage) -> list[str]:
    pre, pcfg = lineage.counts("pretrain"), lineage.config("pretrain").get("pretrain", {})
    lines = ["## Training compute", ""]
    if pre:
        val = ", ".join(f"{d} {v:.3f}" for d, v in sorted((pre.get("val_loss") or {}).items()))
        lines += [f"Pretraining: D = {si(pre.get('tokens'))} tokens in {pre.get('steps', '–')} steps "
                  f"(batch {si(pcfg.get('batch_tokens'))} tokens, peak LR {pcfg.get('lr', '–')}, {pcfg.get('schedule', '–')} "
                  f"schedule); compute C = M·D = {si(pre.get('compute'))} FLOPs; {si(pre.get('tokens_per_s'))} tokens/s, "
                  f"MFU {_pct(pre.get('mfu_mean'))}; final loss {_num(pre.get('final_loss'))}"
                  + (f"; validation loss {val}" if val else "") + ".", ""]
    if sft := lineage.counts("sft"):
        lines += [f"SFT: {sft.get('examples', '–')} conversations, {sft.get('epochs', '–')} epochs, "
                  f"{sft.get('steps', '–')} steps, train loss {_num(sft.get('train_loss'))}, held-out loss "
                  f"{_num(sft.get('eval_loss'))}.", ""]
    if dpo := lineage.counts("dpo"):
        lines += [f"DPO: {dpo.get('pairs', '–')} preference pairs, {dpo.get('epochs', '–')} epochs, "
                  f"{dpo.get('steps', '–')} steps; held-out preference accuracy {_num(dpo.get('reward_accuracy_sft'))} "
                  f"(SFT) → {_num(dpo.get('reward_accuracy_dpo'))} (DPO).", ""]
    return lines if len(lines) > 2 else [*lines, "Not recorded (no pretrain artifact in the lineage).", ""]


def _num(value) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "–"


def _pct(value) -> str:
    return f"{value:.1%}" if isinstance(value, int | float) else "–"


def eval_section(scorecard: str | None) -> list[str]:
    if not scorecard:
        return ["## Evaluation", "", "Not evaluated; the gate compares the validation losses of pretraining.", ""]
    body = [line.replace("## ", "### ", 1) if line.startswith("## ") else line
            for line in scorecard.splitlines() if not line.startswith("# ")]
    return ["## Evaluation", *body, ""]


def lineage_section(lineage: Lineage | None, runs: dict[str, str]) -> list[str]:
    if lineage is None:
        return ["## Lineage", "", "Registered from a plain directory: no artifact lineage.", ""]
    rows = [[stage, f"`{uri}`" + (" (gone)" if stage in lineage.missing else ""), runs.get(stage, "–")]
            for stage, uri in sorted(lineage.uris.items())]
    return ["## Lineage", "", *_table(["stage", "artifact", "MLflow run"], rows),
            f"Config hash `{lineage.config_hash()}`, code `{lineage.code_commit}`"
            + (f", pipeline run `{runs['pipeline']}`" if "pipeline" in runs else "") + ".", ""]


def model_card(name: str, kind: str, hf_dir: Path, params: dict[str, int], lineage: Lineage | None,
               scorecard: str | None, runs: dict[str, str], store: ArtifactStore) -> str:
    """The whole card (HF front matter, then markdown sections)."""
    seq_len = lineage.config("pretrain").get("seq_len") if lineage else None
    tokens = lineage.counts("pretrain").get("tokens") if lineage else None
    lines = [f"# {name}", "", f"A {KIND_TEXT[kind]}, trained with the DeepSeek LLM recipe (arXiv 2401.02954) by dsllm.",
             "", f"Artifact: `{lineage.root if lineage else hf_dir}`.", ""]
    lines += eval_section(scorecard) + architecture(hf_dir, params, seq_len, tokens)
    if lineage is not None:
        lines += data_section(lineage, store) + compute_section(lineage)
    lines += lineage_section(lineage, runs)
    lines += ["## Use", "", "```python", "import mlflow", "",
              f'parts = mlflow.transformers.load_model("models:/{name}@approved", return_type="components")',
              'model, tokenizer = parts["model"], parts["tokenizer"]', "```", ""]
    return "\n".join(lines)


def front_matter(card: str) -> str:
    """The card as Hugging Face expects it in a repository's README (YAML metadata first)."""
    return FRONT_MATTER + card


def with_head_to_head(card: str, section: list[str]) -> str:
    """The card with `section` (the scorecard's "## Head to head ..." block) as its head-to-head result: an
    older one is replaced, a first one goes at the end of the evaluation section (or the card's end)."""
    lines = card.splitlines()
    old = next((i for i, line in enumerate(lines) if line.startswith("### Head to head")), None)
    if old is not None:
        end = next((i for i in range(old + 1, len(lines)) if lines[i].startswith(("## ", "### "))), len(lines))
        del lines[old:end]
    evaluation = next((i for i, line in enumerate(lines) if line == "## Evaluation"), len(lines))
    at = next((i for i in range(evaluation + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    block = [line.replace("## ", "### ", 1) if line.startswith("## ") else line for line in section if line != ""]
    lines[at:at] = [*block, ""]
    return "\n".join(lines) + ("\n" if card.endswith("\n") else "")
