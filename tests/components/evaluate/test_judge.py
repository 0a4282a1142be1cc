"""Unit tests of the judged tasks: verdict parsing, both-order aggregation, the bootstrap interval, the
exam loader, and the configuration. The judge here is a scripted stand-in for the endpoint (the real
HTTP path is in test_judge_http.py)."""

from __future__ import annotations

import json
import math

import pytest
from pydantic import ValidationError

from components.config import EndpointConfig, EvalConfig
from components.evaluate import data
from components.evaluate.judge import exam, graded, pairwise
from components.evaluate.judge.client import FIT_TRIES, Endpoint, Reply, api_key, context_limit
from components.evaluate.judge.contestants import two_turns
from components.evaluate.judge.prompts import (
    CATEGORIES,
    graded_messages,
    load_questions,
    pairwise_messages,
    parse_score,
    parse_verdict,
)
from components.evaluate.stage import key_config

pytestmark = pytest.mark.unit


class ScriptedJudge:
    """Answers each judge conversation with `rule(user text)`; records what it was asked."""

    def __init__(self, rule):
        self.rule, self.asked = rule, []

    def ask_many(self, builds, max_tokens):
        conversations = [build(3000, False) for build in builds]
        self.asked += conversations
        return [self.rule(c[-1]["content"]) for c in conversations]


def q(i: int, category: str = "math") -> dict:
    return {"id": f"q{i}", "category": category, "lang": "en", "turns": [f"first {i}?", f"second {i}?"],
            "reference": ["r1", "r2"]}


def answers(*texts: str) -> list[list[Reply]]:
    return [[Reply(t), Reply(t + " more")] for t in texts]


def prefers_good(text: str) -> Reply:
    """A fair judge: the assistant whose answer says "good" wins, wherever it stands."""
    a_part, b_part = text.split("## Assistant B")
    return Reply("A is better. [[A]]" if "good" in a_part else "[[B]]" if "good" in b_part else "Equal. [[C]]")


@pytest.mark.parametrize("text,verdict", [("[[A]]", "A"), ("Reasoning... final: [[B]]", "B"), ("[[C]]", "C"),
                                          ("[[ tie ]]", "C"), ("[[a]]", "A"), ("[[A]] no wait [[B]]", None),
                                          ("[[A]] as said, [[A]]", "A"), ("[A]", None), ("", None), (None, None)])
def test_verdicts_parse_or_are_refused(text, verdict):
    assert parse_verdict(text) == verdict


@pytest.mark.parametrize("text,value", [("Rating: [[7]]", 7.0), ("评分 rating：[[8.5]]", 8.5), ("so [[6]]", 6.0),
                                        ("Rating: 4", 4.0), ("Rating: [[11]]", None), ("Rating: [[2]] then Rating: "
                                                                                        "[[9]]", 9.0),
                                        ("no score here", None), ("Rating: [[0]]", None)])
def test_ratings_parse_within_their_range(text, value):
    assert parse_score(text, "Rating", 1, 10) == value


def test_the_question_set():
    rows = load_questions()
    assert len(rows) >= 80 and len({r["id"] for r in rows}) == len(rows)
    assert {r["category"] for r in rows} == set(CATEGORIES) and {r["lang"] for r in rows} == {"en", "zh"}
    for r in rows:
        if r["category"] in ("math", "reasoning", "coding", "extraction"):
            assert len(r["reference"]) == 2, r["id"]


def test_a_fair_judge_sees_both_orders_and_the_better_answer_wins():
    judge = ScriptedJudge(prefers_good)
    records = pairwise.judge_pairs(judge, [q(1), q(2), q(3, "writing")], answers("good", "meh", "same"),
                                   answers("bad", "good", "same"), 64)
    assert len(judge.asked) == 6 and [r["outcome"] for r in records] == ["win", "loss", "tie"]
    first, swapped = (c[-1]["content"] for c in judge.asked[:2])
    assert first.index("good") < first.index("bad") and swapped.index("bad") < swapped.index("good")
    assert "Reference answer (turn 1): r1" in first
    metrics = pairwise.summarize(records)
    assert (metrics["wins"], metrics["ties"], metrics["losses"], metrics["n"]) == (1, 1, 1, 3)
    assert metrics["win_rate"] == 0.5 and metrics["consistency"] == 1.0
    assert metrics["win_rate.math"] == 0.5 and metrics["win_rate.writing"] == 0.5


