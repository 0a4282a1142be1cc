"""An OpenAI-compatible endpoint through the official `openai` client: chat replies, many at once.

The key comes from the environment variable the config names (checked when the endpoint is built, so a
missing key is one clear error before any work). A request that fails (a 4xx such as a prompt over the
model's context, a timeout, a refused connection after the client's retries) becomes a `Reply` with
its error: the caller counts and quarantines it, the evaluation goes on.

`ask_many` fits judge prompts into the judge's context: a prompt the server refuses as too long (the
OpenAI error text, which vLLM and the project's API share, states the context and the prompt's tokens)
is built again with compact instructions and its texts clipped to fit, a few times at most.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from components.config import EndpointConfig
from components.evaluate.judge.prompts import MAX_ANSWER_CHARS

FIT_TRIES = 5
MIN_REPLY_TOKENS = 64  # room enough for a judge's short explanation and its verdict
_LIMIT = re.compile(r"maximum context length is (\d+) tokens.*?\((\d+) in the (?:prompt|messages)", re.S)
Build = Callable[[int, bool], list[dict]]
"""(clip characters, short) -> the judge's messages."""


@dataclass(frozen=True)
class Reply:
    text: str
    error: str | None = None


def _chars(messages: list[dict]) -> int:
    return sum(len(m["content"]) for m in messages)


def _clip_to_fit(build: Build, refused: list[dict], context: int, prompt: int, max_tokens: int) -> int:
    """The largest clip whose short prompt has at most 80% of the room in characters, at the refused prompt's
    characters per token."""
    target = 0.8 * (context - max_tokens) * _chars(refused) / max(prompt, 1)
    low, high = 1, MAX_ANSWER_CHARS
    while low < high:  # the short prompt grows with the clip: bisect
        mid = (low + high + 1) // 2
        low, high = (mid, high) if _chars(build(mid, True)) <= target else (low, mid - 1)
    return low


def context_limit(error: str | None) -> tuple[int, int] | None:
    """(context tokens, prompt tokens) from a context-length error; None for any other error."""
    found = _LIMIT.search(error or "")
    return (int(found.group(1)), int(found.group(2))) if found else None


def api_key(cfg: EndpointConfig) -> str:
    """The key from `cfg.api_key_env`; "unused" when none is configured (the client insists on one)."""
    if cfg.api_key_env is None:
        return "unused"
    key = os.environ.get(cfg.api_key_env)
    if not key:
        raise ValueError(f"The endpoint {cfg.url} takes its API key from ${cfg.api_key_env}, which is not set. "
                         f"Export it, or drop the key setting for an endpoint without auth.")
    return key


class Endpoint:
    """Chat completions from one endpoint and model; `concurrency` requests in flight at once."""

    def __init__(self, cfg: EndpointConfig, concurrency: int = 4, timeout_s: float = 600.0):
        import openai

        self.cfg, self.concurrency = cfg, concurrency
        self.client = openai.OpenAI(base_url=cfg.url, api_key=api_key(cfg), timeout=timeout_s, max_retries=2)

    @property
    def name(self) -> str:
        return f"{self.cfg.model} @ {self.cfg.url}"

    def chat(self, messages: list[dict], max_tokens: int, temperature: float = 0.0) -> Reply:
        import openai

        try:
            out = self.client.chat.completions.create(model=self.cfg.model, messages=messages, max_tokens=max_tokens,
                                                      temperature=temperature)
        except openai.OpenAIError as exc:
            return Reply("", f"{type(exc).__name__}: {exc}")
        return Reply(out.choices[0].message.content or "")

    def fit(self, build: Build, max_tokens: int) -> Reply:
        """The reply to `build(MAX_ANSWER_CHARS, False)`, else to shorter builds while the server says the prompt is
        too long for its context."""
        messages = build(MAX_ANSWER_CHARS, False)
        reply = self.chat(messages, max_tokens)
        for _ in range(FIT_TRIES - 1):
            limit = context_limit(reply.error)
            if limit is None:
                return reply
            context, prompt = limit
            if context - prompt >= MIN_REPLY_TOKENS:  # the prompt fits; the reply budget did not: shrink that only
                max_tokens = context - prompt
            else:  # a verdict is short: most of the room goes to the prompt
                max_tokens = min(max_tokens, max(4, context // 8))
                messages = build(_clip_to_fit(build, messages, context, prompt, max_tokens), True)
            reply = self.chat(messages, max_tokens)
        return reply

    def ask_many(self, builds: list[Build], max_tokens: int) -> list[Reply]:
        """`fit` for each prompt builder, in order, `concurrency` at once."""
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda b: self.fit(b, max_tokens), builds))

    def chat_many(self, conversations: list[list[dict]], max_tokens: int, temperature: float = 0.0) -> list[Reply]:
        """Replies in the order of `conversations` (the server batches what arrives together)."""
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda m: self.chat(m, max_tokens, temperature), conversations))


def served_model(url: str, api_key_env: str | None = None) -> str:
    """The first model `GET /v1/models` lists at `url` (for a judge given by URL alone)."""
    import openai

    probe = EndpointConfig(url=url, model="?", api_key_env=api_key_env)
    try:
        models = openai.OpenAI(base_url=url, api_key=api_key(probe), timeout=30, max_retries=1).models.list().data
    except openai.OpenAIError as exc:
        raise ValueError(f"Could not list the models at {url} ({exc}); give the judge's model name.") from None
    if not models:
        raise ValueError(f"{url} lists no models; give the judge's model name.")
    return models[0].id
