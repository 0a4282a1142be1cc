"""Byte-level BPE tokenizer (sentencepiece, byte fallback, digits split) exported for Hugging Face.

Special tokens (ids fixed): `<unk>` 0, `<s>` (bos) 1, `</s>` (eos) 2, `<pad>` 3, then the chat
roles `<|system|>` 4, `<|user|>` 5, `<|assistant|>` 6 and `<|end|>` 7 (end of a turn), then the
256 byte pieces `<0x00>`..`<0xFF>`, then learned merges. The chat template (see `hf.CHAT_TEMPLATE`)
renders a conversation as

    <s><|system|>\\n{content}<|end|>\\n<|user|>\\n{content}<|end|>\\n<|assistant|>\\n{content}</s>\\n

with `{% generation %}` around each assistant reply and its eos `</s>` (for TRL's
assistant_only_loss); `add_generation_prompt` appends `<|assistant|>\\n`. Generation stops at
eos `</s>`. The HF tokenizer adds no special tokens on its own: `tok(text).input_ids`
equals `sentencepiece.encode(text)`, with one documented exception: the literal strings `<s>`, `</s>`,
`<pad>` and `<unk>` in text are read as those special tokens by HF (that is how the chat template's
`<s>` becomes bos) and as plain characters by sentencepiece. Role tokens are atomic in both.
For a lossless round trip of *any* Python string (U+2581 and lone surrogates included) use
`codec.Codec`; plain sentencepiece/HF decoding is lossless for every other string.
"""
