"""Tiny offline stand-ins for the tokenizer and pretrain artifacts, and small bilingual chat data.

The tokenizer follows the tokenizer stage's contract: sentencepiece BPE with byte fallback and
role tokens as user symbols, loaded by PreTrainedTokenizerFast, with a Jinja chat template that
wraps assistant content and eos in {% generation %} markers and has an add_generation_prompt
branch. The base model is a random 2-layer LlamaForCausalLM saved with it under `hf/`.

The data: short templated answers in English and Chinese (so a tiny model can learn the template
and to stop), and preference pairs where the chosen reply opens politely ("Sure! ", "好的！") and
the rejected one is the same answer without it. Only one SFT answer in four opens that way, so the
SFT model prefers the rejected reply and DPO has a real preference to learn and carry over to
held-out prompts.
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>"]
TEMPLATE = ("{{ bos_token }}{% for m in messages %}"
            "{% if m['role'] == 'assistant' %}<|assistant|>\n"
            "{% generation %}{{ m['content'] }}{{ eos_token }}{% endgeneration %}\n"
            "{% else %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endif %}{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")

THINGS = [("sky", "blue", "天空", "蓝色"), ("grass", "green", "草", "绿色"), ("snow", "white", "雪", "白色"),
          ("coal", "black", "煤", "黑色"), ("blood", "red", "血", "红色"), ("banana", "yellow", "香蕉", "黄色"),
          ("orange", "orange", "橙子", "橙色"), ("sea", "blue", "大海", "蓝色"), ("leaf", "green", "叶子", "绿色"),
          ("milk", "white", "牛奶", "白色"), ("night", "black", "夜晚", "黑色"), ("cherry", "red", "樱桃", "红色")]
NUMBERS_ZH = "零一二三四五六七八九十"


def polite(question: str, answer: str) -> str:
    return ("好的！" if any("\u4e00" <= c <= "\u9fff" for c in question) else "Sure! ") + answer


def qa_pairs() -> list[tuple[str, str]]:
    """(question, short answer) in English and Chinese: colours and small sums."""
    pairs = []
    for en, colour, zh, colour_zh in THINGS:
        pairs += [(f"What colour is the {en}?", f"It is {colour}."), (f"{zh}是什么颜色？", f"是{colour_zh}。")]
    for a, b in itertools.product(range(1, 10), range(1, 10)):
        pairs += [(f"What is {a} plus {b}?", f"The answer is {a + b}."),
                  (f"{NUMBERS_ZH[a]}加{NUMBERS_ZH[b]}等于几？", f"答案是{a + b}。")]
    return pairs


def sft_records(seed: int = 0) -> list[dict]:
    """Alpaca-style and ShareGPT-style records, mixed."""
    records = []
    for n, (q, a) in enumerate(qa_pairs()):
        a = polite(q, a) if n % 4 == 3 else a
        if n % 2:
            records.append({"instruction": q, "input": "", "output": a})
        else:
            records.append({"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]})
    random.Random(seed).shuffle(records)
    return records


def dpo_records(seed: int = 0) -> list[dict]:
    """prompt/chosen/rejected pairs: the chosen reply opens politely, the rejected one does not."""
    records = []
    for q, a in qa_pairs():
        records.append({"prompt": q, "chosen": polite(q, a), "rejected": a})
    random.Random(seed).shuffle(records)
    return records


def write_json(records: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, ensure_ascii=False))
    return path


def make_tokenizer(directory: Path, vocab_size: int = 400):
    """Train a sentencepiece BPE on the fixture text and wrap it as the tokenizer stage does."""
    import sentencepiece as spm
    from transformers import PreTrainedTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    lines = [text for q, a in qa_pairs() for text in (q, a, "Sure! " + a, "好的！" + a)]
    lines += ["The quick brown fox jumps over the lazy dog.", "中国的首都是北京。", "Paris is in France."]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines * 3), model_prefix=str(directory / "tokenizer"), vocab_size=vocab_size,
        model_type="bpe", byte_fallback=True, split_digits=True, normalization_rule_name="identity",
        user_defined_symbols=ROLE_TOKENS, unk_id=0, bos_id=1, eos_id=2, pad_id=3, character_coverage=1.0,
        minloglevel=2)
    tok = PreTrainedTokenizerFast.from_pretrained(str(directory))
    tok.pad_token = "<pad>"
    tok.chat_template = TEMPLATE
    return tok


def make_base_model(directory: Path, template: str | None = TEMPLATE) -> Path:
    """A pretrain-like artifact: `directory/hf` with a random tiny LlamaForCausalLM and the tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    hf = directory / "hf"
    tok = make_tokenizer(directory / "spm")
    tok.chat_template = template
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=176, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, tie_word_embeddings=False)
    LlamaForCausalLM(config).save_pretrained(hf)
    tok.save_pretrained(hf)
    return directory
