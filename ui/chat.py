"""What the page shows and does, apart from its layout: the chat function, the header, the card tab.

Kept free of layout so it can be read (and tested) on its own: `chat_fn(slot, interval_s)` is the
streaming function ChatInterface calls, its updates coalesced by `growing_text` (each Gradio update is
a full event for the server and every client, so one per token cost as much CPU as the model under
load); `header(status)` is the line on top of every page saying which model
version is served; `card_view(slot)` gives the model card tab's markdown and images.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterable, Iterator

import gradio as gr

from components.serving.card import render
from components.serving.config import DemoConfig
from components.serving.generate import GenerationSettings, to_messages
from components.serving.slot import ModelSlot

ChatFn = Callable[..., Iterator[str]]
STREAM_INTERVAL_S = DemoConfig.model_fields["stream_interval_s"].default


def growing_text(pieces: Iterable[str], interval_s: float, clock: Callable[[], float] = time.monotonic
                 ) -> Generator[str, None, str]:
    """The reply so far: at the first piece at once (time to first token unchanged), then at most once per
    `interval_s` (pieces arriving sooner are gathered), and always the whole text at the end; returns it."""
    text, shown, due = "", "", None
    try:
        for piece in pieces:
            text += piece
            if piece and (due is None or clock() >= due):
                due, shown = clock() + interval_s, text
                yield text
        if text != shown:
            yield text
        return text
    finally:  # a reader that left (stop button, closed page) cancels the reply now, not when collected
        close = getattr(pieces, "close", None)
        if close:
            close()


def chat_fn(slot: ModelSlot, interval_s: float = STREAM_INTERVAL_S) -> ChatFn:
    """The ChatInterface function: message, history and the settings inputs in, growing reply text out
    (at most one update per `interval_s` after the first piece)."""

    def chat(message: str, history: list[dict], system_prompt: str, temperature: float, top_p: float,
             max_new_tokens: float) -> Iterator[str]:
        if not str(message or "").strip():
            raise gr.Error("Type a message first.")
        try:
            settings = GenerationSettings(system_prompt or "", float(temperature), float(top_p), int(max_new_tokens))
            pieces = slot.reply(to_messages(history, message, settings.system_prompt), settings)
        except ValueError as exc:  # PromptTooLong, or a setting out of range (API callers skip the sliders)
            raise gr.Error(str(exc), title="Message not sent") from None
        text = yield from growing_text(pieces, interval_s)
        if not text:
            yield "(the model ended its reply without any text)"

    return chat


def header(status: dict) -> str:
    """'Serving dsllm-chat v3 (alias approved) · loaded 12:01:02' on every page, with the reference."""
    if status.get("kind") == "registry":
        alias = f" (alias `{status['alias']}`)" if status.get("alias") else ""
        what = f"**{status['name']} v{status['version']}**{alias}"
    else:
        what = f"**{status.get('path') or 'nothing'}**"
    loaded = time.strftime("%H:%M:%S", time.localtime(status["loaded_at"])) if status.get("loaded_at") else "-"
    ref = f" · `{status['ref']}`" if status.get("ref") != status.get("path") else ""
    note = f" · ⚠️ last check failed: {status['last_error']}" if status.get("last_error") else ""
    return f"### dsllm chat\nServing {what} · loaded {loaded}{ref}{note}"


def card_view(slot: ModelSlot) -> tuple[str, list[tuple[str, str]]]:
    """The model card as markdown, and (image path, caption) pairs for the gallery."""
    card = slot.current().card
    return render(card), [(str(p), p.stem.replace("_", " ")) for p in card.images]
