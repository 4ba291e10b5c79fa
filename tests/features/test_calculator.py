"""The assistant's calculator: arithmetic asked in words, worked out exactly; anything more is left alone."""

from __future__ import annotations

import pytest

from tether.features.calculator import calculate, expression_of


@pytest.mark.parametrize("question,answer", [
    ("What is 17 times 23?", "17 times 23 = 391"),  # qwen2.5-0.5b: "17 times 23 equals 411"
    ("whats 15% of 80", "15% of 80 = 12"),
    ("How much is 1,250 divided by 5?", "1,250 divided by 5 = 250"),
    ("calculate 2^10", "2^10 = 1024"),
    ("What is the square root of 144?", "The square root of 144 = 12"),
    ("What is 3.5 * (2 + 4)?", "3.5 * (2 + 4) = 21"),
    ("17 x 23", "17 x 23 = 391"),
    ("What is 12 squared?", "12 squared = 144"),
    ("What is 100 minus 37 plus 5?", "100 minus 37 plus 5 = 68"),
    ("What is 2 - -3?", "2 - -3 = 5"),
    ("Compute 7 mod 3", "7 mod 3 = 1"),
    ("What is 0.1 + 0.2?", "0.1 + 0.2 = 0.3"),
    ("1/3", "1/3 = 0.3333333333"),
    ("what is 123456789 * 987654321", "123456789 * 987654321 = 121,932,631,112,635,269"),
    ("What is $12.50 * 3?", "$12.50 * 3 = $37.50"),
    ("what is €5 - €7.25", "€5 - €7.25 = -€2.25"),
    ("What does 6 × 7 equal?", "6 × 7 = 42"),
])
def test_a_sum_is_worked_out_exactly(question: str, answer: str) -> None:
    calc = calculate(question)
    assert calc is not None and calc.text == answer


@pytest.mark.parametrize("question", [
    "What is 2 + 2 in binary?",  # more than arithmetic: the model's
    "If I buy 3 shirts at $12.50 each, how much do I pay?",
    "What is love?", "What is 5?", "Is 7 a prime?", "What is 17 times 23 times x?",
    "what is 1e9", "What is 9**9**9?",  # a power too large to work out is no answer here
    "What is the square root of -4?",  # no real value
    "what is __import__('os').getcwd()", "What is (1).__class__?", "", "   ", "?",
    "What is 2 +", "Remind me at 5 - 6 pm",
])
def test_anything_more_than_a_sum_is_left_to_the_model(question: str) -> None:
    assert calculate(question) is None


def test_a_division_by_zero_says_so() -> None:
    calc = calculate("what is 10 / 0")
    assert calc is not None and calc.value is None and calc.text == "10 / 0 has no value: it divides by zero."


def test_the_expression_is_what_was_asked() -> None:
    assert expression_of("What is 15% of 80 plus 2?") == "15/100*80 + 2"
    assert expression_of("what is the square root of 2 times 3") == "sqrt(2) * 3"


@pytest.mark.parametrize("text", ["1" + "+1" * 2000, "(" * 500 + "1+1" + ")" * 500, "1+1" + " " * 1_000_000 + "x",
                                  "What is " + "2 * " * 100 + "2?", "9" * 400 + " * 2"])
def test_a_long_or_deep_text_is_no_sum_and_costs_nothing(text: str) -> None:
    """A thousand terms overflowed simpleeval's recursion (a traceback); a megabyte of spaces took the patterns minutes."""
    assert calculate(text) is None
