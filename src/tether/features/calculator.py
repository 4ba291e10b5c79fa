"""Arithmetic asked in words ("What is 17 times 23?"), answered exactly on the device, without a model.

Small models get sums wrong: qwen2.5-0.5b answers "17 times 23 equals 411". A question
that is arithmetic and nothing else is rewritten as an expression and evaluated by
``simpleeval`` (no names, no attributes, guarded powers), as a phone's assistant hands
sums to its calculator. Anything more ("3 shirts at $12.50 each", "2 + 2 in binary") is
not matched, and stays the model's.
"""

from __future__ import annotations

import math
import re

from pydantic import BaseModel

MAX_CHARS = 300  # a sum typed by a person; a longer text is no question for the calculator
REASON = "arithmetic and nothing else, worked out exactly without a model"  # the route's reason, CLI and gateway
_LEAD = re.compile(r"^\s*(?:(?:hey|ok|okay|please),?\s+)?(?:what(?:'s|’s| is| does)|whats|how much is|calculate|"
                   r"compute|evaluate|work out)\s+", re.IGNORECASE)
_TAIL = re.compile(r"(?:\s*(?:=|equals?|equal to|please|\?|!|\.))+\s*$", re.IGNORECASE)
_CURRENCY = re.compile(r"[$€£]")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_NUMBER = r"\d+(?:\.\d+)?|\.\d+"
# (pattern, replacement), in order: the longer phrases first
_WORDS = [
    (re.compile(rf"(?:the\s+)?square\s+root\s+of\s+({_NUMBER}|\([^()]*\))", re.IGNORECASE), r"sqrt(\1)"),
    (re.compile(rf"√\s*({_NUMBER}|\([^()]*\))"), r"sqrt(\1)"),
    (re.compile(rf"({_NUMBER})\s*(?:%|percent|per cent)\s+of\s+", re.IGNORECASE), r"\1/100*"),
    (re.compile(r"\bmultiplied\s+by\b|\btimes\b|[×·]|(?<=\d)\s*x\s*(?=[\d(.])", re.IGNORECASE), "*"),
    (re.compile(r"\bdivided\s+by\b|\bover\b|÷", re.IGNORECASE), "/"),
    (re.compile(r"\bplus\b", re.IGNORECASE), "+"),
    (re.compile(r"\bminus\b|−", re.IGNORECASE), "-"),
    (re.compile(r"\bto\s+the\s+power\s+of\b|\^", re.IGNORECASE), "**"),
    (re.compile(r"\s*\bsquared\b", re.IGNORECASE), "**2"),
    (re.compile(r"\s*\bcubed\b", re.IGNORECASE), "**3"),
    (re.compile(r"\bmod(?:ulo)?\b", re.IGNORECASE), "%"),
]
_EXPRESSION = re.compile(r"(?:sqrt|[\d.\s+\-*/%()])+")
_OPERATOR = re.compile(r"sqrt|(?<=[\d)\s])[+\-*/%]")


class Calculation(BaseModel):
    expression: str  # as evaluated: "17*23"
    value: float | int | None  # None: no value (a division by zero)
    text: str  # the answer as shown: "17 times 23 = 391"


def _asked(question: str) -> str:
    """The question without its lead-in and closing words: "What is 17 times 23?" → "17 times 23"."""
    return " ".join(_TAIL.sub("", _LEAD.sub("", question.strip(), count=1)).split())


def expression_of(question: str) -> str | None:
    """The arithmetic expression ``question`` consists of, or None when it says anything more.
    A text over ``MAX_CHARS`` is None before any pattern reads it: "1+1+…" a thousand terms deep
    overflows the parser's recursion, and long runs of spaces slow the patterns."""
    if len(question) > MAX_CHARS:
        return None
    text = _THOUSANDS.sub("", _CURRENCY.sub("", _asked(question)))
    for pattern, replacement in _WORDS:
        text = pattern.sub(replacement, text)
    text = " ".join(text.split())
    if not text or not _EXPRESSION.fullmatch(text) or not _OPERATOR.search(text) or not re.search(r"\d", text):
        return None
    return text


def _number(value: float | int, currency: str = "") -> str:
    if currency:  # "$12.50 * 3" → "$37.50"
        return f"{'-' if value < 0 else ''}{currency}{abs(value):,.2f}"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    return f"{value:.10g}"


def calculate(question: str) -> Calculation | None:
    """``question`` worked out exactly, or None when it is not arithmetic alone (or has no number
    small enough to show: a power too large, the root of a negative number)."""
    from simpleeval import InvalidExpression, SimpleEval

    expression = expression_of(question)
    if expression is None:
        return None
    evaluator = SimpleEval(functions={"sqrt": math.sqrt}, names={})
    shown = _asked(question)  # as the user put it: "15% of 80 = 12", not "15 ÷ 100 × 80 = 12"
    shown = shown[:1].upper() + shown[1:]
    currencies = set(_CURRENCY.findall(question))
    currency = currencies.pop() if len(currencies) == 1 else ""
    try:
        value = evaluator.eval(expression)
    except ZeroDivisionError:
        return Calculation(expression=expression, value=None, text=f"{shown} has no value: it divides by zero.")
    except (InvalidExpression, SyntaxError, ValueError, OverflowError, TypeError, MemoryError, RecursionError):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return Calculation(expression=expression, value=value, text=f"{shown} = {_number(value, currency)}")
