"""Judged evaluation: an LLM judge (any OpenAI-compatible endpoint) grades open-ended answers.

- `client.Endpoint`: the official `openai` client on a configured endpoint (URL, model, key from a named
  environment variable), requests in parallel, failures kept as replies with an error, never raised.
- `contestants`: who answers (a registered version, a model directory, or an endpoint), two turns each.
- `prompts`: the project's question set (`data/questions.jsonl`, English and Chinese, eight categories),
  the judge's instructions, and the parsers of its verdicts (`[[A]]`/`[[B]]`/`[[C]]`, `Rating: [[7]]`).
- `pairwise` (MT-Bench style, both orders), `graded` (a 1-10 score with a rubric, AlignBench style) and
  `exam` (free-form exam problems graded in points against reference solutions).
- `tasks.run_judged(task, session, model_ref)`: what the harness's runner calls for these tasks.
"""
