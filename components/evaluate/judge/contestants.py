"""Who answers the questions: a model run here (a registered version or a model directory, through the
harness's batched generation and result cache) or any OpenAI-compatible endpoint. Both answer two-turn
conversations: the first turns of all questions, then the second turns with each first answer in place.

A contestant is written as the harness takes a model (`models:/NAME/VERSION`, `models:/NAME@ALIAS`, a
directory, `dsllm://...`) or as an endpoint, `URL#MODEL` or an `EndpointConfig`.
"""

from __future__ import annotations

from components.config import EndpointConfig, EvalConfig
from components.evaluate.judge.client import Endpoint, Reply
from components.evaluate.lm import GenRequest
from components.evaluate.task import Item, Task
from components.home import Home


def is_endpoint(spec) -> bool:
    return isinstance(spec, EndpointConfig) or str(spec).startswith(("http://", "https://"))


def endpoint_config(spec) -> EndpointConfig:
    return spec if isinstance(spec, EndpointConfig) else EndpointConfig.parse(str(spec))


class EndpointContestant:
    def __init__(self, endpoint: Endpoint, max_tokens: int):
        self.endpoint, self.max_tokens, self.name = endpoint, max_tokens, endpoint.name

    def reply(self, conversations: list[list[dict]], ids: list[str]) -> list[Reply]:
        return self.endpoint.chat_many(conversations, self.max_tokens)


class LocalContestant:
    """A model loaded here; its answers are cached per (model, question, conversation) like every generation."""

    def __init__(self, session, task: Task, name: str):
        self.session, self.task, self.name = session, task, name

    def render(self, messages: list[dict]) -> GenRequest:
        lm, budget = self.session.lm, self.session.cfg.max_new_tokens
        if lm.is_chat:
            text = lm.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            return GenRequest(text, (), "", (), budget)
        # a base model continues a plain transcript; the next "User:" line ends its turn
        text = "".join(f"{m['role'].capitalize()}: {m['content']}\n\n" for m in messages) + "Assistant:"
        return GenRequest(text, (), "", ("\nUser:",), budget)

    def reply(self, conversations: list[list[dict]], ids: list[str]) -> list[Reply]:
        items = [Item(i, self.render(c), None) for i, c in zip(ids, conversations, strict=True)]
        return [Reply(out[0].strip()) for out in self.session.generate(self.task)(items)]


def two_turns(contestant, questions: list[dict]) -> list[list[Reply]]:
    """Each question's two answers; the second turn sees the question's first turn and the contestant's answer."""
    firsts = [[{"role": "user", "content": q["turns"][0]}] for q in questions]
    one = contestant.reply(firsts, [f"{q['id']}/1" for q in questions])
    seconds = [[*c, {"role": "assistant", "content": r.text}, {"role": "user", "content": q["turns"][1]}]
               for c, r, q in zip(firsts, one, questions, strict=True)]
    two = contestant.reply(seconds, [f"{q['id']}/2" for q in questions])
    return [[a, b] for a, b in zip(one, two, strict=True)]


def open_contestant(spec, cfg: EvalConfig, home: Home, task: Task, session=None, show_progress: bool = True):
    """A contestant for `spec`; `session` (the harness's, on the evaluated model) is reused when given."""
    if is_endpoint(spec):
        return EndpointContestant(Endpoint(endpoint_config(spec), cfg.judge_concurrency), cfg.max_new_tokens)
    if session is None:
        from components.evaluate.model import load_model
        from components.evaluate.runner import Session, chat_for

        lm = load_model(spec, chat=chat_for(spec, cfg.mode, home), batch_size=cfg.batch_size,
                        max_length=cfg.max_length, dtype=cfg.dtype, home=home)
        session = Session(lm, cfg, home, show_progress)
    return LocalContestant(session, task, str(spec))