def test_a_judge_that_always_picks_the_first_position_gives_ties():
    records = pairwise.judge_pairs(ScriptedJudge(lambda _: Reply("[[A]]")), [q(1), q(2)], answers("x", "y"),
                                   answers("z", "w"), 64)
    metrics = pairwise.summarize(records)
    assert [r["outcome"] for r in records] == ["tie", "tie"] and metrics["consistency"] == 0.0
    assert metrics["win_rate"] == 0.5


def test_bad_verdicts_and_failures_are_quarantined_and_counted():
    replies = iter([Reply("[[A]]"), Reply("I cannot decide"), Reply("", "BadRequestError: too long"), Reply("[[B]]")])
    judge = ScriptedJudge(lambda _: next(replies))
    mine = [*answers("a", "b"), [Reply("", "APIConnectionError: refused"), Reply("")]]
    records = pairwise.judge_pairs(judge, [q(1), q(2), q(3)], mine, answers("c", "d", "e"), 64)
    assert len(judge.asked) == 4  # a contestant that failed is not judged
    assert [r["quarantined"] for r in records] == ["unparseable verdict", "judge error: BadRequestError: too long",
                                                   "contestant error: APIConnectionError: refused"]
    metrics = pairwise.summarize(records)
    assert metrics["n"] == 0 and metrics["unparsed"] == 3 and math.isnan(metrics["win_rate"])


def test_the_bootstrap_interval_holds_the_mean_and_narrows_with_more_questions():
    few = pairwise.mean_interval([1, 0, 1, 0.5, 1, 0, 1, 1])
    many = pairwise.mean_interval([1, 0, 1, 0.5, 1, 0, 1, 1] * 20)
    assert few[1] < few[0] < few[2] and many[1] < many[0] < many[2]
    assert many[2] - many[1] < few[2] - few[1]
    assert pairwise.mean_interval([1, 1, 1]) == (1.0, 1.0, 1.0) and math.isnan(pairwise.mean_interval([])[0])


def test_graded_ratings_and_their_summary():
    ratings = iter([Reply("Rating: [[8]]"), Reply("Rating: [[4]]"), Reply("Rating: [[12]]")])
    records = graded.grade(ScriptedJudge(lambda _: next(ratings)), [q(1), q(2, "coding"), q(3)],
                           answers("a", "b", "c"), 64)
    metrics = graded.summarize(records)
    assert (metrics["rating"], metrics["n"], metrics["unparsed"]) == (6.0, 2, 1)
    assert metrics["rating.math"] == 8.0 and records[2]["quarantined"] == "unparseable rating"


def test_exam_rows_of_either_schema_and_points(tmp_path):
    rows = [{"question": "Prove it.", "solution": "Because.", "points": 5},
            {"Question": "Compute 2+2.", "Answer": "4"}, {"question": "No reference here."}]
    problems, bad = exam.normalize(rows)
    assert [p["points"] for p in problems] == [5.0, exam.DEFAULT_POINTS] and bad[0]["quarantined"] == "no solution"
    points = iter([Reply("Points: [[3]]"), Reply("Points: [[99]]")])
    records = exam.grade(ScriptedJudge(lambda _: next(points)), problems, [Reply("it"), Reply("4")], 64)
    metrics = exam.summarize(records, len(bad))
    assert (metrics["points"], metrics["max_points"], metrics["score"], metrics["unparsed"]) == (3, 5, 0.6, 1)
    path = tmp_path / "exam.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    assert exam.load_rows([str(path)]) == rows


