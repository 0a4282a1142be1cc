"""The demo's settings, from command-line flags over environment variables over defaults.

| setting | env | default |
|---|---|---|
| model reference | DSLLM_DEMO_MODEL | models:/dsllm-chat@approved |
| host / port | DSLLM_DEMO_HOST / DSLLM_DEMO_PORT | 127.0.0.1 / 7860 |
| alias poll interval | DSLLM_DEMO_POLL_S | 5 s (0 = only on POST /dsllm/reload) |
| replies decoded together | DSLLM_DEMO_CONCURRENCY | 32 |
| queue size | DSLLM_DEMO_QUEUE | 64 |
| login | DSLLM_DEMO_AUTH | none; `user:password` turns it on |
| API key (/v1) | DSLLM_API_KEY | none; set it to require `Authorization: Bearer <key>` |
| API request body limit | DSLLM_API_MAX_BODY | 1048576 bytes |
| weights dtype | DSLLM_DEMO_DTYPE | auto (bfloat16 where the device computes it natively, else float32) |
| torch threads (CPU) | DSLLM_DEMO_THREADS | 0 = auto: all cores but one, at least one |
| where decoding runs | DSLLM_DEMO_ENGINE | process (a child process; `thread`: inside the web server) |
| engine and server on separate cores | DSLLM_DEMO_PIN | true (Linux, engine process, cores to spare) |
| chat page update interval | DSLLM_DEMO_STREAM_INTERVAL_S | 0.1 s (0 = an update per decoded piece) |
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from components.serving.cores import CoreSplit, split_cores, usable_cores
from components.serving.refs import DEFAULT_REF

ENV = {"model": "DSLLM_DEMO_MODEL", "host": "DSLLM_DEMO_HOST", "port": "DSLLM_DEMO_PORT",
       "poll_s": "DSLLM_DEMO_POLL_S", "concurrency": "DSLLM_DEMO_CONCURRENCY", "queue_size": "DSLLM_DEMO_QUEUE",
       "auth": "DSLLM_DEMO_AUTH", "dtype": "DSLLM_DEMO_DTYPE", "threads": "DSLLM_DEMO_THREADS",
       "api_key": "DSLLM_API_KEY", "api_max_body": "DSLLM_API_MAX_BODY",
       "stream_interval_s": "DSLLM_DEMO_STREAM_INTERVAL_S", "engine": "DSLLM_DEMO_ENGINE", "pin": "DSLLM_DEMO_PIN"}


class DemoConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = DEFAULT_REF
    """What to serve: models:/NAME@ALIAS (followed when the alias moves), models:/NAME/VERSION, a
    dsllm:// model artifact or a Hugging Face model directory."""
    host: str = "127.0.0.1"
    """Interface to bind; 127.0.0.1 keeps the demo on this machine (0.0.0.0 shares it on the network)."""
    port: int = Field(7860, ge=1, le=65535)
    """HTTP port of the app (chat page, Gradio API and /dsllm/version, /dsllm/reload)."""
    poll_s: float = Field(5.0, ge=0, le=3600)
    """Seconds between checks of the model reference (an alias moved in the MLflow UI is picked up
    this fast); 0 turns polling off (only POST /dsllm/reload swaps)."""
    concurrency: int = Field(32, ge=1, le=256)
    """Replies decoded together (one batch, continuous batching; chat and API alike); further requests
    wait in the queue and join the batch as replies end. Each step costs little more for 32 rows than
    for one on a small model, so this is sized for users, not cores."""
    queue_size: int = Field(64, ge=1, le=10000)
    """Requests that may wait for a free slot; beyond it a new request is refused with 'queue full'."""
    auth: str | None = None
    """`user:password` to require a login on the chat page (and for Gradio API clients)."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Weights dtype: auto = bfloat16 where the device computes it natively (a GPU; a CPU with AMX or
    AVX512-BF16: ~1.3x the tokens/s of float32 at 20 replies), else float32 (bf16 is emulated, and slow)."""
    threads: int = Field(0, ge=0, le=1024)
    """Torch threads for decoding on a CPU; 0 = all cores but one (at least one), which leaves a core to
    the web server and the tokenizer. On a busy machine one thread each is far better than two that
    wait on each other."""
    engine: Literal["process", "thread"] = "process"
    """Where the batching engine decodes: `process` = a child process per loaded model, so its steps never
    wait for the web server's GIL (at 20 chat sessions a thread in the server spent over half its time
    waiting for it); `thread` = inside the web server process (one process, one copy of the weights)."""
    pin: bool = True
    """With an engine process: the engine on the last `threads` cores this process may use and the web server
    on the others (`components/serving/cores.py`), so the server's threads never preempt a decode step.
    Nothing is pinned where no core would be left for the server (or off Linux)."""
    api_key: str | None = None
    """Bearer token the OpenAI-compatible API (/v1) requires; none = open (the default host is 127.0.0.1)."""
    api_max_body: int = Field(1 << 20, ge=1024, le=1 << 30)
    """Largest /v1 request body in bytes; a larger one gets 413."""
    stream_interval_s: float = Field(0.1, ge=0, le=5)
    """Least seconds between two updates of a streamed chat reply (Gradio path): the first piece is sent
    at once, later ones are gathered and sent together, the whole reply always at the end. Each update
    costs Gradio and every client a full event (postprocess, diff, SSE, parse), so one per token took as
    much CPU as the model under load; 0 sends one per decoded piece. The /v1 API is not affected."""

    @field_validator("auth")
    @classmethod
    def _auth_pair(cls, value: str | None) -> str | None:
        if value and (":" not in value or not all(value.split(":", 1))):
            raise ValueError("DSLLM_DEMO_AUTH must look like user:password (both non-empty)")
        return value or None

    @property
    def credentials(self) -> tuple[str, str] | None:
        if not self.auth:
            return None
        user, password = self.auth.split(":", 1)
        return user, password

    @property
    def torch_threads(self) -> int:
        return self.threads or max(1, len(usable_cores()) - 1)

    def core_split(self) -> CoreSplit | None:
        """The engine process's cores and the web server's (`cores.split_cores`); None when nothing is pinned."""
        return split_cores(self.torch_threads) if self.pin and self.engine == "process" else None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    @classmethod
    def resolve(cls, **overrides) -> DemoConfig:
        """Flags (non-None overrides) over DSLLM_DEMO_* variables over defaults; a clear ValueError when bad."""
        values = {key: os.environ[var] for key, var in ENV.items() if os.environ.get(var)}
        values |= {k: v for k, v in overrides.items() if v is not None}
        try:
            return cls(**values)
        except ValidationError as exc:
            problems = "; ".join(f"{e['loc'][0]} ({ENV.get(str(e['loc'][0]), '')}): {e['msg']}"
                                 for e in exc.errors())
            raise ValueError(f"Invalid demo settings: {problems}") from None
