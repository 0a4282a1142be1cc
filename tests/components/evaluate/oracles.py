"""Stand-ins for a model that answer from the gold data (oracles) or always wrongly.

They implement the calls the harness makes of a model, so a task's whole path (prompt building,
option scoring or answer extraction, the sandbox, the metric) runs on known answers.
"""

from __future__ import annotations

import uuid
from collections import defaultdict, deque

from components.evaluate.lm import ChoiceScore


class AnswerKey:
    """A "model" that knows each sample's answer: the gold option index, or the text to "generate"."""

    is_chat = False
    chat_parts = ("", "")
    max_length = 1_000_000
    batch_size = 8

    def __init__(self, choices: list | None = None, texts: list | None = None):
        """`choices`/`texts`: (request, answer) pairs in sample order; a request asked twice (some benchmarks
        repeat a question with a different gold answer) gets its answers in that order."""
        self.choices, self.texts = _queues(choices or []), _queues(texts or [])
        self.fingerprint = f"answer-key-{uuid.uuid4()}"  # its own cache entries, never another key's

    def loglikelihood(self, requests):
        scores = []
        for r in requests:
            gold = self.choices[r].popleft()
            logprobs = [0.0 if i == gold else -10.0 for i in range(len(r.choices))]
            scores.append(ChoiceScore(logprobs, [i == gold for i in range(len(r.choices))], len(r.shots)))
        return scores

    def generate(self, requests, seed=0):
        return [[self.texts[r].popleft()] * r.n for r in requests]


def _queues(pairs: list) -> dict:
    queues: dict = defaultdict(deque)
    for request, answer in pairs:
        queues[request].append(answer)
    return queues
