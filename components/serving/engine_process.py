"""The batching engine in a process of its own, so decoding never waits for the web server's GIL.

Every torch op releases Python's GIL and must take it back afterwards. With the engine as a thread
of the demo process, each of a decode step's few hundred ops waited for Gradio's event loop and
request threads to let go of the GIL: at 20 chat sessions the engine's thread spent more than half
of its time waiting for it and a step took 3x as long as in a quiet process. So the demo runs the
`Engine` in a child process (spawned, one per loaded model; vLLM and TGI split their servers the
same way) and talks to it over two pipes:

- requests go down as `("submit", id, ids, settings)` / `("cancel", id)` / `("retire",)`;
- events come up in batches (whatever piled up since the last send): `(id, Event)` for a reply,
  `(None, (counter, n))` for the demo's counters (summed per batch), so `status()` counts tokens as they
  are made; replies in flight (`active`) are counted here, where a child that dies cannot miss them.

`EngineProcess` has the `Engine`'s interface (`submit`, `stream`, `retire`), so the slot and the
OpenAI API use either. A request whose process died gets an error event at once (never a hang).
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from components.serving.cores import pin_process
from components.serving.engine import Event, QueueFull, Streams, room_for_reply
from components.serving.malloc import keep_freed_memory

log = logging.getLogger(__name__)
START_TIMEOUT_S = 600.0  # loading a large model from a registry can take minutes


@dataclass(frozen=True)
class EngineSpec:
    """What the child needs to load the model and run the engine (picklable)."""

    target: Any  # refs.Target
    home: str
    dtype: str
    threads: int
    max_batch: int
    queue_size: int
    cores: frozenset[int] | None = None  # the engine's own cores (`cores.split_cores`); None: the parent's


@dataclass(eq=False)
class Handle:
    """A request in flight in the engine process; cancel() makes its row leave at the next step."""

    rid: int
    owner: EngineProcess

    def cancel(self) -> None:
        self.owner._send(("cancel", self.rid))


class EngineProcess(Streams):
    def __init__(self, spec: EngineSpec, context: int, count: Callable[[str, int], None] | None = None):
        self.spec, self.context = spec, context
        self._count = count or (lambda key, n: None)
        self._sinks: dict[int, Callable[[Event], None]] = {}
        self._ids, self._lock, self._send_lock = itertools.count(), threading.Lock(), threading.Lock()
        self.error: str | None = None
        ctx = multiprocessing.get_context("spawn")  # never fork a process with threads (and CUDA)
        requests_in, self._requests = ctx.Pipe(duplex=False)
        self._events, events_out = ctx.Pipe(duplex=False)
        self._process = ctx.Process(target=_child_main, args=(spec, requests_in, events_out), daemon=True,
                                    name=f"dsllm-engine-{spec.target.label}")
        self._process.start()
        requests_in.close()
        events_out.close()
        self._wait_ready()
        self._reader = threading.Thread(target=self._read, name="dsllm-engine-events", daemon=True)
        self._reader.start()

    def _wait_ready(self) -> None:
        if not self._events.poll(START_TIMEOUT_S):
            self._process.kill()
            raise RuntimeError(f"the engine process for {self.spec.target.label} did not start in "
                               f"{START_TIMEOUT_S:.0f} s")
        try:
            kind, detail = self._events.recv()
        except EOFError:
            kind, detail = "failed", f"it exited with code {self._process.exitcode}"
        if kind != "ready":
            self._process.join(timeout=5)
            raise RuntimeError(f"the engine process could not load {self.spec.target.label}: {detail}")

    def submit(self, ids: list[int], sink: Callable[[Event], None], *, max_new_tokens: int,
               temperature: float = 0.0, top_p: float = 1.0, stop: tuple[str, ...] = (),
               seed: int | None = None) -> Handle:
        """Queue a reply to `ids` in the engine process; `sink` gets its Events on the reader thread."""
        room_for_reply(ids, self.context)
        with self._lock:
            if self.error:
                raise RuntimeError(f"the engine process has stopped: {self.error}")
            if len(self._sinks) >= self.spec.max_batch + self.spec.queue_size:
                raise QueueFull(f"{len(self._sinks) - self.spec.max_batch} requests are waiting already; "
                                "try again shortly.")
            rid = next(self._ids)
            self._sinks[rid] = sink
        self._count("active", 1)  # counted here, not in the child: a child that dies cannot count its replies out
        settings = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p,
                    "stop": tuple(stop), "seed": seed}
        self._send(("submit", rid, list(ids), settings))
        return Handle(rid, self)

    def retire(self) -> None:
        """No new requests will come: the process ends once its replies in flight have finished."""
        self._send(("retire",))

    def close(self) -> None:
        """End the process now (replies in flight get an error event)."""
        self._process.kill()
        self._process.join(timeout=10)

    def _send(self, message: tuple) -> None:
        try:
            with self._send_lock:
                self._requests.send(message)
        except (OSError, ValueError):  # the process is gone: the reader reports it to every reply
            pass

    def _read(self) -> None:
        try:
            while True:
                for rid, item in self._events.recv():
                    self._deliver(rid, item)
        except (EOFError, OSError):
            pass
        self._process.join(timeout=10)
        self._fail_all(f"the engine process exited (code {self._process.exitcode})")

    def _deliver(self, rid: int | None, item) -> None:
        if rid is None:
            self._count(*item)
            return
        sink = self._sinks.get(rid)
        if item.done:
            with self._lock:
                self._sinks.pop(rid, None)
            self._count("active", -1)
        if sink is not None:
            try:
                sink(item)
            except Exception:  # a reader that went away; its row was or will be cancelled
                log.debug("could not deliver an event", exc_info=True)

    def _fail_all(self, why: str) -> None:
        with self._lock:
            self.error, sinks, self._sinks = why, list(self._sinks.values()), {}
        if sinks:
            log.error("%s; %d replies in flight fail", why, len(sinks))
            self._count("active", -len(sinks))
        for sink in sinks:
            try:
                sink(Event(done=True, finish_reason="error", error=why))
            except Exception:
                log.debug("could not deliver the error", exc_info=True)


# -- the child ----------------------------------------------------------------------------------------
def _child_main(spec: EngineSpec, requests, events) -> None:
    """Load the model, then serve requests until retired (and idle) or the parent goes away."""
    if spec.cores:  # before torch starts its threads, which inherit the cores
        pin_process(spec.cores)
    keep_freed_memory()
    outbox = StepOutbox()

    def count(key: str, n: int) -> None:
        if key != "active":  # the parent counts replies in and out itself
            outbox.add((None, (key, n)))

    try:
        engine = _child_engine(spec, count, outbox.flush)
    except BaseException as exc:  # the parent raises it with this text
        events.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    sender = threading.Thread(target=_send_events, args=(outbox, events), name="dsllm-engine-send", daemon=True)
    sender.start()
    events.send(("ready", None))
    _serve_requests(engine, requests, outbox)
    outbox.close()  # retired and idle: the last events go up before the process ends
    sender.join(timeout=30)


def _child_engine(spec: EngineSpec, count: Callable[[str, int], None], after_step: Callable[[], None]):
    import torch

    from components.home import Home
    from components.serving.engine import Engine
    from components.serving.refs import load

    torch.set_num_threads(spec.threads)
    served = load(spec.target, None, Home.resolve(spec.home), spec.dtype, card=False)
    return Engine(served, spec.max_batch, spec.queue_size, count, after_step)


def _serve_requests(engine, requests, outbox: StepOutbox) -> None:
    handles: dict[int, Any] = {}
    retired = False
    while not (retired and engine.idle()):
        if retired and not requests.poll(0.1):
            continue
        try:
            message = requests.recv()
        except EOFError:  # the parent is gone
            return
        if message[0] == "submit":
            _, rid, ids, settings = message
            handles[rid] = _submit(engine, rid, ids, settings, outbox)
        elif message[0] == "cancel" and message[1] in handles:
            handles.pop(message[1]).cancel()
        elif message[0] == "retire":
            retired = True
        handles = {rid: h for rid, h in handles.items() if h is not None and not h.finished}


def _submit(engine, rid: int, ids: list[int], settings: dict, outbox: StepOutbox):
    def sink(event: Event) -> None:
        outbox.add((rid, event))

    try:
        return engine.submit(ids, sink, **settings)
    except (ValueError, QueueFull) as exc:
        sink(Event(done=True, finish_reason="error", error=str(exc)))
        outbox.flush()  # no step of the engine sends it
        return None


class StepOutbox:
    """What the engine's thread hands up: events and counter increments gathered during a step (`add`) and
    queued for the sender as one list when the step ends (`flush`), so the sender thread wakes once per step,
    not once per token of every row. With the engine process on one core, each wake-up was a thread switch
    and a GIL hand-over in the middle of the engine's step."""

    def __init__(self):
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self._items: list = []
        self._lock = threading.Lock()

    def add(self, item: tuple) -> None:
        with self._lock:
            self._items.append(item)

    def flush(self) -> None:
        with self._lock:
            items, self._items = self._items, []
        if items:
            self.queue.put(items)

    def close(self) -> None:
        self.flush()
        self.queue.put(None)


def _send_events(outbox: StepOutbox, events) -> None:
    """Everything that piled up since the last send goes up as one message, until the None at the end."""
    done = False
    while not done:
        batches = [outbox.queue.get()]
        while True:
            try:
                batches.append(outbox.queue.get_nowait())
            except queue.Empty:
                break
        done = batches[-1] is None
        try:
            events.send(_counts_first([item for items in batches if items for item in items]))
        except (OSError, ValueError):
            return


def _counts_first(batch: list) -> list:
    """The batch's counter increments summed (one per counter, ahead of the events: a counter may run ahead
    of a reply's events, never behind them), then its events in order."""
    totals: dict[str, int] = {}
    for item in batch:
        if item[0] is None:
            key, n = item[1]
            totals[key] = totals.get(key, 0) + n
    events = [item for item in batch if item[0] is not None]
    return [(None, (key, n)) for key, n in totals.items()] + events
