"""Tokenizer encode throughput: the trained sentencepiece model against HF `tokenizers` with the same vocabulary.

A tokenizer is trained by the project's own code on a real mixed corpus and exported; the HF side
loads the exported tokenizer.json with the Rust `tokenizers` library (the fast tokenizer, same ids).
Both encode the same held-out texts, single-threaded and batched over all threads, interleaved.
Also reported: compression (characters and UTF-8 bytes per token) per language.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import args, corpus_texts, emit, interleaved, machine, summary  # noqa: E402
from components.tokenizer import hf  # noqa: E402
from components.tokenizer.report import compression  # noqa: E402
from components.tokenizer.train import train  # noqa: E402


def main() -> None:
    import sentencepiece as spm
    from tokenizers import Tokenizer

    a = args(__doc__.splitlines()[0])
    chars, vocab = (80_000, 2000) if a.quick else (1_500_000, 8000)
    docs = corpus_texts(chars, ["wiki", "c4", "shakespeare", "peoples_daily", "reviews", "stdlib"])
    train_docs, test_docs = docs[0::2], docs[1::2]
    with tempfile.TemporaryDirectory() as tmp:
        train([t for _, _, t in train_docs], vocab, 0.9995, Path(tmp) / "m.model")
        hf.export(Path(tmp) / "m.model", Path(tmp) / "hf")
        sp = spm.SentencePieceProcessor(model_file=str(Path(tmp) / "hf" / "tokenizer.model"))
        fast = Tokenizer.from_file(str(Path(tmp) / "hf" / "tokenizer.json"))
    texts = [t for _, _, t in test_docs]
    mb = sum(len(t.encode()) for t in texts) / 1e6
    threads = os.cpu_count() or 1
    fns = {"sentencepiece_1t": lambda: [sp.encode(t) for t in texts],
           "hf_tokenizers_1t": lambda: [fast.encode(t, add_special_tokens=False) for t in texts],
           f"sentencepiece_{threads}t": lambda: sp.encode(texts, num_threads=threads),
           f"hf_tokenizers_{threads}t": lambda: fast.encode_batch(texts, add_special_tokens=False)}
    assert [e.ids for e in fast.encode_batch(texts[:50], add_special_tokens=False)] == sp.encode(texts[:50])
    times = interleaved(fns, a.repeats or (3 if a.quick else 7))
    speed = {k: round(mb / summary(v)["median"], 2) for k, v in times.items()}
    by_lang: dict[str, list[str]] = {}
    for _, bucket, text in test_docs:
        by_lang.setdefault(bucket, []).append(text)
    comp = compression(sp, by_lang)
    result = {"benchmark": "tokenizer", "machine": machine(),
              "config": {"vocab_size": vocab, "test_mb": round(mb, 3), "test_docs": len(texts), "threads": threads},
              "seconds": {k: summary(v) for k, v in times.items()}, "mb_per_s": speed, "compression": comp,
              "ratios": {"single_thread_vs_hf": round(speed["sentencepiece_1t"] / speed["hf_tokenizers_1t"], 2),
                         "all_threads_vs_hf": round(speed[f"sentencepiece_{threads}t"] /
                                                    speed[f"hf_tokenizers_{threads}t"], 2)}}
    rows = [[k, v] for k, v in speed.items()] + [[f"ratio {k}", v] for k, v in result["ratios"].items()]
    rows += [[f"{b} chars/token, bytes/token", f"{c['chars_per_token']}, {c['bytes_per_token']}"] for b, c in comp.items()]
    emit("tokenizer", result, rows, ["measure", "MB/s or ratio"], a.out)


if __name__ == "__main__":
    main()
