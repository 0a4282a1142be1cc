"""An OpenAI-compatible endpoint through the official `openai` client: chat replies, many at once.

The key comes from the environment variable the config names (checked when the endpoint is built, so a
missing key is one clear error before any work). A request that fails (a 4xx such as a prompt over the
model's context, a timeout, a refused connection after the client's retries) becomes a `Reply` with
its error: the caller counts and quarantines it, the evaluation goes on.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from components.config import EndpointConfig


@dataclass(frozen=True)
class Reply:
    text: str
    error: str | None = None


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
