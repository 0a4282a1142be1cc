"""Log-likelihood scoring and generation with any Hugging Face causal LM.

Scoring is where evaluation time goes, so it reuses work twice over:
- a few-shot prefix (header + shots) shared by many questions is run once; its key/value cache
  is expanded over each batch of questions (`ChoiceRequest.header/shots`);
- each question's context is run once per batch, and the options continue from its cache, so
  single-token options (A/B/C/D) cost nothing more and longer options only their own tokens.
Batches are right-padded; the attention mask hides padding (and, where the tokenizer merges the
end of a context into an option, the context's last tokens), and position ids continue each row.
The output head is applied only at the positions scored, not over the whole batch.

When a prompt is longer than the model's context, trailing shots are dropped first, then the
oldest context tokens.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass

import torch

SENTINEL = "\u2063DSLLM-EVAL-CONTENT\u2063"


@dataclass(frozen=True)
class ChoiceRequest:
    """Score each of `choices` as the continuation of header + shots + context."""

    header: str
    shots: tuple[str, ...]
    context: str
    choices: tuple[str, ...]


@dataclass
class ChoiceScore:
    logprobs: list[float]
    greedy: list[bool]
    shots_used: int


@dataclass(frozen=True)
class GenRequest:
    """Generate after header + shots + context until a stop string or `max_new_tokens`."""

    header: str
    shots: tuple[str, ...]
    context: str
    stop: tuple[str, ...]
    max_new_tokens: int
    n: int = 1
    temperature: float = 0.0


@dataclass
class _Prepared:
    prefix: tuple[int, ...]
    ctx: list[int]
    options: list[tuple[int, list[int]]]  # (context tokens to drop from the end, option tokens)
    shots_used: int


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class HFLM:
    """A causal LM and its tokenizer behind the two calls the tasks need."""

    def __init__(self, model, tokenizer, fingerprint: str, chat: bool | None = None, batch_size: int = 8,
                 max_length: int | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.fingerprint = fingerprint
        self.is_chat = tokenizer.chat_template is not None if chat is None else chat
        if self.is_chat and tokenizer.chat_template is None:
            raise ValueError("Chat prompting was asked for, but the tokenizer has no chat_template; use mode 'base'.")
        self.batch_size = batch_size
        limit = getattr(model.config, "max_position_embeddings", None) or 2048
        self.max_length = min(limit, max_length or limit)
        self.device = next(model.parameters()).device
        self._decoder = getattr(model, model.base_model_prefix, None)
        self._head = model.get_output_embeddings()
        self._prefix_cache: dict[tuple[int, ...], tuple] = {}
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id or 0

    # --- prompts ---------------------------------------------------------------------------------

    @functools.cached_property
    def chat_parts(self) -> tuple[str, str]:
        """The chat template's text before and after one user message (with the generation prompt)."""
        text = self.tokenizer.apply_chat_template([{"role": "user", "content": SENTINEL}], tokenize=False,
                                                  add_generation_prompt=True)
        head, _, tail = text.partition(SENTINEL)
        return head, tail

    def _encode(self, texts: list[str], special: bool) -> list[list[int]]:
        return self.tokenizer(texts, add_special_tokens=special)["input_ids"]

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - one model per instance; the cache is the point
    def _prefix_ids(self, header: str, shots: tuple[str, ...], k: int) -> tuple[int, ...]:
        return tuple(self._encode([header + "".join(shots[:k])], self._special(header))[0])

    def _special(self, header: str) -> bool:
        """Let the tokenizer add its special tokens (BOS) unless the text already starts with BOS (chat templates)."""
        bos = self.tokenizer.bos_token
        return not (bos and header.startswith(bos))

    def _fit_shots(self, header: str, shots: tuple[str, ...], need: int) -> int:
        k = len(shots)
        while k > 0 and len(self._prefix_ids(header, shots, k)) + need > self.max_length:
            k -= 1
        return k

    def _joint(self, header: str, shots: tuple[str, ...], k: int, context: str) -> tuple[tuple[int, ...], list[int]]:
        """Prefix and context tokens as the model sees them together (a merge across the seam shortens the prefix)."""
        prefix = self._prefix_ids(header, shots, k)
        joint = self._encode([header + "".join(shots[:k]) + context], self._special(header))[0]
        n = common_prefix(list(prefix), joint)
        return prefix[:n], joint[n:]

    def _prepare(self, req: ChoiceRequest) -> _Prepared:
        if not req.choices or any(not c for c in req.choices):
            raise ValueError("Every choice must be a non-empty string")
        encoded = self._encode([req.context] + [req.context + c for c in req.choices], False)
        alone, options = encoded[0], []
        for full in encoded[1:]:
            n = common_prefix(alone, full)
            options.append((len(alone) - n, full[n:]))
        longest = max(len(o) for _, o in options)
        k = self._fit_shots(req.header, req.shots, len(alone) + longest)
        prefix, ctx = self._joint(req.header, req.shots, k, req.context)
        excess = len(prefix) + len(ctx) + longest - self.max_length
        if excess > 0:
            ctx = ctx[excess:]
        if not prefix and not ctx:
            raise ValueError("Cannot score a continuation of an empty prompt (the tokenizer adds no BOS)")
        return _Prepared(prefix, ctx, options, k)

    # --- scoring ---------------------------------------------------------------------------------

    @torch.inference_mode()
    def loglikelihood(self, requests: list[ChoiceRequest]) -> list[ChoiceScore]:
        """Log-probabilities (nats) of each choice, and whether greedy decoding would produce it."""
        prepared = [self._prepare(r) for r in requests]
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, item in enumerate(prepared):
            groups[item.prefix].append(i)
        results: list[ChoiceScore | None] = [None] * len(requests)
        for prefix, indices in groups.items():
            indices.sort(key=lambda i: len(prepared[i].ctx))
            for start in range(0, len(indices), self.batch_size):
                batch = indices[start:start + self.batch_size]
                for i, score in zip(batch, self._score_batch(prefix, [prepared[i] for i in batch]), strict=True):
                    results[i] = score
        return results  # type: ignore[return-value]

    def _forward(self, ids, mask, positions, cache):
        out = self._decoder(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True)
        return out.last_hidden_state, out.cache

    def _logprobs(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self._head(hidden).float(), dim=-1)

    def _prefix_state(self, prefix: tuple[int, ...]):
        """(per-layer key/values, last hidden state) of a shared prefix, computed once."""
        if prefix not in self._prefix_cache:
            ids = torch.tensor([prefix], device=self.device)
            hidden, cache = self._forward(ids, torch.ones_like(ids), torch.arange(len(prefix), device=self.device)[None],
                                          None)
            self._prefix_cache = {prefix: ([(layer.keys, layer.values) for layer in cache.layers], hidden[0, -1])}
        return self._prefix_cache[prefix]

    def _score_batch(self, prefix: tuple[int, ...], items: list[_Prepared]) -> list[ChoiceScore]:
        from transformers import DynamicCache

        b, p, width = len(items), len(prefix), max(max(len(it.ctx) for it in items), 1)
        ids = torch.full((b, width), self.pad_id, device=self.device)
        mask = torch.zeros((b, width), dtype=torch.long, device=self.device)
        for j, it in enumerate(items):
            ids[j, :len(it.ctx)] = torch.tensor(it.ctx, dtype=torch.long)
            mask[j, :len(it.ctx)] = 1
        cache, last_prefix = None, None
        if p:
            layers, last_prefix = self._prefix_state(prefix)
            cache = DynamicCache([(k.expand(b, -1, -1, -1), v.expand(b, -1, -1, -1)) for k, v in layers])
            mask = torch.cat([torch.ones((b, p), dtype=torch.long, device=self.device), mask], dim=1)
        positions = (p + torch.arange(width, device=self.device))[None].expand(b, -1)
        hidden, cache = self._forward(ids, mask, positions, cache)
        first = self._first_token_logprobs(items, hidden, last_prefix)
        return self._continue_options(items, first, cache, mask, p)

    def _first_token_logprobs(self, items, hidden, last_prefix) -> list[torch.Tensor]:
        """Log-probs of the next token after each option's context (one row per option)."""
        rows = []
        for j, it in enumerate(items):
            for trim, _ in it.options:
                end = len(it.ctx) - trim
                rows.append(hidden[j, end - 1] if end > 0 else last_prefix)
        return list(self._logprobs(torch.stack(rows)))

    def _continue_options(self, items, first, cache, mask, p) -> list[ChoiceScore]:
        from transformers import DynamicCache

        flat = [(j, trim, opt) for j, it in enumerate(items) for trim, opt in it.options]
        scores = [(float(first[r][opt[0]]), bool(first[r].argmax() == opt[0])) for r, (_, _, opt) in enumerate(flat)]
        longer = [r for r, (_, _, opt) in enumerate(flat) if len(opt) > 1]
        if longer:
            rows = torch.tensor([flat[r][0] for r in longer], device=self.device)
            width = max(len(flat[r][2]) - 1 for r in longer)
            ids = torch.full((len(longer), width), self.pad_id, device=self.device)
            opt_mask = torch.zeros((len(longer), width), dtype=torch.long, device=self.device)
            ctx_mask = mask[rows].clone()
            starts = []
            for n, r in enumerate(longer):
                j, trim, opt = flat[r]
                end = p + len(items[j].ctx) - trim
                ctx_mask[n, end:] = 0
                ids[n, :len(opt) - 1] = torch.tensor(opt[:-1], dtype=torch.long)
                opt_mask[n, :len(opt) - 1] = 1
                starts.append(end)
            positions = torch.tensor(starts, device=self.device)[:, None] + torch.arange(width, device=self.device)
            sub = DynamicCache([(layer.keys[rows], layer.values[rows]) for layer in cache.layers])
            hidden, _ = self._forward(ids, torch.cat([ctx_mask, opt_mask], 1), positions, sub)
            for n, r in enumerate(longer):
                opt = flat[r][2]
                lp = self._logprobs(hidden[n, :len(opt) - 1])
                target = torch.tensor(opt[1:], device=self.device)
                total = scores[r][0] + float(lp.gather(1, target[:, None]).sum())
                scores[r] = (total, scores[r][1] and bool((lp.argmax(-1) == target).all()))
        return self._pack_scores(items, scores)

    @staticmethod
    def _pack_scores(items, scores) -> list[ChoiceScore]:
        out, r = [], 0
        for it in items:
            mine = scores[r:r + len(it.options)]
            r += len(it.options)
            out.append(ChoiceScore([s for s, _ in mine], [g for _, g in mine], it.shots_used))
        return out

    # --- generation ------------------------------------------------------------------------------

    @torch.inference_mode()
    def generate(self, requests: list[GenRequest], seed: int = 0) -> list[list[str]]:
        """`n` completions per request, each cut at its first stop string."""
        prompts = [self._gen_prompt(r) for r in requests]
        order = sorted(range(len(requests)), key=lambda i: (self._gen_key(requests[i]), len(prompts[i])))
        results: list[list[str]] = [[] for _ in requests]
        start = 0
        while start < len(order):
            key = self._gen_key(requests[order[start]])
            batch = [i for i in order[start:start + self.batch_size] if self._gen_key(requests[i]) == key]
            start += len(batch)
            torch.manual_seed(seed)
            for i, texts in zip(batch, self._generate_batch([prompts[i] for i in batch], requests[batch[0]]),
                                strict=True):
                results[i] = texts
        return results

    @staticmethod
    def _gen_key(r: GenRequest):
        return (r.stop, r.max_new_tokens, r.n, r.temperature)

    def _new_tokens(self, r: GenRequest) -> int:
        """The generation budget, capped at half the context so a prompt always keeps the other half."""
        return min(r.max_new_tokens, self.max_length // 2)

    def _gen_prompt(self, r: GenRequest) -> list[int]:
        alone = len(self._encode([r.context], False)[0])
        budget = self._new_tokens(r)
        k = self._fit_shots(r.header, r.shots, alone + budget)
        prefix, ctx = self._joint(r.header, r.shots, k, r.context)
        ids = list(prefix) + ctx
        return ids[max(0, len(ids) + budget - self.max_length):]

    def _generate_batch(self, prompts: list[list[int]], r: GenRequest) -> list[list[str]]:
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, device=self.device)
        mask = torch.zeros_like(ids)
        for j, p in enumerate(prompts):  # left padding: generation continues from the right edge
            ids[j, width - len(p):] = torch.tensor(p, dtype=torch.long)
            mask[j, width - len(p):] = 1
        sample = r.n > 1 or r.temperature > 0
        out = self.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=self._new_tokens(r),
                                  do_sample=sample, temperature=r.temperature if sample else None,
                                  top_p=None, top_k=None, num_return_sequences=r.n,
                                  stop_strings=list(r.stop) or None, tokenizer=self.tokenizer,
                                  pad_token_id=self.pad_id)
        texts = self.tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
        cut = [cut_at_stop(t, r.stop) for t in texts]
        return [cut[j * r.n:(j + 1) * r.n] for j in range(len(prompts))]


def cut_at_stop(text: str, stop: tuple[str, ...]) -> str:
    ends = [text.find(s) for s in stop if s and s in text]
    return text[:min(ends)] if ends else text
