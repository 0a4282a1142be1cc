"""The dsllm chat demo: a Gradio Blocks app mounted on FastAPI, serving one model slot.

Pages: a chat tab (streamed replies; system prompt, temperature, top-p and max new tokens beside
it) and a model card tab (version, aliases, scorecard, lineage tags, metrics, training curves).
The settings sit in a sidebar. A header on top of every page names the served version and refreshes itself, so it changes after
a swap without a reload. The Gradio API endpoint is `/chat` (gradio_client:
`Client(url).predict(message, system_prompt, temperature, top_p, max_new_tokens, api_name="/chat")`).

Beside Gradio, two plain HTTP routes for deploy_demo and scripts: `GET /dsllm/version` (what is
served, as JSON) and `POST /dsllm/reload` (check the reference now and swap when it moved; replies
with the new state once it is served). Neither can make the demo serve anything but what its
reference points at. The slot also checks the reference every `poll_s` seconds. And the
OpenAI-compatible API under `/v1` (`components.serving.api`), on the same port, slot and batching
engine: chat users and API clients are decoded together and see the same hot-swap.

Run: `python -m ui.app [--model REF] [--port N]` (or `dsllm demo up`); settings in `DemoConfig`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time

import gradio as gr
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from components.serving import api
from components.serving.config import DemoConfig
from components.serving.cores import pin_process
from components.serving.generate import DEFAULT_SYSTEM
from components.serving.malloc import keep_freed_memory
from components.serving.slot import ModelSlot
from ui.chat import STREAM_INTERVAL_S, card_view, chat_fn, header

log = logging.getLogger("dsllm.demo")
PAGE_REFRESH_S = 3.0  # how often an open page re-reads which version is served


def build_blocks(slot: ModelSlot, stream_interval_s: float = STREAM_INTERVAL_S) -> gr.Blocks:
    """The page: header, chat tab with settings, model card tab; the header and card follow swaps.
    A streamed reply updates at most once per `stream_interval_s` (the first piece at once)."""
    with gr.Blocks(title="dsllm chat") as blocks:
        top = gr.Markdown(header(slot.status()), elem_id="dsllm-header")
        shown = gr.State("")  # which loaded model this page's card shows
        with gr.Sidebar(label="Settings", position="right", open=True):
            gr.Markdown("**Settings** (apply to the next message)")
            settings = _settings_inputs()
        with gr.Tab("Chat"):
            message = gr.Textbox(placeholder="Type a message (English or 中文)…", elem_id="dsllm-message", scale=7,
                                 autofocus=True, submit_btn=True, stop_btn=True, render=False)
            gr.ChatInterface(chat_fn(slot, stream_interval_s), additional_inputs=settings, api_name="chat",
                             fill_height=False, textbox=message,
                             chatbot=gr.Chatbot(elem_id="dsllm-chatbot", height=480, render=False))
        with gr.Tab("Model card"):
            card_md = gr.Markdown(elem_id="dsllm-card")
            gallery = gr.Gallery(label="Scorecard and training curves", columns=3, height=420, object_fit="contain",
                                 preview=False, elem_id="dsllm-gallery")
        outputs = [top, card_md, gallery, shown]
        refresh = _page_refresher(slot)
        blocks.load(refresh, [shown], outputs, api_visibility="undocumented", show_progress="hidden")
        gr.Timer(PAGE_REFRESH_S).tick(refresh, [shown], outputs, api_visibility="undocumented",
                                      show_progress="hidden", concurrency_limit=None)
    return blocks


def _settings_inputs() -> list[gr.components.Component]:
    return [gr.Textbox(DEFAULT_SYSTEM, label="System prompt", lines=3, elem_id="dsllm-system"),
            gr.Slider(0.0, 2.0, value=0.7, step=0.05, label="Temperature (0 = greedy)", elem_id="dsllm-temperature"),
            gr.Slider(0.05, 1.0, value=0.95, step=0.01, label="Top-p", elem_id="dsllm-top-p"),
            gr.Slider(1, 2048, value=256, step=1, label="Max new tokens", elem_id="dsllm-max-tokens")]


def _page_refresher(slot: ModelSlot):
    def refresh(shown: str):
        status = slot.status()
        loaded = f"{status['ref']}|{status['version']}|{status['path']}|{status['loaded_at']}"
        if loaded == shown:
            return header(status), gr.skip(), gr.skip(), shown
        card_md, images = card_view(slot)
        return header(status), card_md, images, loaded

    return refresh


def build_app(slot: ModelSlot, cfg: DemoConfig) -> FastAPI:
    """FastAPI with the /dsllm routes, and the Gradio app (queued, optional login) mounted at /."""
    app = FastAPI(title="dsllm demo", docs_url=None, redoc_url=None)

    @app.get("/dsllm/version")
    def version() -> dict:
        return slot.status()

    @app.post("/dsllm/reload")
    def reload():
        try:
            slot.refresh()
        except Exception as exc:  # the old model keeps serving; the caller learns why
            slot.last_error = f"{type(exc).__name__}: {exc}"
            return JSONResponse(slot.status(), status_code=503)
        return slot.status()

    api.install(app, slot, cfg)  # /v1: the OpenAI-compatible API on the same slot, engine and port
    blocks = build_blocks(slot, cfg.stream_interval_s).queue(default_concurrency_limit=cfg.concurrency,
                                                             max_size=cfg.queue_size)
    return gr.mount_gradio_app(app, blocks, path="/", auth=cfg.credentials, server_name=cfg.host,
                               server_port=cfg.port, allowed_paths=[str(slot.home.cache / "demo")],
                               footer_links=["api"], ssr_mode=False)


class Server:
    """The app on uvicorn in a background thread (tests, benchmarks); `serve()` is the blocking form."""

    def __init__(self, slot: ModelSlot, cfg: DemoConfig):
        import uvicorn

        self.slot, self.cfg = slot, cfg
        config = uvicorn.Config(build_app(slot, cfg), host=cfg.host, port=cfg.port, log_level="warning",
                                timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="dsllm-demo", daemon=True)

    @property
    def url(self) -> str:
        return self.cfg.url

    def start(self, timeout_s: float = 60.0) -> Server:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the demo server did not start on {self.url}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self.slot.close()


def open_slot(cfg: DemoConfig, engine_cores: frozenset[int] | None = None) -> ModelSlot:
    """The slot with its first model loaded and the reference watched (torch threads set first); an engine
    process runs on `engine_cores` when given."""
    import torch

    own_process = cfg.engine == "process"
    torch.set_num_threads(1 if own_process else cfg.torch_threads)  # with an engine process, this one only tokenizes
    if not own_process:
        keep_freed_memory()  # the engine decodes in this process (an engine process does it itself)
    slot = ModelSlot(cfg.model, dtype=cfg.dtype, max_batch=cfg.concurrency, queue_size=cfg.queue_size,
                     engine_threads=cfg.torch_threads if own_process else None, engine_cores=engine_cores)
    slot.refresh()
    slot.watch(cfg.poll_s)
    return slot


def serve(cfg: DemoConfig) -> None:
    import uvicorn

    split = cfg.core_split()
    if split:
        pin_process(split.server)
        log.info("engine on cores %s, web server on %s", sorted(split.engine), sorted(split.server))
    slot = open_slot(cfg, split.engine if split else None)
    log.info("serving %s (%s) at %s", slot.current().target.label, cfg.model, cfg.url)
    try:
        uvicorn.run(build_app(slot, cfg), host=cfg.host, port=cfg.port, log_level="warning",
                    timeout_graceful_shutdown=5)
    finally:
        slot.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ui.app", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="models:/NAME@ALIAS, models:/NAME/VERSION, dsllm:// or a directory")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--poll-s", type=float, dest="poll_s", help="seconds between alias checks (0 = off)")
    parser.add_argument("--concurrency", type=int)
    parser.add_argument("--queue-size", type=int, dest="queue_size")
    parser.add_argument("--dtype")
    parser.add_argument("--threads", type=int, help="torch threads on a CPU (0 = all cores but one)")
    parser.add_argument("--engine", choices=("process", "thread"), help="decode in a child process or a thread")
    parser.add_argument("--pin", action=argparse.BooleanOptionalAction, default=None,
                        help="the engine process and the web server on separate cores (default: on)")
    parser.add_argument("--stream-interval-s", type=float, dest="stream_interval_s",
                        help="least seconds between two updates of a streamed chat reply (0 = every piece)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = DemoConfig.resolve(**vars(parser.parse_args(argv)))
        serve(cfg)
    except (ValueError, LookupError, FileNotFoundError) as exc:
        print(f"dsllm demo: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
