"""The evaluation harness: registered tasks, a code sandbox, a scorecard.

- `registry.TASKS` / `get_task(name)`: tasks as data (source, split, prompt format, few-shot count,
  metric); `choice.py` (MMLU, C-Eval, CMMLU, HellaSwag, ARC), `generation.py` (GSM8K, MATH),
  `code.py` (HumanEval, MBPP), `bpb.py` (bits per byte on a pack's validation shards).
- `runner.evaluate(model, tasks, limit, ...)`: the one entry point (the CLI `dsllm eval` and the
  `evaluate` stage in `stage.py` call it); `model.load_model` takes an HF directory, a dsllm://
  artifact or `models:/NAME@ALIAS`; `lm.HFLM` scores and generates in batches with shared-prefix
  reuse; `cache.ResultCache` keeps results per (model, task, sample, prompt).
- `sandbox.Sandbox`: one isolated process per generated program.
- `report.py`: scorecard beside DeepSeek LLM's published numbers (and the head-to-head result), MLflow logging.
- `judge/`: the LLM-judged tasks (pairwise, graded, exam) against any OpenAI-compatible judge endpoint.
"""
