"""The chat template as the tokenizer defines it, and what is measured through it.

The template always comes from the tokenizer artifact (never hard-coded here): it must mark the
assistant's content and end-of-turn token with `{% generation %}...{% endgeneration %}` (TRL's
assistant-only loss builds its label mask from those markers) and support add_generation_prompt.
On top of it: greedy replies to chat prompts, the repetition rate of replies (the failure DeepSeek
watched on math SFT data), and the log-likelihood preference of chosen over rejected answers.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

# Markup tokens look like <|user|>, <｜Assistant｜>, <s>; byte-fallback pieces (<0x41>) do not count.
_MARKUP = re.compile(r"^<(?!0x[0-9A-Fa-f]{2}>)[^<>\s]+>$")


def load_tokenizer(model_dir: str | Path):
    """The tokenizer saved with a model, checked for a usable chat template."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    check_template(tok, model_dir)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def check_template(tok, where: str | Path = "the tokenizer") -> None:
    """Clear errors for a tokenizer SFT cannot use: no template, no generation markers, no eos in the mask."""
    template = tok.chat_template
    if not template:
        raise ValueError(f"The tokenizer in {where} has no chat template. Rebuild the tokenizer stage: it writes "
                         "a Jinja template with role tokens and {% generation %} markers into tokenizer_config.")
    if "{% generation %}" not in template.replace("{%- generation", "{% generation"):
        raise ValueError(f"The chat template in {where} has no {{% generation %}}...{{% endgeneration %}} markers "
                         "around assistant content, so the SFT loss cannot be restricted to assistant tokens.")
    if tok.eos_token is None:
        raise ValueError(f"The tokenizer in {where} has no eos token; it must end each assistant turn.")
    mask = assistant_mask(tok, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}])
    ids = mask["input_ids"]
    trained = [i for i, m in zip(ids, mask["assistant_masks"], strict=True) if m]
    if not trained or trained[-1] != tok.eos_token_id:
        raise ValueError(f"The chat template in {where} leaves the eos token outside {{% generation %}}: the model "
                         "would never learn to stop. Put {{ eos_token }} inside the generation block.")


def assistant_mask(tok, messages: list[dict]) -> dict:
    """input_ids and assistant_masks (1 = a token the SFT loss trains on) of a conversation."""
    return tok.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)


def role_token_ids(tok) -> set[int]:
    """Markup tokens (`<...>`) the chat template writes around turns, eos and pad excepted: a reply
    that contains one has started another turn."""
    template = tok.chat_template or ""
    found = {i for piece, i in tok.get_vocab().items() if _MARKUP.match(piece) and piece in template}
    turns = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]
    for messages in ([{"role": "system", "content": "s"}, *turns], turns):
        try:
            ids = tok.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
        except Exception:  # a template without a system role raises; the shorter conversation follows
            continue
        found |= {i for i, piece in zip(ids, tok.convert_ids_to_tokens(ids), strict=True) if _MARKUP.match(piece)}
        break
    return found - {tok.eos_token_id, tok.pad_token_id}


def prompt_of(messages: list[dict]) -> list[dict]:
    """The conversation up to (not including) its final assistant turn."""
    end = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return messages[:end]


def as_chat(prompt: str | list[dict]) -> list[dict]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt


@torch.no_grad()
def generate(model, tok, prompts: list, max_new_tokens: int, batch_size: int = 16) -> list[dict]:
    """Greedy replies to chat prompts: text, token ids, whether it stopped at eos, role tokens inside."""
    roles, replies = role_token_ids(tok), []
    was_training, side = model.training, tok.padding_side
    model.eval()
    tok.padding_side = "left"
    try:
        for start in range(0, len(prompts), batch_size):
            replies += _generate_batch(model, tok, prompts[start:start + batch_size], max_new_tokens, roles)
    finally:
        tok.padding_side = side
        model.train(was_training)
    return replies


def _generate_batch(model, tok, prompts: list, max_new_tokens: int, roles: set[int]) -> list[dict]:
    texts = [tok.apply_chat_template(as_chat(p), tokenize=False, add_generation_prompt=True) for p in prompts]
    batch = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    replies = []
    for prompt, row in zip(prompts, out[:, batch["input_ids"].shape[1]:].tolist(), strict=True):
        stop = row.index(tok.eos_token_id) + 1 if tok.eos_token_id in row else len(row)
        ids = row[:stop]
        replies.append({"prompt": prompt if isinstance(prompt, str) else prompt[-1]["content"],
                        "reply": tok.decode(ids, skip_special_tokens=True), "ids": ids,
                        "stopped_at_eos": bool(ids) and ids[-1] == tok.eos_token_id,
                        "role_tokens": sum(i in roles for i in ids), "repetitive": is_repetitive(ids)})
    return replies


