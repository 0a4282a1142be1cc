"""Task registry, prompt formats and the oracle checks on the miniature catalog.

An oracle answers every sample with its gold answer (the gold option, the reference solution, the
canonical code) and must score 100%; a model that is always wrong must score 0%.
"""

from __future__ import annotations

import pytest

from components.evaluate import code, data, generation
from components.evaluate.registry import TASKS, get_task, parse_tasks
from components.evaluate.runner import evaluate
from components.evaluate.task import Style, subsample
from tests.components.evaluate.oracles import AnswerKey

pytestmark = pytest.mark.unit
CHOICE = ["mmlu", "ceval", "cmmlu", "hellaswag", "arc_easy", "arc_challenge"]


def test_unknown_task_names_get_a_suggestion():
    with pytest.raises(ValueError, match="Did you mean 'gsm8k'"):
        get_task("gsm8")
    with pytest.raises(ValueError, match="Did you mean 'humaneval'"):
        parse_tasks("mmlu, human_eval")
    assert [t.name for t in parse_tasks("mmlu,gsm8k")] == ["mmlu", "gsm8k"]


def test_every_task_is_described_as_data():
    for task in TASKS.values():
        assert task.kind in ("bpb", "choice", "generate", "code", "judge") and task.source and task.metric and task.prompt
        assert (task.check is not None) == (task.kind == "generate")
        assert (task.program is not None) == (task.kind == "code")
    assert {n: TASKS[n].fewshot for n in ("mmlu", "ceval", "cmmlu", "gsm8k", "math", "humaneval", "mbpp")} == \
        {"mmlu": 5, "ceval": 5, "cmmlu": 5, "gsm8k": 8, "math": 4, "humaneval": 0, "mbpp": 3}
    assert TASKS["gsm8k"].shots_for(Style(chat=True)) == 0 and TASKS["gsm8k"].shots_for(Style()) == 8


def test_missing_data_says_where_to_get_it(catalog, monkeypatch, tmp_path, home):
    monkeypatch.setenv("DSLLM_BENCHMARKS", str(tmp_path))  # skipped, never fatal: the reason says where to get it
    assert "ceval/ceval-exam" in evaluate("o", "ceval", lm=AnswerKey(), home=home,
                                          show_progress=False)["not_available"]["ceval"]
    monkeypatch.setattr(data, "package_dir", lambda name, home=None: tmp_path / "nothing")
    assert "cais/mmlu" in evaluate("o", "mmlu", lm=AnswerKey(), home=home, show_progress=False)["not_available"]["mmlu"]


def test_mmlu_prompt_has_subject_header_dev_shots_and_lettered_options(catalog):
    items = TASKS["mmlu"].build(Style(), 5, None)
    first = items[0]
    assert first.request.header == "The following are multiple choice questions (with answers) about arithmetic.\n\n"
    assert first.request.shots[0] == "What is 2 + 3?\nA. 4\nB. 5\nC. 6\nD. 7\nAnswer: B\n\n"
    assert len(first.request.shots) == 3  # the subject's whole dev split (3 in the fixture)
    assert first.request.context == "What is 8 / 2?\nA. 2\nB. 3\nC. 5\nD. 4\nAnswer:"
    assert first.request.choices == (" A", " B", " C", " D") and first.gold == 3


def test_chat_style_wraps_the_question_and_drops_the_space(catalog):
    style = Style(True, "<|user|>", "<|end|>\n<|assistant|>")
    item = TASKS["ceval"].build(style, 5, None)[0]
    assert item.request.header.startswith("<|user|>以下是中国关于math考试的单项选择题")
    assert item.request.context.endswith("答案：<|end|>\n<|assistant|>")
    assert item.request.choices == ("A", "B", "C", "D")
    gsm = TASKS["gsm8k"].build(style, 0, None)[0]
    assert gsm.request.shots == () and "\\boxed{}" in gsm.request.context


def test_hellaswag_is_cleaned_and_scores_endings(catalog):
    item = TASKS["hellaswag"].build(Style(), 0, None)[0]
    assert item.request.context == "Cooking: A man cracks eggs into a bowl. He"
    assert item.request.choices[2] == " reads a. book."


