"""Continuous batching: the replies in flight on one model are decoded together, one shared step at a time.

One `Engine` per loaded model (a hot-swap makes a new one; the old one finishes its replies and its
thread ends). `submit(ids, ...)` queues a request; a background thread runs the loop:

1. new requests join at a step boundary (up to `max_batch` in flight). While rows are decoding, the joiners'
   prompts are prefilled within the next decode step, in the same forward (`mixed_step`: the weights are read
   once for both; each joiner's first token comes with the rows' next ones). Into an empty batch they are
   prefilled together in one forward (after the keys/values of the prompt prefix they share, the chat template and
   system prompt, computed once: `shared_prefix`; left-padded, masked, each row at its own positions, a fresh
   `DynamicCache` whose layers keep spare rows and columns: `roomy_cache`, so a step writes in place instead
   of copying the cache) and each one's first token sampled, then their keys/values join the batch's
   buffers, their newest column aligned with the others' (20 joiners cost one forward, not 20);
2. one forward step over all rows: the last token of each, a 2-D attention mask that hides each
   row's left padding, explicit per-row position ids (RoPE sees each reply's own positions);
3. a token per row (`sampling.next_tokens`: greedy, or temperature / top-p sampled with the
   request's own seeded generator); rows that hit eos, a stop sequence, their token limit, or whose reader left, leave
   the batch (later rows move into their places: `compaction`), and padding columns no row needs any more are
   cut off (the cache's view starts later). Neither copies the rows that stay.

So a row sees exactly its own tokens at its own positions: greedy replies equal one-at-a-time
generation, and a seeded sampled reply is the same alone or in a batch. Why not transformers'
own continuous batching: it targets paged attention on GPUs and has neither per-request seeded
generators nor stop sequences; the `DynamicCache` kept here is the one `generate` uses.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from components.serving.cpu_attention import NAME as CPU_FLOAT32_ATTENTION
from components.serving.cpu_attention import attend_in_float32, wants_float32_attention
from components.serving.mixed_step import KEYWORD as MIXED_STEP
from components.serving.mixed_step import MIXING, MixedStep, enable_mixed_steps
from components.serving.roomy_cache import compaction, keep_rows, roomy_cache
from components.serving.sampling import next_tokens
from components.serving.shared_prefix import KeysValues, SharedPrefix
from components.serving.textstream import ReplyText

log = logging.getLogger(__name__)
BOOL_MASK_ATTENTION = {"sdpa", CPU_FLOAT32_ATTENTION, *MIXING.values()}
"""Attention implementations that take a boolean [rows, 1, queries, keys] mask (True: attend) as it is."""


class QueueFull(RuntimeError):
    """More requests wait than the engine accepts; try again later."""


@dataclass(frozen=True)
class Event:
    """What a reader gets: a text piece, and on the last event why the reply ended and token counts."""

    text: str = ""
    done: bool = False
    finish_reason: str | None = None  # "stop" (eos or a stop sequence), "length", "cancelled", "error"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None


@dataclass(eq=False)
class Request:
    ids: list[int]
    max_new_tokens: int
    temperature: float
    top_p: float
    sink: Callable[[Event], None]
    text: ReplyText
    generator: torch.Generator | None = None
    generated: int = 0
    cancelled: bool = False
    finished: bool = field(default=False, repr=False)

    def cancel(self) -> None:
        """The reader went away: the row leaves the batch at the next step."""
        self.cancelled = True


class Streams:
    """`stream()` on top of a `submit(ids, sink, **settings)` that returns something with `cancel()`."""

    def submit(self, ids: list[int], sink: Callable[[Event], None], **kwargs): ...

    def stream(self, ids: list[int], **kwargs) -> Iterator[Event]:
        """submit() for a thread: Events as they come; closing the iterator cancels the reply."""
        events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        req = self.submit(ids, events.put, **kwargs)
        try:
            while True:
                event = events.get()
                while not event.done and not events.empty():  # a slow reader gets what piled up as one piece
                    more = events.get()
                    event = Event(event.text + more.text, more.done, more.finish_reason, more.prompt_tokens,
                                  more.completion_tokens, more.error)
                yield event
                if event.done:
                    return
        finally:
            req.cancel()

    def retire(self) -> None:
        """No new requests will come (a newer model is served); replies in flight finish."""


class Engine(Streams):
    def __init__(self, served, max_batch: int = 32, queue_size: int = 256,
                 count: Callable[[str, int], None] | None = None, after_step: Callable[[], None] | None = None):
        self.served, self.model, self.tok = served, served.model, served.tokenizer
        self.max_batch, self.queue_size = max_batch, queue_size
        self.eos = set(_stop_ids(served))
        self._cache_dtype = torch.float32 if wants_float32_attention(self.model) else None
        attend_in_float32(self.model)  # a bf16 model on a CPU: its bf16 attention is slow
        self._mixes = enable_mixed_steps(self.model)  # joiners prefilled within a decode step (`mixed_step`)
        self.pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0  # hidden by the mask
        self._count = count or (lambda key, n: None)
        self._after_step = after_step or (lambda: None)  # once per loop iteration, after its events were handed out
        self._waiting: list[Request] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._rows: list[Request] = []
        self._cache: DynamicCache | None = None
        self._mask = self._pos = self._last = None
        self._prefix = SharedPrefix(self._prefill_prefix)
        self.steps = 0

    # -- requests ---------------------------------------------------------------------------------
    def submit(self, ids: list[int], sink: Callable[[Event], None], *, max_new_tokens: int,
               temperature: float = 0.0, top_p: float = 1.0, stop: tuple[str, ...] = (),
               seed: int | None = None) -> Request:
        """Queue a reply to `ids`; `sink` receives its Events (on the engine's thread, so it must not block)."""
        room = room_for_reply(ids, self.served.context)
        generator = None
        if temperature > 0:
            generator = torch.Generator(device="cpu").manual_seed(
                seed if seed is not None else int.from_bytes(os.urandom(7), "little"))
        req = Request(list(ids), min(int(max_new_tokens), room), float(temperature), float(top_p), sink,
                      ReplyText(self.tok, tuple(stop)), generator)
        with self._lock:
            if len(self._waiting) >= self.queue_size:
                raise QueueFull(f"{len(self._waiting)} requests are waiting already; try again shortly.")
            self._waiting.append(req)
            self._count("active", 1)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="dsllm-engine", daemon=True)
                self._thread.start()
        return req

    def idle(self) -> bool:
        """Nothing in flight: the loop thread has ended (it ends only when no row and no request is left)."""
        with self._lock:
            return self._thread is None and not self._waiting

    # -- the loop ---------------------------------------------------------------------------------
    def _run(self) -> None:
        with torch.inference_mode():
            while True:
                with self._lock:
                    free = self.max_batch - len(self._rows)
                    joining, self._waiting = self._waiting[:free], self._waiting[free:]
                    if not joining and not self._rows:
                        self._thread = None  # a later submit starts a new thread
                        return
                try:
                    if joining and self._rows and self._mixes:
                        self._mixed_step(joining)
                    else:
                        if joining:
                            self._join(joining)
                        if self._rows:
                            self._step()
                except Exception as exc:  # every reply in flight learns why; the engine carries on
                    log.exception("generation step failed")
                    for req in [*self._rows, *joining]:  # _finish skips those already finished
                        self._finish(req, "error", error=f"{type(exc).__name__}: {exc}")
                    self._rows, self._cache = [], None
                self._after_step()

    def _admit(self, joining: list[Request]) -> list[Request]:
        """The joiners still wanted (those cancelled while they waited finish now); the shared prefix learns them."""
        for req in joining:
            if req.cancelled:
                self._finish(req, "cancelled")
        reqs = [req for req in joining if not req.finished]
        if reqs:
            self._prefix.learn([req.ids for req in reqs])
        return reqs

    def _join(self, joining: list[Request]) -> None:
        """Prefill the new prompts, sample each one's first token, stack the rest onto the batch. Those that start
        with the shared prefix (`shared_prefix`) start from a copy of its keys/values; the others prefill whole."""
        reqs = self._admit(joining)
        if not reqs:
            return
        covered = [self._prefix.covers(req.ids) for req in reqs]
        shared = [req for req, yes in zip(reqs, covered, strict=True) if yes]
        whole = [req for req, yes in zip(reqs, covered, strict=True) if not yes]
        for group, prefix in ((shared, self._prefix), (whole, None)):
            if group:
                self._prefill(group, prefix)

    def _prefill(self, reqs: list[Request], prefix: SharedPrefix | None) -> None:
        """One left-padded forward over the prompts (after the prefix's keys/values when given), each row at its
        own positions; then each one's first token, and the rows that go on join the batch."""
        cache = self._prefix_cache(len(reqs) if prefix is not None else 0)
        start = len(prefix.ids) if prefix is not None else 0
        rest = [req.ids[start:] for req in reqs]
        mask = _left_padded_mask(rest, self.model.device)
        ids = torch.tensor([[self.pad] * (mask.shape[1] - len(r)) + r for r in rest], device=mask.device)
        positions = start + (mask.cumsum(1) - 1).clamp(min=0)
        if start:
            mask = torch.cat([mask.new_ones(len(reqs), start), mask], dim=1)
        logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True,
                            logits_to_keep=1).logits[:, -1]
        tokens = next_tokens(logits, reqs).tolist()
        keep = [i for i, (req, token) in enumerate(zip(reqs, tokens, strict=True)) if not self._emit(req, token)]
        if keep:
            order = compaction(keep, len(reqs))
            keep_rows(cache, order)  # moves nothing when every row goes on
            index = torch.tensor(order, device=mask.device)
            self._stack([reqs[i] for i in order], cache, mask[index], torch.tensor(tokens, device=mask.device)[index])

    def _prefill_prefix(self, ids: list[int]) -> KeysValues:
        """The keys/values of `ids` alone (one row, positions from 0): the shared prefix's (in the loop's inference
        mode, as every forward of the engine)."""
        cache = roomy_cache(self.model.config, self._cache_dtype)
        self.model(input_ids=torch.tensor([ids], device=self.model.device), cache=cache, use_cache=True,
                   position_ids=torch.arange(len(ids), device=self.model.device)[None], logits_to_keep=1)
        return [(layer.keys.clone(), layer.values.clone()) for layer in cache.layers]

    def _stack(self, reqs: list[Request], cache: DynamicCache, mask: torch.Tensor, last: torch.Tensor) -> None:
        """Add prefilled requests to the batch: both sides left-padded to the longer cache."""
        pos = mask.sum(1)  # each row's next position: its own token count
        if self._cache is None or not self._rows:
            self._cache, self._mask, self._pos, self._last, self._rows = cache, mask, pos, last, reqs
            return
        width = max(self._mask.shape[1], mask.shape[1])
        for mine, theirs in zip(self._cache.layers, cache.layers, strict=True):
            mine.add_rows(theirs.keys, theirs.values)
        self._mask = torch.cat([_left_pad_mask(self._mask, width), _left_pad_mask(mask, width)])
        self._pos, self._last = torch.cat([self._pos, pos]), torch.cat([self._last, last])
        self._rows.extend(reqs)

    def _step(self) -> None:
        self._mask = F.pad(self._mask, (0, 1), value=1)
        out = self.model(input_ids=self._last[:, None], attention_mask=self._step_mask(), position_ids=self._pos[:, None],
                         cache=self._cache, use_cache=True, logits_to_keep=1)
        self._decoded(next_tokens(out.logits[:, -1], self._rows).tolist())

    def _mixed_step(self, joining: list[Request]) -> None:
        """A decode step for the rows and the joiners' prefills in one forward (`mixed_step`): each joiner's first
        token comes with the rows' next ones, and those that go on join the batch."""
        reqs, device = self._admit(joining), self.model.device
        starts = [len(self._prefix.ids) if self._prefix.covers(req.ids) else 0 for req in reqs]
        rests = [req.ids[start:] for req, start in zip(reqs, starts, strict=True)]
        caches = [self._prefix_cache(1 if start else 0) for start in starts]
        rows, lengths = len(self._rows), [len(rest) for rest in rests]
        self._mask = F.pad(self._mask, (0, 1), value=1)
        step = MixedStep(rows, self._cache, self._step_mask(), caches, lengths)
        ids = torch.cat([self._last, torch.tensor([t for rest in rests for t in rest], dtype=torch.long, device=device)])
        positions = torch.cat([self._pos, *(torch.arange(start, start + n, device=device)
                                            for start, n in zip(starts, lengths, strict=True))])
        keep = torch.cat([torch.arange(rows), rows - 1 + torch.tensor(lengths, dtype=torch.long).cumsum(0)])
        logits = self.model(input_ids=ids[None], attention_mask=step.batch_mask, position_ids=positions[None],
                            use_cache=False, logits_to_keep=keep.to(device), **{MIXED_STEP: step}).logits[0]
        tokens = next_tokens(logits, [*self._rows, *reqs]).tolist()
        self._decoded(tokens[:rows])
        for req, cache, start, n, token in zip(reqs, caches, starts, lengths, tokens[rows:], strict=True):
            if not self._emit(req, token):
                self._stack([req], cache, torch.ones(1, start + n, dtype=torch.long, device=device),
                            torch.tensor([token], device=device))

    def _prefix_cache(self, rows: int) -> DynamicCache:
        """A fresh cache holding the shared prefix's keys/values in `rows` rows (0: an empty cache)."""
        cache = roomy_cache(self.model.config, self._cache_dtype)
        if rows:
            for layer, (keys, values) in zip(cache.layers, self._prefix.rows(rows), strict=True):
                layer.update(keys, values)
        return cache

    def _decoded(self, tokens: list[int]) -> None:
        """A step's token for each row: hand them out; rows that ended leave the batch."""
        self.steps += 1
        self._count("steps", 1)
        self._pos = self._pos + 1
        keep = [i for i, (req, token) in enumerate(zip(self._rows, tokens, strict=True))
                if not self._emit(req, token)]
        if len(keep) < len(self._rows):
            order = compaction(keep, len(self._rows))
            self._select(order)
            tokens = [tokens[i] for i in order]
        self._last = torch.tensor(tokens, device=self.model.device) if keep else None

    def _step_mask(self) -> torch.Tensor:
        """The step's attention mask: for sdpa-style attention the [rows, 1, 1, keys] boolean mask itself, which
        transformers would otherwise rebuild from the 2-D one at every step (0.18 ms of a 6-ms step at 20 rows)."""
        if self.model.config._attn_implementation in BOOL_MASK_ATTENTION:
            return self._mask.bool()[:, None, None, :]
        return self._mask

    def _select(self, order: list[int]) -> None:
        """Keep the rows `order` names (a `compaction`: only rows that fill holes move), then drop the left padding
        columns that no remaining row needs."""
        self._rows = [self._rows[i] for i in order]
        if not order:
            self._cache = None
            return
        index = torch.tensor(order, device=self.model.device)
        keep_rows(self._cache, order)
        self._mask, self._pos = self._mask[index], self._pos[index]
        cut = int((self._mask.cumsum(1) == 0).sum(1).min())  # leading zeros shared by every row
        if cut:
            self._mask = self._mask[:, cut:]
            for layer in self._cache.layers:
                layer.cut(cut)

    def _emit(self, req: Request, token: int) -> bool:
        """Hand the token's text to the reader; True when the reply has ended (the row leaves)."""
        if req.cancelled:
            self._finish(req, "cancelled")
            return True
        req.generated += 1
        self._count("tokens", 1)
        if token in self.eos:
            self._finish(req, "stop", req.text.flush())
            return True
        piece = req.text.push(token)
        if req.text.stopped:
            self._finish(req, "stop", piece)
        elif req.generated >= req.max_new_tokens:
            self._finish(req, "length", piece + req.text.flush())
        elif piece:
            try:
                req.sink(Event(piece))
            except Exception:  # the reader is gone (its event loop closed): drop the row
                req.cancel()
        return req.finished

    def _finish(self, req: Request, reason: str, text: str = "", error: str | None = None) -> None:
        if req.finished:
            return
        req.finished = True
        self._count("active", -1)
        self._count("replies", int(reason in ("stop", "length")))
        try:
            req.sink(Event(text, True, reason, len(req.ids), req.generated, error))
        except Exception:  # a reader that cannot take the last event has gone anyway
            log.debug("could not deliver the end of a reply", exc_info=True)


def room_for_reply(ids: list[int], context: int) -> int:
    """Tokens left for the reply after the prompt; a ValueError when there is none."""
    if not ids or context - len(ids) < 1:
        raise ValueError(f"the prompt takes {len(ids)} of the model's {context} tokens: no room for a reply.")
    return context - len(ids)


def _left_padded_mask(prompts: list[list[int]], device) -> torch.Tensor:
    width = max(len(ids) for ids in prompts)
    return torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prompts], device=device)


def _left_pad_mask(mask: torch.Tensor, width: int) -> torch.Tensor:
    return F.pad(mask, (width - mask.shape[1], 0))


def _stop_ids(served) -> list[int]:
    from components.serving.generate import stop_ids

    return stop_ids(served)