def test_no_exam_file_offline_is_not_available(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(data.MissingDataset, match="not reachable"):
        exam.load_rows([])


def test_the_second_turn_carries_the_first_answer():
    class Echo:
        def reply(self, conversations, ids):
            return [Reply(f"{ids[i]}:{len(c)}") for i, c in enumerate(conversations)]

    out = two_turns(Echo(), [q(1)])
    assert [r.text for r in out[0]] == ["q1/1:1", "q1/2:3"]


def test_endpoint_configuration():
    cfg = EndpointConfig.parse("http://127.0.0.1:7860/v1#dsllm-chat", "JUDGE_KEY")
    assert (cfg.url, cfg.model, cfg.api_key_env) == ("http://127.0.0.1:7860/v1", "dsllm-chat", "JUDGE_KEY")
    with pytest.raises(ValueError, match="URL#MODEL"):
        EndpointConfig.parse("http://127.0.0.1:7860/v1")
    with pytest.raises(ValidationError):
        EndpointConfig(url="ftp://host", model="m")
    with pytest.raises(ValidationError):
        EndpointConfig(url="http://host/v1", model="m", api_key_env="not a name")


def test_a_key_comes_from_the_named_variable_only(monkeypatch):
    cfg = EndpointConfig(url="http://host/v1", model="m", api_key_env="DSLLM_TEST_JUDGE_KEY")
    monkeypatch.delenv("DSLLM_TEST_JUDGE_KEY", raising=False)
    with pytest.raises(ValueError, match="DSLLM_TEST_JUDGE_KEY"):
        api_key(cfg)
    monkeypatch.setenv("DSLLM_TEST_JUDGE_KEY", "s3cret")
    assert api_key(cfg) == "s3cret" and "s3cret" not in json.dumps(EvalConfig(judge=cfg).model_dump(mode="json"))


def test_judge_settings_enter_the_stage_key_only_when_set(monkeypatch):
    monkeypatch.setattr("components.evaluate.stage.fingerprint", lambda: "x")
    plain = key_config(EvalConfig())
    assert not {"judge", "opponent", "judge_max_tokens", "exam_files", "judge_concurrency"} & set(plain)
    judged = key_config(EvalConfig(judge=EndpointConfig(url="http://h/v1", model="m"), opponent="models:/x/1"))
    assert judged["judge"]["model"] == "m" and judged["opponent"] == "models:/x/1"
    assert key_config(EvalConfig(judge_concurrency=9)) == plain


class SmallContext(Endpoint):
    """An endpoint stand-in whose model reads `context` tokens (3 characters each) and refuses longer prompts with
    the error text of the project's API (and OpenAI's)."""

    def __init__(self, context: int):
        super().__init__(EndpointConfig(url="http://127.0.0.1:9/v1", model="m"))
        self.context, self.sent = context, []

    def chat(self, messages, max_tokens, temperature=0.0):
        self.sent.append((messages, max_tokens))
        prompt = sum(len(m["content"]) for m in messages) // 3
        if prompt + max_tokens > self.context:
            return Reply("", f"BadRequestError: Error code: 400 - This model's maximum context length is {self.context} "
                             f"tokens. However, you requested {prompt + max_tokens} tokens ({prompt} in the prompt, "
                             f"{max_tokens} in the completion).")
        return Reply("[[A]]")


def test_a_judge_prompt_is_fitted_into_a_small_context():
    long = [f"{'word ' * 400}{i}" for i in range(2)]
    judge = SmallContext(128)
    reply = judge.fit(lambda limit, short: pairwise_messages(q(1), long, long, limit, short), 512)
    assert reply == Reply("[[A]]") and len(judge.sent) == 2
    messages, budget = judge.sent[-1]
    assert budget == 16 and [m["role"] for m in messages] == ["user"] and "[[C]]" in messages[0]["content"]
    hopeless = SmallContext(6)
    assert "maximum context length" in hopeless.fit(lambda limit, short: graded_messages(q(1), long, limit, short),
                                                    512).error
    assert len(hopeless.sent) == FIT_TRIES


def test_a_prompt_that_fits_keeps_its_full_form_and_the_reply_budget_shrinks():
    judge = SmallContext(2000)
    reply = judge.fit(lambda limit, short: pairwise_messages(q(1), ["x"] * 2, ["y"] * 2, limit, short), 4000)
    assert reply == Reply("[[A]]") and len(judge.sent) == 2
    (first, _), (second, budget) = judge.sent
    assert second == first and 64 <= budget < 2000 and second[0]["role"] == "system"


def test_context_errors_of_either_server_are_read():
    assert context_limit("This model's maximum context length is 4097 tokens. However, you requested 5000 tokens "
                         "(4500 in the messages, 500 in the completion).") == (4097, 4500)
    assert context_limit("APIConnectionError: refused") is None and context_limit(None) is None
