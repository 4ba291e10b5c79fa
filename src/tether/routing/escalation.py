"""Learned escalation: having seen the device's answer, would the cloud model do clearly better?

The prompt alone says little about which math problems the 0.5B model gets wrong (see
``docs/routing.md``); its answer says more. A cascade (AutoMix, FrugalGPT) answers on the
device first and scores the answer from signals it already has, at no extra model cost:
the mean and lowest token logprob, whether generation stopped or ran out of budget, how much
of the budget it used and, for math, whether the final number is a whole number, was copied
from the question, or follows an arithmetic step the answer itself got wrong; for text, whether
it is a refusal. A ridge regression over these, per task kind, predicts the cloud's quality gain
(0-1 scale) and is calibrated, like ``DifficultyModel``, to a fraction of answers escalated.
Trained by ``scripts/train_router.py``; weights ship in ``routing/data/escalation.json``.
"""

from __future__ import annotations

import ast
import operator
import re
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from tether.routing.scorer import LinearScorer

ANSWER_KINDS = ("gsm8k", "chat", "writing", "feature")  # any other kind is scored as chat
MATH = "gsm8k"
# The answer-length caps the training data was labelled with (``scripts/label_routing.py``).
TRAINED_BUDGET = {"gsm8k": 320, "chat": 80, "writing": 200, "feature": 120}
_NUMBER = re.compile(r"-?\d[\d,]*\.?\d*")
_PLAIN_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_ANSWER_LINE = re.compile(r"Answer:\s*\$?\s*(-?[\d,]*\.?\d+)")
_STEP = re.compile(r"(-?\d[\d,]*(?:\.\d+)?(?:\s*[-+*/×÷]\s*-?\d[\d,]*(?:\.\d+)?)+)\s*=\s*\$?\s*(-?\d[\d,]*(?:\.\d+)?)")
_REFUSAL = re.compile(r"I['’]m sorry|I cannot|I can['’]t|As an AI", re.I)
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


@dataclass(frozen=True)
class DeviceAnswer:
    """What the device's generation already tells about its answer."""

    text: str
    mean_logprob: float | None
    min_logprob: float | None
    finish_reason: str  # "stop" | "length"
    completion_tokens: int
    max_tokens: int
    samples: tuple[str, ...] = ()  # more answers the device sampled (temperature > 0) for self-consistency


def disagreement(answer: DeviceAnswer) -> float:
    """The share of sampled answers whose final number differs from the answer's (NaN: no samples).

    Self-consistency (Wang et al., 2022): a model that reaches the same number by different
    paths is more often right. NaN makes the scorer use the feature's neutral value.
    """
    if not answer.samples:
        return float("nan")
    number = final_number(answer.text)
    return sum(number is None or final_number(s) != number for s in answer.samples) / len(answer.samples)


def final_number(text: str) -> str | None:
    """The answer's final number ("Answer: N" if present, else the last number), normalized."""
    match = _ANSWER_LINE.search(text)
    candidates = [match.group(1)] if match else _NUMBER.findall(text)
    if not candidates:
        return None
    value = candidates[-1].replace(",", "").rstrip(".")
    try:
        number = float(value)
    except ValueError:
        return None
    return str(int(number)) if number == int(number) else str(number)


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_evaluate(node.operand)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    raise ValueError("not arithmetic")


def arithmetic_slips(text: str) -> int:
    """How many written steps like ``12 * 3 = 38`` are wrong (parsed, never ``eval``-ed)."""
    slips = 0
    for m in _STEP.finditer(text.replace("\\times", "*").replace("\\div", "/")):
        expr = m.group(1).replace(",", "").replace("×", "*").replace("÷", "/")
        try:
            value = _evaluate(ast.parse(expr, mode="eval"))
            claimed = float(m.group(2).replace(",", ""))
        except (SyntaxError, ValueError, ZeroDivisionError, OverflowError):
            continue
        slips += abs(value - claimed) > 0.01 + 1e-4 * abs(claimed)
    return slips


def answer_features(prompt: str, kind: str, answer: DeviceAnswer) -> np.ndarray:
    kind = kind if kind in ANSWER_KINDS else "chat"
    onehot = [1.0 if kind == k else 0.0 for k in ANSWER_KINDS]
    mean_lp = answer.mean_logprob if answer.mean_logprob is not None else -1.0
    min_lp = answer.min_logprob if answer.min_logprob is not None else -5.0
    stopped = 1.0 if answer.finish_reason == "stop" else 0.0
    used = min(answer.completion_tokens / max(answer.max_tokens, 1), 1.0)
    math = 1.0 if kind == MATH else 0.0
    number = final_number(answer.text) if math else None
    in_question = number is not None and number in _PLAIN_NUMBER.findall(prompt.replace(",", ""))
    return np.array([
        *onehot,
        *[mean_lp * k for k in onehot],
        *[min_lp * k for k in onehot],
        *[stopped * k for k in onehot],
        *[used * k for k in onehot],
        math * (number is not None and "." not in number),
        math * in_question,
        math * (arithmetic_slips(answer.text) > 0),
        math * bool(_ANSWER_LINE.search(answer.text)),
        (1 - math) * bool(_REFUSAL.search(answer.text)),
        disagreement(answer) if math else 0.0,
    ], dtype=np.float32)


SELF_CONSISTENCY = -1  # the disagreement feature is last; the only one that can be missing (NaN)


class EscalationModel(LinearScorer):
    packaged: ClassVar[str] = "escalation.json"
    what: ClassVar[str] = "escalation model"

    def cloud_gain(self, prompt: str, kind: str, answer: DeviceAnswer) -> float:
        """Predicted cloud score minus device score (0-1 scale) given the device's answer."""
        return self.score(answer_features(prompt, kind, answer))

    def gain_range(self, prompt: str, kind: str, answer: DeviceAnswer) -> tuple[float, float]:
        """The lowest and highest ``cloud_gain`` this answer can have once samples are drawn.

        Self-consistency costs a second device answer. When the whole range lies on one side
        of the threshold, no sample can change the decision and none need be drawn. The range
        is a single point for answers that are never compared (text) or already have samples.
        """
        x = answer_features(prompt, kind, answer)
        if not np.isnan(x[SELF_CONSISTENCY]):
            score = self.score(x)
            return score, score
        agree, disagree = x.copy(), x.copy()
        agree[SELF_CONSISTENCY], disagree[SELF_CONSISTENCY] = 0.0, 1.0
        a, b = self.score(agree), self.score(disagree)
        return min(a, b), max(a, b)
