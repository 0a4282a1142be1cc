"""Export the sentencepiece model as a Hugging Face tokenizer directory with the chat template.

`PreTrainedTokenizerFast.from_pretrained(dir)` on a directory holding `tokenizer.model` converts it
exactly (user symbols and byte fallback included; see INTEGRATION-NOTES); the special tokens and the
chat template are set on top and everything is saved, so `AutoTokenizer.from_pretrained(dir)` loads
it offline. The role tokens are marked special (dropped by `skip_special_tokens`) with their ids
unchanged.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from components.tokenizer.train import ROLE_TOKENS, SPECIALS

# An assistant reply ends with eos inside the generation block, so SFT teaches the model to stop and
# `generate` stops there by default; other turns end with <|end|>.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|assistant|>\n' }}{% generation %}{{ message['content'] }}{{ eos_token }}{% endgeneration %}{{ '\n' }}"
    "{% else %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


def export(model_file: Path, out_dir: Path):
    """Write tokenizer.model, tokenizer.json and tokenizer_config.json (with the chat template)."""
    from transformers import PreTrainedTokenizerFast

    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(model_file, out_dir / "tokenizer.model")
    tok = PreTrainedTokenizerFast.from_pretrained(str(out_dir))
    tok.bos_token, tok.eos_token = SPECIALS["bos"], SPECIALS["eos"]
    tok.unk_token, tok.pad_token = SPECIALS["unk"], SPECIALS["pad"]
    tok.add_special_tokens({"additional_special_tokens": ROLE_TOKENS})
    tok.chat_template = CHAT_TEMPLATE
    tok.model_max_length = 1 << 30
    tok.save_pretrained(str(out_dir))
    return tok


def load(out_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(out_dir))
