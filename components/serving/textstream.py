"""Token ids to streamed text for one reply: incremental detokenization and stop sequences.

`ReplyText.push(token)` returns the new text that may be shown now. Decoding works on a short
window (TGI's prefix/read offsets): the window starts one token before the new ones so that
tokenizers which drop a word's leading space at the start of a decode (sentencepiece) still give
the space, and text that ends in a partial UTF-8 character (byte fallback, Chinese) waits for the
rest. With stop sequences, text that could be the start of a stop sequence is held back until it
is known not to be one; a completed stop sequence ends the reply and is not shown (OpenAI's rule).
The pieces joined are `tok.decode(ids, skip_special_tokens=True)`, cut at the first stop sequence
(and without a partial character at the very end when the token limit cut one in half).
"""

from __future__ import annotations

REPLACEMENT = "\ufffd"  # what a partial UTF-8 sequence decodes to


class ReplyText:
    def __init__(self, tokenizer, stop: tuple[str, ...] = ()):
        self.tok, self.stop = tokenizer, tuple(s for s in stop if s)
        self.ids: list[int] = []
        self.text, self.sent = "", 0  # decoded so far; how much of it was handed out
        self._prefix, self._read = 0, 0
        self.stopped = False  # a stop sequence was completed

    def push(self, token: int) -> str:
        """Add one generated token; the text to hand out now ('' while held back)."""
        self.ids.append(int(token))
        before = self._decode(self.ids[self._prefix:self._read])
        after = self._decode(self.ids[self._prefix:])
        if len(after) > len(before) and not after.endswith(REPLACEMENT):
            self.text += after[len(before):]
            self._prefix, self._read = self._read, len(self.ids)
        return self._release(final=False)

    def flush(self) -> str:
        """The reply ended (eos or the token limit): whatever is still held back, stop checks included;
        a character cut in half by the token limit is left out rather than shown as U+FFFD."""
        rest = self._decode(self.ids[self._prefix:])[len(self._decode(self.ids[self._prefix:self._read])):]
        self.text += rest.rstrip(REPLACEMENT)
        self._prefix = self._read = len(self.ids)
        return self._release(final=True)

    def _decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=True) if ids else ""

    def _release(self, final: bool) -> str:
        if self.stopped:
            return ""
        if self.stop:
            start = max(0, self.sent - max(len(s) for s in self.stop))
            hits = [i for i in (self.text.find(s, start) for s in self.stop) if i >= 0]
            if hits:
                self.stopped, self.text = True, self.text[:min(hits)]
                return self._out(len(self.text))
            if not final:
                return self._out(len(self.text) - self._held())
        return self._out(len(self.text))

    def _held(self) -> int:
        """Length of the longest end of the text that is the beginning of a stop sequence."""
        longest = 0
        for s in self.stop:
            for n in range(min(len(s) - 1, len(self.text)), longest, -1):
                if self.text.endswith(s[:n]):
                    longest = n
                    break
        return longest

    def _out(self, upto: int) -> str:
        upto = max(upto, self.sent)
        piece, self.sent = self.text[self.sent:upto], upto
        return piece
