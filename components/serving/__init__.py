"""Serving for the chat demo: load a model from the registry or a directory, stream replies, hot-swap.

- `refs.resolve(ref)` → `Target` (which concrete model `models:/NAME@ALIAS`, `models:/NAME/VERSION`,
  a `dsllm://` artifact or an HF directory points at now); `refs.load(target)` → `Served`.
- `generate.prepare` / `generate.stream`: chat template, system prompt, temperature / top-p / max new
  tokens, context check (`PromptTooLong`), streamed text, stop at eos.
- `engine.Engine(served)`: continuous batching; the replies in flight on one model decoded together
  (shared forward step, per-request KV cache rows and positions, seeded sampling, stop sequences);
  `textstream.ReplyText`: token ids to streamed text.
- `slot.ModelSlot(ref)`: the served model, swapped atomically when the reference moves (`refresh()`,
  `watch(interval_s)`); replies in flight keep the model (and engine) they started with.
- `api.install(app, slot, cfg)`: the OpenAI-compatible API (/v1) on the demo's app; `api_schema`:
  its request bodies and error shape.
- `card`: the model card shown beside the chat (registry description, lineage tags, metrics, plots).

Reads the MLflow registry only through its public client API; never writes it. Nothing is imported
here, so `config` (what the CLI needs) loads without torch.
"""
