"""Small, learnable pretraining inputs built offline: a byte-level BPE tokenizer saved as a Hugging
Face tokenizer with a chat template, and a pack artifact (pack.json, train/*.bin, val/<bucket>.bin)
in the pack stage's format, from templated English, Chinese and Python text."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import numpy as np

CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")
_ADJ = "quick lazy red small old bright quiet happy".split()
_NOUN = "fox dog cat river king house tree bird".split()
_VERB = "sees likes follows finds helps watches".split()
_ZH = ["春天来了", "花开了", "我们去学校", "今天天气很好", "山上有树", "河里有鱼", "他在读书", "大家都很高兴"]


def documents(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """(bucket, text) pairs: templated sentences that a tiny model learns within a few steps."""
    rng = random.Random(seed)
    docs = []
    for i in range(count):
        bucket = ("en", "zh", "code")[i % 3]
        if bucket == "en":
            text = " ".join(f"the {rng.choice(_ADJ)} {rng.choice(_NOUN)} {rng.choice(_VERB)} the "
                            f"{rng.choice(_NOUN)}." for _ in range(rng.randint(3, 8)))
        elif bucket == "zh":
            text = "，".join(rng.choice(_ZH) for _ in range(rng.randint(3, 8))) + "。"
        else:
            n = rng.randint(1, 9)
            text = f"def add_{n}(x):\n    return x + {n}\n\n\nprint(add_{n}({rng.randint(0, 99)}))\n"
        docs.append((bucket, text))
    return docs


def make_tokenizer(folder: Path, docs: list[tuple[str, str]], vocab_size: int = 320):
    """Train a byte-level BPE on `docs` and save it as `folder/hf`; returns the HF tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([text for _, text in docs], trainer)
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    hf.chat_template = CHAT_TEMPLATE
    hf.save_pretrained(str(folder / "hf"))
    return hf


def make_pack(folder: Path, tokenizer, docs: list[tuple[str, str]], seq_len: int, shard_tokens: int = 4096,
              dtype: str = "uint16") -> dict:
    """Write a pack artifact: every 10th document of each bucket to validation, the rest to shards."""
    train, val = [], {}
    for i, (bucket, text) in enumerate(docs):
        ids = tokenizer.encode(text, add_special_tokens=False) + [tokenizer.eos_token_id]
        (val.setdefault(bucket, []) if i // 3 % 10 == 0 else train).extend(ids)
    per_shard = max(seq_len, shard_tokens // seq_len * seq_len)
    usable = len(train) // seq_len * seq_len
    (folder / "train").mkdir(parents=True, exist_ok=True)
    (folder / "val").mkdir(parents=True, exist_ok=True)
    shards = []
    for n, start in enumerate(range(0, usable, per_shard)):
        data = np.asarray(train[start:min(start + per_shard, usable)], dtype=dtype).tobytes()
        (folder / "train" / f"train_{n:05d}.bin").write_bytes(data)
        shards.append({"file": f"train/train_{n:05d}.bin", "tokens": len(data) // np.dtype(dtype).itemsize,
                       "sha256": hashlib.sha256(data).hexdigest()})
    vals = {}
    for bucket, ids in sorted(val.items()):
        np.asarray(ids, dtype=dtype).tofile(folder / "val" / f"{bucket}.bin")
        vals[bucket] = {"file": f"val/{bucket}.bin", "tokens": len(ids), "bytes": len(ids) * 2}
    manifest = {"dtype": dtype, "seq_len": seq_len, "vocab_size": len(tokenizer), "eos_id": tokenizer.eos_token_id,
                "bos_id": tokenizer.bos_token_id, "pad_id": tokenizer.pad_token_id,
                "train": {"shards": shards, "tokens": sum(s["tokens"] for s in shards), "tokens_per_bucket": {}},
                "val": vals}
    (folder / "pack.json").write_text(json.dumps(manifest, indent=2))
    return manifest
