import pytest

from components.evaluate import extract

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("text, expected", [
    ("She has 5 + 4 = 9 apples. The answer is 9.", "9"),
    ("So the answer is $1,234.", "1234"),
    ("The answer is: 18.00", "18"),
    ("... #### 72", "72"),
    ("We get \\boxed{-3}.", "-3"),
    ("First 3, then 4, finally 12", "12"),
    ("no number here", None),
    # the number right after the LAST marker, not the last number of its line or of the text
    ("The answer is 18, which is 3 more than 15.", "18"),
    ("#### 18\nSo she needs 20 more boxes in 2024.", "18"),
    ("The answer is 5. Wait, recount. The answer is 18, not 15.", "18"),
    ("The answer is 5.\n#### 18 (3 more than 15)", "18"),
    ("#### 5\nThe answer is -7 apples, 3 short.", "-7"),
    ("The answer is $1,234.50 for 3 items.", "1234.5"),
    ("The answer is: 18.00 dollars, up 2", "18"),
    ("The answer is unknown, but 42 is close.", "42"),  # nothing after the marker reads as a number: fallback
    ("We find 3 and \\boxed{18} from 15", "18"),
])
def test_gsm8k_answer(text, expected):
    assert extract.gsm8k_answer(text) == expected


def test_gsm8k_gold_and_comparison():
    gold = extract.gsm8k_gold("She has 1,000 - 250 = <<1000-250=750>>750 left.\n#### 750")
    assert gold == "750"
    assert extract.numbers_equal("750", gold) and extract.numbers_equal("750.0", gold)
    assert not extract.numbers_equal("751", gold) and not extract.numbers_equal(None, gold)
    assert not extract.numbers_equal("1450001", "1450000")  # no relative slack that swallows an off-by-one
    assert extract.numbers_equal(extract.gsm8k_answer("The answer is 18.00."), "18")
    assert extract.gsm8k_gold("It is 3 + 15 = 18.\n#### 18") == "18"


def test_last_boxed_balances_braces():
    assert extract.last_boxed("x \\boxed{1} then \\boxed{\\frac{1}{2}} done") == "\\frac{1}{2}"
    assert extract.last_boxed("\\boxed 5$") == "5"
    assert extract.last_boxed("\\boxed{unclosed") is None
    assert extract.last_boxed("nothing") is None


@pytest.mark.parametrize("raw, normal", [
    ("\\frac12", "\\frac{1}{2}"), ("10,000", "10000"), ("90^\\circ", "90"), ("\\text{(A)}", "(A)"),
    ("x = 5", "5"), ("\\$3.50", "3.50"), ("5 \\text{ cm}", "5"),
])
def test_minerva_normalisation(raw, normal):
    assert extract.normalize_final_answer(raw) == normal


def test_math_answer_prefers_minerva_final_line_then_box():
    text = "So $x=\\boxed{3}$.\nFinal Answer: The final answer is $4$. I hope it is correct."
    assert extract.math_answer(text) == "4"
    assert extract.math_answer("thus \\boxed{\\dfrac{3}{4}}") == "\\dfrac{3}{4}"
    assert extract.math_answer("no answer") is None
    assert extract.math_equal("0.5", ".5") and extract.math_equal("\\frac{1}{4}", "\\frac14")
    assert not extract.math_equal("\\frac{1}{3}", "\\frac{1}{4}") and not extract.math_equal(None, "1")
