"""A tiny random LLaMA and a byte-level BPE tokenizer made offline, for tests, demos and benchmarks.

`toy_model(dir)` writes an HF causal LM directory (`save_pretrained`) that the harness evaluates
like any other: a few layers of `LlamaForCausalLM` with random weights and a tokenizer trained in
a second on English, Chinese, digits and Python source, with bos/eos/pad and, optionally, a
chat template with role tokens.
"""

from __future__ import annotations

import inspect
import json
import textwrap
from pathlib import Path

CHAT_TEMPLATE = ("{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")
SPECIALS = ["<s>", "</s>", "<pad>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"]


def _training_text() -> list[str]:
    import string

    english = textwrap.dedent("""
        The following are multiple choice questions (with answers). Question: What is the answer?
        Answer: A B C D. The answer is 42. Problem: Solution: Final Answer: The final answer is $5$.
        """)
    chinese = "以下是中国关于考试的单项选择题，请选出其中的正确答案。答案：甲乙丙丁，数学，语文，历史。"
    return [english, chinese, string.digits * 4, inspect.getsource(json), inspect.getsource(textwrap)]


def toy_tokenizer(vocab_size: int = 512, chat: bool = True):
    """A byte-level BPE `PreTrainedTokenizerFast` (every string encodes; nothing is unknown)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_training_text(), trainer)
    bos = tok.token_to_id("<s>")  # LLaMA-style: BOS starts every encoded text
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", bos)])
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                      additional_special_tokens=SPECIALS[3:])
    wrapped.chat_template = CHAT_TEMPLATE if chat else None
    return wrapped


def toy_model(out_dir: str | Path, chat: bool = False, n_layer: int = 2, d_model: int = 64, vocab_size: int = 512,
              max_len: int = 512, seed: int = 0) -> Path:
    """Write a tiny random `LlamaForCausalLM` + tokenizer to `out_dir` and return it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = toy_tokenizer(vocab_size, chat)
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=d_model, intermediate_size=2 * d_model,
                         num_hidden_layers=n_layer, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=max_len, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model = LlamaForCausalLM(config)
    out = Path(out_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
