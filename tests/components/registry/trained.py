"""Real models and real per-document bits for gate tests, in seconds on a CPU: toy LLaMA chat models
(components.evaluate.toy) trained for a few steps on Python-library docstrings and source, a pack of held-out
documents tokenized with each model's own tokenizer, and every held-out document's summed NLL in bits and
its UTF-8 bytes — the per-document bpb records the evaluation harness writes to samples/bpb.jsonl."""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path

import numpy as np

MODULES = ("json", "textwrap", "string", "csv", "argparse", "shutil", "pathlib", "difflib", "heapq", "bisect",
           "fractions", "statistics", "calendar", "configparser", "dataclasses", "functools")


def documents(chars: int = 320) -> dict[str, list[tuple[str, str]]]:
    """{"train": [(id, text)], "val": [(id, text)]}: the modules' source in chunks; every 4th chunk held out."""
    import importlib

    chunks = []
    for name in MODULES:
        source = inspect.getsource(importlib.import_module(name))
        chunks += [(f"{name}/{i}", source[i:i + chars]) for i in range(0, min(len(source), 12 * chars), chars)]
    return {"train": [c for i, c in enumerate(chunks) if i % 4], "val": [c for i, c in enumerate(chunks) if not i % 4]}


def model(out: Path, vocab: int, steps: int, lr: float = 3e-3, seed: int = 0) -> Path:
    """A toy chat model trained `steps` AdamW steps (0 = as initialised) on the training documents."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from components.evaluate.toy import toy_model

    toy_model(out, chat=True, vocab_size=vocab, seed=seed)
    if steps:
        tok, net = AutoTokenizer.from_pretrained(out), AutoModelForCausalLM.from_pretrained(out)
        ids = [t for _, text in documents()["train"] for t in tok(text)["input_ids"] + [tok.eos_token_id]]
        windows = torch.tensor(ids[:len(ids) // 64 * 64]).view(-1, 64)
        opt, gen = torch.optim.AdamW(net.parameters(), lr=lr), torch.Generator().manual_seed(seed)
        net.train()
        for _ in range(steps):
            batch = windows[torch.randint(len(windows), (8,), generator=gen)]
            loss = net(input_ids=batch, labels=batch).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
        net.save_pretrained(out)
    return out


def bpb_records(model_dir: Path) -> list[dict]:
    """One record per held-out document: id, nll_bits (every token after BOS), bytes (UTF-8), domain."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok, net = AutoTokenizer.from_pretrained(model_dir), AutoModelForCausalLM.from_pretrained(model_dir).eval()
    records = []
    with torch.inference_mode():
        for doc_id, text in documents()["val"]:
            ids = torch.tensor([tok(text)["input_ids"]])
            logits = net(input_ids=ids).logits[0, :-1].float()
            nats = float(torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum"))
            records.append({"id": doc_id, "nll_bits": nats / math.log(2), "bytes": len(text.encode()), "domain": "code"})
    return records


def write_pack(out: Path, model_dir: Path) -> None:
    """pack.json and val/code.bin: the held-out documents in the model's own tokens (as the pack stage lays them)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    docs = documents()["val"]
    ids = np.array([t for _, text in docs for t in tok(text)["input_ids"][1:] + [tok.eos_token_id]], dtype=np.uint16)
    (out / "val").mkdir(parents=True, exist_ok=True)
    ids.tofile(out / "val" / "code.bin")
    meta = {"dtype": "uint16", "seq_len": 128, "vocab_size": len(tok), "val": {"code": {
        "file": "val/code.bin", "tokens": len(ids), "bytes": sum(len(t.encode()) for _, t in docs), "docs": len(docs)}}}
    (out / "pack.json").write_text(json.dumps(meta))
