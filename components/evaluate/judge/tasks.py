"""The judged tasks as the harness runs them: `pairwise`, `graded` and `exam`.

Without a judge (or, for pairwise, without an opponent) a task raises `NotRun` before anything is
loaded or called; the runner lists it beside the results and the scorecard shows "not run: ...".
"""

from __future__ import annotations

from components.evaluate import data
from components.evaluate.judge import exam, graded, pairwise
from components.evaluate.judge.client import Endpoint
from components.evaluate.judge.contestants import open_contestant, two_turns
from components.evaluate.judge.prompts import load_questions
from components.evaluate.task import subsample


class NotRun(data.MissingDataset):
    """A judged task that is not configured to run (no judge, no opponent)."""


def _judge(session) -> Endpoint:
    if session.cfg.judge is None:
        raise NotRun("not run: no judge configured (dsllm eval --judge-url URL --judge-model NAME, or "
                     "EvalConfig.judge)")
    return Endpoint(session.cfg.judge, session.cfg.judge_concurrency)


def _mine(session, task):
    return open_contestant(session.model_ref, session.cfg, session.home, task,
                           session=session if session.lm is not None else None, show_progress=session.show_progress)


def run_pairwise(task, session) -> tuple[dict, list[dict]]:
    judge, cfg = _judge(session), session.cfg
    if cfg.opponent is None:
        raise NotRun("not run: no opponent configured (dsllm eval --opponent MODEL_OR_URL#MODEL, or "
                     "EvalConfig.opponent)")
    questions = subsample(load_questions(), cfg.limit)
    mine = two_turns(_mine(session, task), questions)
    other = two_turns(open_contestant(cfg.opponent, cfg, session.home, task, show_progress=session.show_progress),
                      questions)
    records = pairwise.judge_pairs(judge, questions, mine, other, cfg.judge_max_tokens)
    return pairwise.summarize(records), records


def run_graded(task, session) -> tuple[dict, list[dict]]:
    judge = _judge(session)
    questions = subsample(load_questions(), session.cfg.limit)
    records = graded.grade(judge, questions, two_turns(_mine(session, task), questions), session.cfg.judge_max_tokens)
    return graded.summarize(records), records


def run_exam(task, session) -> tuple[dict, list[dict]]:
    judge = _judge(session)
    problems, bad = exam.normalize(exam.load_rows(list(session.cfg.exam_files)))
    problems = subsample(problems, session.cfg.limit)
    contestant = _mine(session, task)
    answers = contestant.reply([[{"role": "user", "content": p["question"]}] for p in problems],
                               [p["id"] for p in problems])
    records = exam.grade(judge, problems, answers, session.cfg.judge_max_tokens)
    return exam.summarize(records, len(bad)), records + bad
