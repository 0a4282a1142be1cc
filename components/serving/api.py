"""An OpenAI-compatible HTTP API on the served model: /v1/models, /v1/chat/completions, /v1/completions.

`install(app, slot, cfg)` adds the routes to the demo's FastAPI app, so the API and the chat page
share one process, one copy of the weights, one batching engine (chat users and API clients
decode in the same steps) and the same hot-swap: a request takes the slot's current model when it
starts and finishes on it (a stream that started before a swap ends on the old version).

The model id names the version: `dsllm-chat:v3` for `models:/dsllm-chat@approved` at version 3;
the bare name `dsllm-chat` is accepted too and means whatever is served now (a directory is served
under its folder name). Anything else is a 404. `DSLLM_API_KEY` set: every /v1 request needs
`Authorization: Bearer <key>` (401 otherwise). Bodies over `DSLLM_API_MAX_BODY` bytes get 413,
malformed JSON or a bad field 400, a prompt that leaves no room for `max_tokens` 400
(`context_length_exceeded`), a full queue 429, all in OpenAI's error shape. Streams are
server-sent events of chunks, ending with `data: [DONE]`.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from components.serving.api_schema import ApiError, ChatRequest, CompletionRequest, parse
from components.serving.engine import Event, QueueFull
from components.serving.generate import encode


def model_ids(target) -> tuple[str, str]:
    """(the id naming the version, the bare name that follows the reference)."""
    if target.kind == "registry":
        return f"{target.name}:v{target.version}", str(target.name)
    path = Path(str(target.path))
    name = path.parent.name if path.name == "hf" else path.name
    return name, name


def install(app: FastAPI, slot, cfg) -> None:
    """Add the /v1 routes and OpenAI-shaped errors to `app`."""
    router = APIRouter(prefix="/v1")

    @app.exception_handler(ApiError)
    async def _error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @router.get("/models")
    def models(request: Request) -> dict:
        _auth(request, cfg.api_key)
        return {"object": "list", "data": _model_cards(slot.current())}

    @router.get("/models/{model}")
    def model(model: str, request: Request) -> dict:
        _auth(request, cfg.api_key)
        served = slot.current()
        _check_model(model, served)
        return next(card for card in _model_cards(served) if card["id"] == model)

    @router.post("/chat/completions")
    async def chat(request: Request):
        return await _serve(request, slot, cfg, ChatRequest)

    @router.post("/completions")
    async def completions(request: Request):
        return await _serve(request, slot, cfg, CompletionRequest)

    app.include_router(router)


def _model_cards(served) -> list[dict]:
    created = int(served.loaded_at)
    return [{"id": name, "object": "model", "created": created, "owned_by": "dsllm", "root": served.target.ref}
            for name in dict.fromkeys(model_ids(served.target))]


def _auth(request: Request, key: str | None) -> None:
    if not key:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), key.encode()):
        raise ApiError(401, "Incorrect or missing API key: send `Authorization: Bearer <key>` with the key the "
                            "server was given in DSLLM_API_KEY.", code="invalid_api_key")


async def _body(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length", "")
    too_big = ApiError(413, f"The request body is larger than {limit} bytes (DSLLM_API_MAX_BODY).",
                       code="request_too_large")
    if declared.isdigit() and int(declared) > limit:
        raise too_big
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise too_big
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, f"The request body is not valid JSON ({exc}).", code="invalid_json") from None


def _check_model(name: str, served) -> str:
    versioned, bare = model_ids(served.target)
    if name not in (versioned, bare):
        raise ApiError(404, f"The model `{name}` does not exist here: this server serves `{versioned}` (or "
                            f"`{bare}`, whatever {served.target.ref} points at).", param="model",
                       code="model_not_found")
    return versioned


def _prompt_ids(served, req) -> list[int]:
    if isinstance(req, CompletionRequest):
        return list(served.tokenizer(req.text)["input_ids"])
    try:
        return encode(served.tokenizer, [m.as_template() for m in req.messages])
    except Exception as exc:  # the chat template refuses the conversation (e.g. roles out of order)
        raise ApiError(400, f"The messages do not fit the model's chat template: {exc}", param="messages") from None


def _room(n_prompt: int, limit: int | None, context: int) -> int:
    wanted = limit if limit is not None else max(1, context - n_prompt)
    if n_prompt + wanted > context:
        raise ApiError(400, f"This model's maximum context length is {context} tokens. However, you requested "
                            f"{n_prompt + wanted} tokens ({n_prompt} in the prompt, {wanted} in the completion). "
                            "Please reduce the length of the prompt or the max_tokens.", param="messages",
                       code="context_length_exceeded")
    return wanted


async def _serve(request: Request, slot, cfg, kind):
    _auth(request, cfg.api_key)
    req = parse(kind, await _body(request, cfg.api_max_body))
    served = slot.current()  # this request keeps this model to its end, whatever a swap does meanwhile
    reply = _Reply(kind is ChatRequest, _check_model(req.model, served))
    ids = _prompt_ids(served, req)
    settings = {"max_new_tokens": _room(len(ids), req.limit, served.context), "stop": req.stops, "seed": req.seed,
                "temperature": 1.0 if req.temperature is None else req.temperature,
                "top_p": 1.0 if req.top_p is None else req.top_p}
    loop, events = asyncio.get_running_loop(), asyncio.Queue()
    try:
        handle = slot.engine_of(served).submit(ids, lambda e: loop.call_soon_threadsafe(events.put_nowait, e), **settings)
    except QueueFull as exc:
        raise ApiError(429, f"The server is busy: {exc}", type="rate_limit_error", code="rate_limit_exceeded") from None
    if req.stream:
        return StreamingResponse(_sse(reply, handle, events, req.include_usage), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    try:
        text, last = "", Event()
        while not last.done:
            last = await events.get()
            text += last.text
    finally:
        handle.cancel()  # the client went away: its row leaves the batch
    if last.error:
        raise ApiError(500, f"Generation failed: {last.error}", type="server_error")
    return reply.whole(text, last)


async def _sse(reply: _Reply, handle, events: asyncio.Queue, include_usage: bool):
    try:
        if reply.chat:
            yield _data(reply.chunk({"role": "assistant", "content": ""}))
        while True:
            event: Event = await events.get()
            if event.error:
                yield _data(ApiError(500, f"Generation failed: {event.error}", type="server_error").body())
                break
            if event.text:
                yield _data(reply.chunk({"content": event.text} if reply.chat else event.text))
            if event.done:
                yield _data(reply.chunk({} if reply.chat else "", event.finish_reason))
                if include_usage:
                    yield _data(reply.envelope([], usage=reply.usage(event)))
                break
        yield "data: [DONE]\n\n"
    finally:
        handle.cancel()


def _data(payload: dict) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


class _Reply:
    """The response objects of one request, chat or text completion, whole or in chunks."""

    def __init__(self, chat: bool, model: str):
        self.chat, self.model, self.created = chat, model, int(time.time())
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"

    def envelope(self, choices: list[dict], *, whole: bool = False, usage: dict | None = None) -> dict:
        kind = ("chat.completion" if whole else "chat.completion.chunk") if self.chat else "text_completion"
        out = {"id": self.id, "object": kind, "created": self.created, "model": self.model, "choices": choices}
        return out | ({"usage": usage} if usage is not None else {})

    def chunk(self, delta: dict | str, finish_reason: str | None = None) -> dict:
        if self.chat:
            return self.envelope([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}])
        return self.envelope([{"index": 0, "text": delta, "logprobs": None, "finish_reason": finish_reason}])

    def whole(self, text: str, last: Event) -> dict:
        choice = ({"index": 0, "message": {"role": "assistant", "content": text}} if self.chat
                  else {"index": 0, "text": text})
        choice |= {"logprobs": None, "finish_reason": last.finish_reason}
        return self.envelope([choice], whole=True, usage=self.usage(last))

    @staticmethod
    def usage(last: Event) -> dict:
        return {"prompt_tokens": last.prompt_tokens, "completion_tokens": last.completion_tokens,
                "total_tokens": last.prompt_tokens + last.completion_tokens}
