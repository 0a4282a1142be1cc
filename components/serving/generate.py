"""Streamed chat replies: chat template, system prompt, sampling settings, context check, stop at eos.

`prepare(served, messages, settings)` renders the conversation with the tokenizer's own chat
template and checks it against the model's context: the oldest turns are left out when the whole
history does not fit, and a latest message that alone does not fit raises `PromptTooLong` with a
message a person can act on. `stream(served, prompt, settings)` runs `generate` in a thread with a
`TextIteratorStreamer` and yields text pieces as they are decoded; closing the iterator early
(a client went away) stops the generation at its next token.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

DEFAULT_SYSTEM = "You are a helpful assistant."
MIN_REPLY_TOKENS = 16  # a prompt must leave at least this much room (or max_new_tokens when smaller)


class PromptTooLong(ValueError):
    """The latest message (with the system prompt) does not fit into the model's context."""


@dataclass(frozen=True)
class GenerationSettings:
    """Per-request sampling settings, checked up front."""

    system_prompt: str = DEFAULT_SYSTEM
    temperature: float = 0.7  # 0 = greedy
    top_p: float = 0.95
    max_new_tokens: int = 256

    def __post_init__(self) -> None:
        if not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"temperature must be between 0 (greedy) and 2, got {self.temperature}.")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}.")
        if not 1 <= int(self.max_new_tokens) <= 8192:
            raise ValueError(f"max_new_tokens must be between 1 and 8192, got {self.max_new_tokens}.")


@dataclass(frozen=True)
class Prompt:
    """Token ids ready for generate, and what was done to fit them."""

    ids: list[int]
    max_new_tokens: int
    dropped_turns: int = 0


def text_of(content: Any) -> str:
    """Plain text of a chat message's content: a string, or Gradio's [{"type": "text", "text": ...}] parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or content.get("content") or "")
    if isinstance(content, list | tuple):
        return "".join(text_of(part) for part in content)
    return "" if content is None else str(content)


def to_messages(history: list[dict], message: str, system_prompt: str = "") -> list[dict]:
    """A chat-template conversation from a history of {"role", "content"} turns and the new message."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt.strip() else []
    for turn in history or []:
        if turn.get("role") in ("user", "assistant"):
            messages.append({"role": turn["role"], "content": text_of(turn.get("content"))})
    return [*messages, {"role": "user", "content": text_of(message)}]


def encode(tok, messages: list[dict]) -> list[int]:
    """The prompt ids the chat template gives, ending where the assistant's reply starts."""
    out = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, return_dict=True)
    return list(out["input_ids"])


def prepare(served, messages: list[dict], settings: GenerationSettings) -> Prompt:
    """Fit the conversation into the context (oldest turns first out); PromptTooLong when nothing fits."""
    context, tok = served.context, served.tokenizer
    room_needed = min(int(settings.max_new_tokens), MIN_REPLY_TOKENS)
    head = messages[:1] if messages and messages[0]["role"] == "system" else []
    turns, dropped = messages[len(head):], 0
    while True:
        ids = encode(tok, head + turns)
        if len(ids) + room_needed <= context:
            return Prompt(ids, min(int(settings.max_new_tokens), context - len(ids)), dropped)
        if len(turns) <= 1:
            raise PromptTooLong(_too_long(len(ids), context, room_needed, bool(head)))
        cut = 2 if len(turns) > 2 and turns[1]["role"] == "assistant" else 1  # a user turn and its reply
        turns, dropped = turns[cut:], dropped + cut


def _too_long(n_prompt: int, context: int, room: int, has_system: bool) -> str:
    with_system = " with the system prompt" if has_system else ""
    return (f"Your message is too long for this model: it takes {n_prompt} tokens{with_system}, and the model "
            f"reads at most {context} tokens in all, {room} of which must stay free for the reply. "
            f"Shorten it by about {n_prompt + room - context} tokens"
            f"{' (or shorten the system prompt)' if has_system else ''} and send it again.")


def stop_ids(served) -> list[int]:
    """End-of-reply tokens: the tokenizer's eos and any the model's generation config adds."""
    ids = {served.tokenizer.eos_token_id}
    extra = getattr(getattr(served.model, "generation_config", None), "eos_token_id", None)
    ids |= set(extra) if isinstance(extra, list | tuple) else {extra}
    return sorted(i for i in ids if i is not None)


def stream(served, prompt: Prompt, settings: GenerationSettings,
           on_tokens: Callable[[int], None] | None = None) -> Iterator[str]:
    """Text pieces of the reply as they are generated; stops at eos or `prompt.max_new_tokens`."""
    cancel, errors = threading.Event(), []
    streamer = _CountingStreamer(served.tokenizer, on_tokens, skip_prompt=True, skip_special_tokens=True)
    ids = torch.tensor([prompt.ids], device=served.model.device)
    kwargs = dict(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=prompt.max_new_tokens,
                  streamer=streamer, eos_token_id=stop_ids(served), pad_token_id=served.tokenizer.pad_token_id,
                  stopping_criteria=StoppingCriteriaList([_Cancelled(cancel)]), **_sampling(settings))

    def run() -> None:
        try:
            with torch.inference_mode():
                served.model.generate(**kwargs)
        except Exception as exc:  # re-raised in the consumer; end() unblocks it
            errors.append(exc)
            streamer.end()

    worker = threading.Thread(target=run, name="dsllm-generate", daemon=True)
    worker.start()
    try:
        yield from (text for text in streamer if text)
    finally:
        cancel.set()
        worker.join()
    if errors:
        raise errors[0]


def _sampling(settings: GenerationSettings) -> dict[str, Any]:
    if settings.temperature == 0:
        return {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    return {"do_sample": True, "temperature": float(settings.temperature), "top_p": float(settings.top_p),
            "top_k": None}


class _Cancelled(StoppingCriteria):
    """Stops generation once `event` is set (the reader went away)."""

    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class _CountingStreamer(TextIteratorStreamer):
    """A TextIteratorStreamer that also reports how many reply tokens it has seen."""

    def __init__(self, tokenizer, on_tokens: Callable[[int], None] | None, **kwargs):
        super().__init__(tokenizer, **kwargs)
        self._on_tokens, self._prompt_seen = on_tokens, False

    def put(self, value) -> None:
        if self._prompt_seen and self._on_tokens is not None:
            self._on_tokens(int(value.numel()))
        self._prompt_seen = True
        super().put(value)
