"""Lossless encode/decode for any Python string, on top of the sentencepiece model.

sentencepiece (and the Hugging Face tokenizer built from it) round-trips every valid Unicode
string except two cases: U+2581 '▁', which it uses to stand for a space, and lone surrogates,
which are not valid UTF-8 at all. `Codec` sends exactly those characters through the byte
pieces (`<0xNN>`) itself (for surrogates, the UTF-8-style bytes Python's 'surrogatepass' gives),
and decodes by joining the bytes of every piece and decoding them with 'surrogatepass'. For text
without those two characters `Codec.encode` equals `sentencepiece.encode`.
"""

from __future__ import annotations

import re
from pathlib import Path

import sentencepiece as spm

_SPECIAL_CHARS = re.compile("[\u2581\ud800-\udfff]+")


class Codec:
    def __init__(self, model_file: str | Path):
        self.sp = spm.SentencePieceProcessor(model_file=str(model_file))
        self.byte_id = {self.sp.piece_to_id(f"<0x{b:02X}>"): b for b in range(256)}
        self.id_of_byte = {b: i for i, b in self.byte_id.items()}
        assert len(self.id_of_byte) == 256, "the model must be trained with byte_fallback"
        self.piece_bytes = [self._bytes_of(i) for i in range(self.sp.get_piece_size())]

    def _bytes_of(self, i: int) -> bytes:
        if i in self.byte_id:
            return bytes([self.byte_id[i]])
        if self.sp.is_control(i) or self.sp.is_unknown(i):
            return b""
        return self.sp.id_to_piece(i).replace("\u2581", " ").encode("utf-8")

    def encode(self, text: str) -> list[int]:
        ids, pos = [], 0
        for m in _SPECIAL_CHARS.finditer(text):
            ids += self.sp.encode(text[pos:m.start()]) if m.start() > pos else []
            ids += [self.id_of_byte[b] for b in m.group().encode("utf-8", "surrogatepass")]
            pos = m.end()
        return ids + (self.sp.encode(text[pos:]) if pos < len(text) else [])

    def decode(self, ids: list[int]) -> str:
        data = b"".join(self.piece_bytes[i] for i in ids)
        try:
            return data.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:  # ids that no encoding produced (e.g. sampled by a model)
            return data.decode("utf-8", "replace")
