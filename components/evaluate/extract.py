"""Answer extraction and comparison for generated solutions (GSM8K numbers, MATH LaTeX answers).

MATH answers are normalised as in Minerva (Lewkowycz et al. 2022, appendix D), the same function
that produced the gold `answer` fields of the oe-eval MATH files, so a gold solution run through
`math_answer` reproduces its gold answer exactly. Two answers are equal when their normalised forms
match or, where both read as numbers, when the numbers match.
"""

from __future__ import annotations

import re

FINAL_MARKER = re.compile(r"the answer is|####", re.IGNORECASE)
NUMBER = re.compile(r"-?[\d,]*\.?\d+")
MINERVA_FINAL = re.compile(r"final answer is (.*?)\. I hope it is correct", re.DOTALL)

SUBSTITUTIONS = [("an ", ""), ("a ", ""), (".$", "$"), ("\\$", ""), (r"\ ", ""), (" ", ""), ("mbox", "text"),
                 (",\\text{and}", ","), ("\\text{and}", ","), ("\\text{m}", "\\text{}")]
REMOVED_EXPRESSIONS = ["square", "ways", "integers", "dollars", "mph", "inches", "ft", "hours", "km", "units",
                       "\\ldots", "sue", "points", "feet", "minutes", "digits", "cents", "degrees", "cm", "gm",
                       "pounds", "meters", "meals", "edges", "students", "childrentickets", "multiples",
                       "\\text{s}", "\\text{.}", "\\text{\ns}", "\\text{}^2", "\\text{}^3", "\\text{\n}",
                       "\\text{}", r"\mathrm{th}", r"^\circ", r"^{\circ}", r"\;", r",\!", "{,}", '"', "\\dots"]


def number(text: str | None, which: int = -1) -> str | None:
    """The last (or `which`) number in `text`, without thousands separators or a trailing zero fraction."""
    if not text:
        return None
    found = NUMBER.findall(text.replace("$", ""))
    if not found:
        return None
    value = found[which].replace(",", "")
    if "." in value:
        value = value.rstrip("0").rstrip(".") or "0"
    return value


def gsm8k_gold(answer: str) -> str:
    """The gold number of a GSM8K answer (`... #### 1,234`)."""
    return number(answer.split("####")[-1], 0) or ""


def gsm8k_answer(text: str) -> str | None:
    """The model's final number: the one right after the LAST 'the answer is' or '####' (whichever comes later),
    else the content of the last \\boxed{}, else the last number of the text."""
    marks = list(FINAL_MARKER.finditer(text))
    if marks:
        value = number(text[marks[-1].end():], 0)
        if value is not None:
            return value
    for candidate in (last_boxed(text), text):
        value = number(candidate)
        if value is not None:
            return value
    return None


def last_boxed(text: str) -> str | None:
    """The content of the last \\boxed{...} (or \\fbox{...}), braces balanced."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    if text.startswith("\\boxed ", start):  # \boxed 5
        return text[start + len("\\boxed "):].split("$")[0].strip()
    open_at = text.find("{", start)
    if open_at < 0:
        return None
    depth = 0
    for i in range(open_at, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[open_at + 1:i]
    return None


def normalize_final_answer(answer: str) -> str:
    """Minerva's normalisation of a final answer (units, text, boxes and spacing removed)."""
    answer = answer.split("=")[-1]
    for before, after in SUBSTITUTIONS:
        answer = answer.replace(before, after)
    for expression in REMOVED_EXPRESSIONS:
        answer = answer.replace(expression, "")
    answer = re.sub(r"(.*?)(\$)(.*?)(\$)(.*)", "$\\3$", answer)
    answer = re.sub(r"(\\text\{)(.*?)(\})", "\\2", answer)
    answer = re.sub(r"(\\textbf\{)(.*?)(\})", "\\2", answer)
    answer = re.sub(r"(\\overline\{)(.*?)(\})", "\\2", answer)
    answer = re.sub(r"(\\boxed\{)(.*)(\})", "\\2", answer)
    answer = re.sub(r"(frac)([^{])(.)", "frac{\\2}{\\3}", answer)
    answer = re.sub(r"(sqrt)([^{])", "sqrt{\\2}", answer)
    answer = answer.replace("$", "")
    if answer.replace(",", "").isdigit():
        answer = answer.replace(",", "")
    return answer


def math_answer(text: str) -> str | None:
    """The model's final MATH answer, normalised: Minerva's 'final answer is ...', else the last box."""
    found = MINERVA_FINAL.findall(text)
    raw = found[-1] if found else last_boxed(text)
    return None if raw is None else normalize_final_answer(raw)


def math_equal(predicted: str | None, gold: str) -> bool:
    if predicted is None:
        return False
    if predicted in (gold, normalize_final_answer(gold)):
        return True
    return _as_float(predicted) is not None and _as_float(predicted) == _as_float(gold)


def numbers_equal(predicted: str | None, gold: str) -> bool:
    if predicted is None:
        return False
    a, b = _as_float(predicted), _as_float(gold)
    return predicted == gold if a is None or b is None else abs(a - b) <= 1e-9 * max(1.0, abs(b))


def _as_float(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except (ValueError, AttributeError):
        return None