def test_subsample_is_fixed_and_ordered():
    assert subsample(list(range(100)), 5) == subsample(list(range(100)), 5) == sorted(subsample(list(range(100)), 5))
    assert subsample([1, 2], None) == [1, 2]


def _choice_key(name, wrong=False):
    items = TASKS[name].build(Style(), TASKS[name].fewshot, None)
    return AnswerKey(choices=[(it.request, (it.gold + wrong) % len(it.request.choices)) for it in items])


@pytest.mark.parametrize("name", CHOICE)
def test_gold_options_score_100_and_wrong_ones_0(catalog, name, home):
    right = evaluate("oracle", name, lm=_choice_key(name), home=home, show_progress=False)[name]
    wrong = evaluate("oracle", name, lm=_choice_key(name, wrong=True), home=home, show_progress=False)[name]
    assert right["acc"] == right["acc_norm"] == 1.0 and right["n"] > 0
    assert wrong["acc"] == wrong["acc_norm"] == 0.0


def _gen_key(name, output):
    items = TASKS[name].build(Style(), TASKS[name].fewshot, None, max_new_tokens=512)
    return AnswerKey(texts=[(it.request, output(it)) for it in items])


def test_gsm8k_gold_through_extraction(catalog, home):
    right = _gen_key("gsm8k", lambda it: " " + generation.gsm8k_solution(it.show["reference"]))
    wrong = _gen_key("gsm8k", lambda it: f" The answer is {int(it.gold.replace(',', '')) + 1}.")
    assert evaluate("o", "gsm8k", lm=right, home=home, show_progress=False)["gsm8k"]["exact_match"] == 1.0
    assert evaluate("o", "gsm8k", lm=wrong, home=home, show_progress=False)["gsm8k"]["exact_match"] == 0.0


def test_math_gold_through_extraction(catalog, home):
    right = _gen_key("math", lambda it: " " + it.show["reference"])
    wrong = _gen_key("math", lambda it: " So the answer is \\boxed{7}.")
    assert evaluate("o", "math", lm=right, home=home, show_progress=False)["math"]["exact_match"] == 1.0
    assert evaluate("o", "math", lm=wrong, home=home, show_progress=False)["math"]["exact_match"] == 0.0


def test_canonical_code_passes_and_wrong_code_fails_in_the_sandbox(catalog, home, tmp_path):
    for name, canonical in (("humaneval", lambda it: it.gold["canonical"]), ("mbpp", lambda it: it.gold["canonical"])):
        right = evaluate("o", name, lm=_gen_key(name, canonical), home=home, show_progress=False,
                         out_dir=tmp_path / name)[name]
        assert right["pass@1"] == 1.0 and right["pass"] == right["samples"] == 3
        wrong = evaluate("o", name, lm=_gen_key(name, lambda it: "    return None\n"), home=home,
                         show_progress=False)[name]
        assert wrong["pass@1"] == 0.0 and wrong["pass"] == 0


def test_chat_code_answers_are_read_from_their_code_block(catalog):
    item = code.build_humaneval(Style(True, "<u>", "<a>"), 0, None)[0]
    answer = "Sure!\n```python\ndef add(a: int, b: int) -> int:\n    return a + b\n```\nDone."
    program = code.humaneval_program(item, answer)
    assert "\ndef add(a: int, b: int) -> int:\n    return a + b\n" in program and program.endswith("check(add)\n")


def test_mbpp_few_shot_examples_pass_their_own_tests():
    from components.evaluate.sandbox import Sandbox

    programs = [s["code"] + "\n" + "\n".join(s["test_list"]) for s in code.MBPP_SHOTS]
    assert [r.status for r in Sandbox().run_many(programs)] == ["pass"] * 3


@pytest.mark.parametrize("n, c, k", [(5, 0, 1), (5, 5, 1), (10, 3, 1), (10, 3, 5), (20, 1, 10), (4, 2, 4)])
def test_pass_at_k_matches_counting_subsets(n, c, k):
    from itertools import combinations

    subsets = list(combinations(range(n), k))
    exact = sum(any(i < c for i in s) for s in subsets) / len(subsets)
    assert code.pass_at_k(n, c, k) == pytest.approx(exact)
