"""What a task is: data (source, split, prompt format, few-shot count, metric) plus a builder.

A `Task` is registered by name (see `registry.py`). Its `build(style, home)` reads the benchmark
files and returns items: a request for the model and what to compare the answer with. `Style`
carries chat vs base prompting: chat models get the question inside their chat template (and the
task's chat few-shot count), base models plain few-shot text, as DeepSeek reports both.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from components.evaluate.lm import ChoiceRequest, GenRequest

KINDS = ("bpb", "choice", "generate", "code", "judge")


@dataclass(frozen=True)
class Style:
    """How prompts are wrapped: base models get plain text, chat models their template."""

    chat: bool = False
    head: str = ""
    tail: str = ""

    def wrap(self, header: str, context: str) -> tuple[str, str]:
        """(header, context) with the template around the user message (shots sit in between)."""
        return self.head + header, context + self.tail


@dataclass
class Item:
    """One sample: the request to the model and the gold answer (plus what a report shows)."""

    id: str
    request: ChoiceRequest | GenRequest
    gold: Any
    group: str = ""
    show: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Task:
    name: str
    kind: str
    source: str
    split: str
    fewshot: int
    metric: str
    prompt: str
    build: Callable[..., list[Item]]
    hf_id: str = ""
    chat_fewshot: int | None = None
    check: Callable[[str, Any], tuple[Any, bool]] | None = None
    """generate tasks: (output, gold) -> (extracted answer, correct)."""
    program: Callable[[Item, str], str] | None = None
    """code tasks: (item, completion) -> the program the sandbox runs."""

    def shots_for(self, style: Style) -> int:
        """Few-shot count for this prompting style."""
        return self.chat_fewshot if style.chat and self.chat_fewshot is not None else self.fewshot


def prompt_text(request: ChoiceRequest | GenRequest, shots: int | None = None) -> str:
    """The whole prompt as the model sees it (with `shots` of the shots; all by default)."""
    return request.header + "".join(request.shots[:shots]) + request.context


def subsample(items: list, limit: int | None, seed: int = 1234) -> list:
    """A fixed random subset of `limit` items, in their original order (all when limit is None)."""
    if limit is None or limit >= len(items):
        return items
    keep = sorted(random.Random(seed).sample(range(len(items)), limit))
    return [items[i] for i in keep]
