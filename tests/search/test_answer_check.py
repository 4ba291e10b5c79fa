"""The ask cascade's check, on answers qwen2.5-0.5b really gave (benchmarks/ask.py, 2026-12-05)."""

from __future__ import annotations

import pytest

from tether.search.answer_check import answer_problem

BOARD = """[1] (calendar) Quarterly Board Meeting
Start: Thursday 23 May 2024 09:00
End: Thursday 23 May 2024 11:00
Location: Main Conference Hall
Attendee: emma.johnson@bluesparrowtech.com; board.members@bluesparrowtech.com"""
BUDGET = """[1] (note) budget-2024.xlsx
department,allocated,spent
Development,"200,000","120,000"
Marketing,"150,000","90,000\""""


@pytest.mark.parametrize(("question", "answer", "excerpts", "problem"), [
    ("When and where is the quarterly board meeting?", "Thursday 23 May 2024", BOARD, "no time, though the excerpts"),
    ("When and where is the quarterly board meeting?", "Thursday 23 May 2024 at 09:00", BOARD, "names no place"),
    ("What day is the board meeting?", "Thursday", BOARD, "no date or time"),
    ("When is the board meeting?", "I could not find it in the excerpts.", BOARD, "could not find"),
    ("When is the board meeting?", "It is on Thursday 23 May 2024 at 10:30.", BOARD, "no excerpt holds (10, 30)"),
    ("Who is coming to the board meeting?", "Everyone on the board is coming.", BOARD, "names no one"),
    ("How much of the Development budget is left?", "Most of it is left.", BUDGET, "has no number"),
])
def test_an_answer_that_lacks_what_was_asked_is_named(question, answer, excerpts, problem):
    said = answer_problem(question, answer, excerpts)
    assert said is not None and problem in said


@pytest.mark.parametrize(("question", "answer", "excerpts"), [
    ("When and where is the quarterly board meeting?",
     "The quarterly board meeting is on Thursday 23 May 2024 at 09:00 in the Main Conference Hall.", BOARD),
    ("What day is the board meeting?", "Thursday, 23 May.", BOARD),
    ("When's the board meeting?", "On Thursday 23 May 2024 from 9 am to 11 am.", BOARD),
    ("Who is coming to the board meeting?", "emma.johnson@bluesparrowtech.com and the board members.", BOARD),
    ("Where is the board meeting?", "Main Conference Hall", BOARD),
    # a number written another way is the same number: "200,000" is 200000, "09:00" holds 9
    ("How much was allocated to Development?", "200000 was allocated; 120,000 is spent.", BUDGET),
    ("Which room is the board meeting in?", "The Main Conference Hall.", BOARD),
    ("What is the board meeting about?", "The quarterly board meeting.", BOARD),
])
def test_an_answer_that_says_what_was_asked_passes(question, answer, excerpts):
    assert answer_problem(question, answer, excerpts) is None


def test_a_cut_answer_fails_and_a_number_from_the_question_is_no_invention():
    assert answer_problem("When is it?", "On Thursday 23 May", BOARD, cut=True) == "the answer was cut off"
    # the question's own number may be said back, though no excerpt holds it
    assert answer_problem("What is on my calendar for the 30th?", "Nothing on 30 May.", BOARD) is None
