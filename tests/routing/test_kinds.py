"""Telling a math word problem from a chat turn, for requests that do not say what they are."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tether.gateway.chat import parse_chat, route_request
from tether.routing.kinds import infer_kind, looks_like_math
from tether.routing.router import RouteRequest

TASKS = Path(__file__).resolve().parents[2] / "data" / "routing" / "tasks.jsonl"
SUFFIX = "\n\nSolve it in a few short steps"  # the labelling's own instruction, which users do not write


def prompts(kind: str) -> list[str]:
    rows = [json.loads(line) for line in TASKS.read_text().splitlines()]
    return ["\n\n".join(m["content"] for m in r["messages"] if m["role"] == "user").split(SUFFIX)[0]
            for r in rows if r["kind"] == kind]


def test_word_problems_are_math_and_chat_is_not():
    assert looks_like_math("Sam has 3 boxes with twelve pens each. How many pens does he have?")
    assert looks_like_math("A shirt costs $20 and is 15% off. What is the final price?")
    assert looks_like_math("Calculate the total if 4 friends each pay 7 dollars.")
    assert not looks_like_math("How many kids do you have?")  # a quantity question, but no numbers
    assert not looks_like_math("I have 2 cats and 3 dogs, they are lovely.")  # numbers, but no question
    assert not looks_like_math("")
    assert infer_kind("What is the sum of 17 and 25?") == "gsm8k" and infer_kind("Hi, how are you?") == "chat"


def test_on_the_labelled_tasks_it_finds_the_math_and_little_else():
    math = prompts("gsm8k")
    others = prompts("chat") + prompts("writing") + prompts("feature")
    recall = sum(map(looks_like_math, math)) / len(math)
    false_positives = sum(map(looks_like_math, others)) / len(others)
    assert len(math) == 300 and len(others) == 372
    assert recall >= 0.97 and false_positives <= 0.01


def test_auto_requests_carry_the_inferred_kind():
    req = RouteRequest("Sam has 3 boxes with twelve pens each. How many pens does he have?", kind="auto")
    assert (req.kind, req.kind_inferred) == ("gsm8k", True)
    assert RouteRequest("Tell me a joke", kind="auto").kind == "chat"
    assert RouteRequest("x + 1", kind="math").kind == "gsm8k"  # an alias
    assert not RouteRequest("Tell me a joke", kind="chat").kind_inferred


@pytest.mark.parametrize("last, kind", [("How many pens do 3 boxes of 12 hold?", "gsm8k"), ("Thanks, bye!", "chat")])
def test_the_gateway_infers_from_the_last_user_turn_only(last, kind):
    chat = parse_chat({"model": "auto", "messages": [
        {"role": "user", "content": "I bought 3 boxes of 12 pens. How many pens is that in total?"},
        {"role": "assistant", "content": "36 pens."},
        {"role": "user", "content": last}]})
    req = route_request(chat, "auto", None, 64)
    assert req.kind == kind and req.kind_inferred and "36 pens." in req.prompt