def is_repetitive(ids: list[int], max_period: int = 32, min_repeats: int = 3) -> bool:
    """True when the reply ends in a loop: its last block of p tokens (p <= max_period) occurs
    min_repeats times back to back. Lists, poems and code repeat words, but not whole blocks in a row."""
    for period in range(1, max_period + 1):
        span = period * min_repeats
        if len(ids) < span:
            break
        tail = ids[-span:]
        if all(tail[i] == tail[i % period] for i in range(span)):
            return True
    return False


def repetition_rate(replies: list[dict]) -> float:
    """Share of replies that end in a loop."""
    return sum(r["repetitive"] for r in replies) / max(len(replies), 1)


def completion_ids(tok, prompt: list[dict], completion: list[dict], max_length: int) -> tuple[list[int], int]:
    """(ids of prompt + completion truncated to max_length, where the completion starts), as TRL's DPO
    tokenises a pair: the completion starts where prompt and prompt+completion diverge."""
    prompt_ids = tok.apply_chat_template(prompt, tokenize=True, return_dict=True, add_generation_prompt=True)["input_ids"]
    full = tok.apply_chat_template(prompt + completion, tokenize=True, return_dict=True)["input_ids"]
    start = next((i for i, (a, b) in enumerate(zip(prompt_ids, full, strict=False)) if a != b),
                 min(len(prompt_ids), len(full)))
    return full[:max_length], start


@torch.no_grad()
def completion_logps(model, seqs: list[tuple[list[int], int]], pad_id: int, batch_size: int = 16) -> list[tuple[float, int]]:
    """For each (ids, start): the summed log-probability of ids[start:] given what precedes them, and the
    number of those tokens. Batched, right-padded (a causal model's real tokens never see the padding)."""
    out = []
    for first in range(0, len(seqs), batch_size):
        chunk = seqs[first:first + batch_size]
        ids = torch.full((len(chunk), max(len(s) for s, _ in chunk)), pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, (seq, _) in enumerate(chunk):
            ids[row, :len(seq)], mask[row, :len(seq)] = torch.tensor(seq), 1
        ids, mask = ids.to(model.device), mask.to(model.device)
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        logp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None])[..., 0]
        out += [(float(logp[row, start - 1:len(seq) - 1].sum()), len(seq) - start) if start < len(seq) else (0.0, 0)
                for row, (seq, start) in enumerate(chunk)]
    return out


def _accuracy(margins: list[float]) -> float:
    return sum(1.0 if m > 0 else 0.5 if m == 0 else 0.0 for m in margins) / max(len(margins), 1)


def preference(model, tok, pairs: list[dict], max_length: int) -> dict:
    """Does the model prefer the chosen reply to the rejected one? On each pair, the margin between their
    summed log-probabilities (DPO's implicit reward with a uniform reference, so the SFT and the DPO
    model are scored alike) and between their per-token means (free of the pull towards the shorter
    reply). Returns the share of pairs won by chosen under each (ties count half) and the mean margins,
    overall and, when the pairs carry a `dataset` name, per set."""
    was_training = model.training
    model.eval()
    seqs = [completion_ids(tok, pair["prompt"], pair[k], max_length) for pair in pairs for k in ("chosen", "rejected")]
    scores = completion_logps(model, seqs, tok.pad_token_id)
    model.train(was_training)
    margins = [(c - r, c / max(nc, 1) - r / max(nr, 1)) for (c, nc), (r, nr) in zip(scores[::2], scores[1::2],
                                                                                      strict=True)]
    result = _summary(margins)
    names = sorted({p["dataset"] for p in pairs if "dataset" in p})
    if names:
        result["by_dataset"] = {name: _summary([m for m, p in zip(margins, pairs, strict=True)
                                                if p.get("dataset") == name]) for name in names}
    return result


def _summary(margins: list[tuple[float, float]]) -> dict:
    summed, per_token = [m[0] for m in margins], [m[1] for m in margins]
    n = max(len(margins), 1)
    return {"accuracy": _accuracy(summed), "margin": sum(summed) / n, "accuracy_per_token": _accuracy(per_token),
            "margin_per_token": sum(per_token) / n, "pairs": len(margins)}
