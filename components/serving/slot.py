"""The model slot: what the demo serves now, hot-swapped to whatever its reference points at.

A reply takes the slot's current `Served` object once, when it starts, and keeps that reference
to its end; a swap only replaces the slot's reference. Each loaded model has its own batching
`Engine` (continuous batching: the replies in flight on it are decoded together; with `engine_threads`
set, in a child process of its own, `engine_process.EngineProcess`, retired at a swap), so the replies
that started on the old model keep decoding on the old engine while new ones batch on the new. So a swap never interrupts a reply in
flight (it finishes on the old weights, which are freed when the last such reply ends) and every
reply that starts after the swap gets the new model. Loads happen outside the lock (the old model
serves while the new one loads) and one at a time; a load that fails leaves the old model serving
and is reported in `status()["last_error"]`. A version is only swapped in if the reference still
points at it once it has loaded, so a version the alias does not (or no longer) point at is never served.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from components.home import Home
from components.serving.engine import Engine
from components.serving.engine_process import EngineProcess, EngineSpec
from components.serving.generate import GenerationSettings, Prompt, PromptTooLong, prepare
from components.serving.refs import Served, Target, load, registry_client, resolve

log = logging.getLogger(__name__)
MAX_CHASES = 3  # an alias that moves during every load this many times in a row is reported, not chased


class ModelSlot:
    def __init__(self, ref: str, *, home: Home | None = None, dtype: str = "auto", max_batch: int = 32,
                 queue_size: int = 256, engine_threads: int | None = None,
                 engine_cores: frozenset[int] | None = None):
        self.ref, self.home, self.dtype = str(ref).strip(), home or Home.resolve(), dtype
        self.max_batch, self.queue_size = max_batch, queue_size
        self.engine_threads = engine_threads  # None: the engine is a thread here; N: a process with N torch threads
        self.engine_cores = engine_cores  # the engine process's own cores (None: where the OS puts it)
        self._engine_lock = threading.Lock()  # one restart at a time of an engine process that died
        self._client = registry_client(self.home) if self.ref.startswith("models:/") else None
        self._served: Served | None = None
        self._lock = threading.Lock()  # the reference and the counters
        self._load_lock = threading.Lock()  # one resolve-and-load at a time
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self.swaps, self.last_error, self.last_check = 0, "", 0.0
        self.counters = {"replies": 0, "tokens": 0, "steps": 0, "active": 0, "too_long": 0}

    def current(self) -> Served:
        served = self._served
        if served is None:
            raise RuntimeError(f"No model is loaded yet for {self.ref}; call refresh() first.")
        return served

    def target_now(self) -> Target:
        return resolve(self.ref, self._client, self.home)

    def refresh(self) -> bool:
        """Serve what the reference points at now; True when a new model was swapped in."""
        with self._load_lock:
            for _ in range(MAX_CHASES):
                target = self.target_now()
                self.last_check = time.time()
                if self._served is not None and self._served.target.ident == target.ident:
                    self.last_error = ""
                    return False
                # with an engine process the weights used here are only read for the generation config: keep
                # them off the GPU (the child owns it) and drop them once the child serves
                served = load(target, self._client, self.home, self.dtype,
                              device="cpu" if self.engine_threads is not None else None)
                if self.target_now().ident == target.ident:
                    self._swap(served)
                    return True
                log.info("%s moved while %s loaded; loading again", self.ref, target.label)
        raise RuntimeError(f"{self.ref} moved during each of {MAX_CHASES} loads in a row; still serving "
                           f"{self._served.target.label if self._served else 'nothing'}.")

    def _swap(self, served: Served) -> None:
        served.engine = self._engine(served)
        with self._lock:
            old, self._served = self._served, served
            self.swaps += old is not None
            self.last_error = ""
        if old is not None:
            old.engine.retire()
        log.info("serving %s (%s)%s", served.target.label, self.ref, f", was {old.target.label}" if old else "")

    def _engine(self, served: Served):
        if self.engine_threads is None:
            return Engine(served, self.max_batch, self.queue_size, self._count)
        spec = EngineSpec(served.target, str(self.home.root), self.dtype, self.engine_threads, self.max_batch,
                          self.queue_size, self.engine_cores)
        engine = EngineProcess(spec, served.context, self._count)
        served.model = None  # the child has its own copy
        return engine

    def engine_of(self, served: Served):
        """The served model's engine; an engine process that died is started again (its replies in flight
        got an error; the next ones are served)."""
        if getattr(served.engine, "error", None) is None:
            return served.engine
        with self._engine_lock:
            if served.engine.error is not None:
                log.warning("restarting the engine of %s: %s", served.target.label, served.engine.error)
                served.engine = self._engine(served)
        return served.engine

    def try_refresh(self) -> bool:
        """refresh(), with a failure recorded in last_error and logged instead of raised."""
        try:
            return self.refresh()
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("refresh of %s failed, still serving the loaded model: %s", self.ref, exc)
            return False

    def watch(self, interval_s: float) -> None:
        """Check the reference every `interval_s` seconds in a background thread (0 = never)."""
        if interval_s <= 0 or self._watcher is not None:
            return
        self._stop.clear()
        self._watcher = threading.Thread(target=self._watch_loop, args=(interval_s,), name="dsllm-watch",
                                         daemon=True)
        self._watcher.start()

    def _watch_loop(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            self.try_refresh()

    def close(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=30)
            self._watcher = None
        if self._served is not None and isinstance(self._served.engine, EngineProcess):
            self._served.engine.close()

    def reply(self, messages: list[dict], settings: GenerationSettings) -> Iterator[str]:
        """Stream a reply with the model served when it starts (a later swap does not touch it).

        Raises PromptTooLong before the first piece when the latest message does not fit.
        """
        served = self.current()
        try:
            prompt = prepare(served, messages, settings)
        except PromptTooLong:
            self._count("too_long", 1)
            raise
        return self._stream(served, prompt, settings)

    def _stream(self, served: Served, prompt: Prompt, settings: GenerationSettings) -> Iterator[str]:
        events = self.engine_of(served).stream(prompt.ids, max_new_tokens=prompt.max_new_tokens,
                                               temperature=settings.temperature, top_p=settings.top_p)
        try:
            for event in events:
                if event.error:
                    raise RuntimeError(f"generation failed: {event.error}")
                if event.text:
                    yield event.text
        finally:
            events.close()  # a reader that left cancels its row now, not when the generator is collected

    def _count(self, key: str, n: int) -> None:
        with self._lock:
            self.counters[key] += n

    def status(self) -> dict[str, Any]:
        """What is served, for /dsllm/version, the page header and the CLI."""
        served, target = self._served, self._served.target if self._served else None
        return {"ref": self.ref, "kind": target.kind if target else None, "label": target.label if target else None,
                "name": target.name if target else None, "alias": target.alias if target else None,
                "version": target.version if target else None, "run_id": target.run_id if target else None,
                "path": target.path if target else None, "context": served.context if served else None,
                "loaded_at": served.loaded_at if served else None, "swaps": self.swaps,
                "last_check": self.last_check, "last_error": self.last_error, **dict(self.counters)}
