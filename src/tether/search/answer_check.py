"""Does a device answer to a question about the user's files say what was asked?

The cascade's check for ``tether ask`` (and ``tether chat``'s personal turns): a device answer
that fails it goes to the private cloud, when one is configured, and otherwise is kept with a
note saying what it lacks. The 0.5B answers "When and where is the board meeting?" with the date
alone, "What day is the maintenance?" with "Wednesday", and sometimes writes a number no excerpt
holds. A wrong name in a right-looking answer passes: form, not truth, is checked here.
Measured in ``benchmarks/ask.py`` against the learned escalation model.
"""

from __future__ import annotations

import re

from tether.search.extract import DAY_NAMES, MONTH_NAMES

_CALENDAR = frozenset(n.lower() for n in (*DAY_NAMES, *MONTH_NAMES)) | frozenset(
    n.lower()[:3] for n in (*DAY_NAMES, *MONTH_NAMES))
_WHEN = re.compile(r"\b(?:when|what time|what day|which days?|what date|which date|what hour)\b|"
                   r"\bwhen's\b", re.IGNORECASE)
_AT_WHAT_TIME = re.compile(r"\b(?:when|when's|what time)\b", re.IGNORECASE)
_WHERE = re.compile(r"\bwhere(?:'s)?\b|\b(?:which|what) (?:room|venue|location|address|bar|restaurant|hotel|place)\b",
                    re.IGNORECASE)
_WHO = re.compile(r"^\s*(?:who|whom|whose|who's)\b|\b(?:and|,) (?:who|whom)\b", re.IGNORECASE)
_HOW_MUCH = re.compile(r"\bhow (?:much|many)\b|\b(?:price|cost|amount|revenue|total|budget|balance|number of)\b",
                       re.IGNORECASE)
_NOT_FOUND = re.compile(r"could(?: not|n't) find|no (?:information|mention)|no excerpt|"
                        r"not (?:mentioned|found|provided|specified|available)|"
                        r"do(?:es)? not (?:contain|mention|say|include|specify)|I['’]m sorry|I cannot|I can['’]t",
                        re.IGNORECASE)
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
_CLOCK = re.compile(r"\b\d{1,2}:\d{2}\b|\b\d{1,2} ?(?:am|pm|a\.m\.|p\.m\.)", re.IGNORECASE)
_CAPITALISED = re.compile(r"\b[A-Z][\w'’.-]*")
_NUMBERED_PLACE = re.compile(r"\b(?:room|floor|suite|office|gate|building|hall)\s*\w*\d", re.IGNORECASE)
# Capitalised words that name no place or person: sentence openers, pronouns, time zones.
_NOT_NAMES = frozenset("i the your you it its a an on at in is he she they we my this that there yes no based "
                       "according utc gmt am pm and of for to".split())


def _numbers(text: str) -> set[str]:
    """Every number in ``text`` as plain digits: "200,000" is 200000; "09:15" is 9 and 15."""
    out = set()
    for m in _NUMBER.finditer(text):
        whole = re.sub(r",(?=\d{3}\b)", "", m.group()).replace(",", ".")
        out.update(str(int(part)) for part in re.split(r"[.:]", whole) if part)
    return out


def _names_said(answer: str, question: str, excerpts: str) -> list[str]:
    """Capitalised words of ``answer`` that the excerpts hold and the question does not already
    say, and that are no day, month or pronoun: a place or a person the answer names from them
    ("Everyone", opening a sentence, is none)."""
    asked = {w.lower().strip(".'’s") for w in re.findall(r"[\w'’.-]+", question)}
    held = set(re.findall(r"[\w'’-]+", excerpts))
    return [w for w in _CAPITALISED.findall(answer)
            if w.lower().strip(".,") not in _CALENDAR | _NOT_NAMES and w.lower().strip(".'’s") not in asked
            and w.strip(".,'’") in held]


def answer_problem(question: str, answer: str, excerpts: str, *, cut: bool = False) -> str | None:
    """What the answer lacks that the question asks for (None: nothing found).

    ``excerpts``: the text the device was given. Checked: a cut answer; "I could not find it";
    a number neither the excerpts nor the question hold (sums the answer works out count too,
    so "how much is left" may escalate a right answer); "when" with no date or time, or no
    time where the excerpts give one; "where" with no place named; "who" with no name or
    address; "how much/many" with no number."""
    if cut:
        return "the answer was cut off"
    if _NOT_FOUND.search(answer):
        return "the answer says it could not find it"
    made_up = _numbers(answer) - _numbers(excerpts) - _numbers(question)
    if made_up:
        return f"the answer has a number no excerpt holds ({', '.join(sorted(made_up, key=int)[:3])})"
    if _WHEN.search(question) and not _NUMBER.search(answer):
        return "the question asks when; the answer gives no date or time"
    if _AT_WHAT_TIME.search(question) and _CLOCK.search(excerpts) and not _CLOCK.search(answer):
        return "the question asks when; the answer gives no time, though the excerpts do"
    if _WHERE.search(question) and not (_names_said(answer, question, excerpts) or _NUMBERED_PLACE.search(answer)):
        return "the question asks where; the answer names no place"
    if _WHO.search(question) and not (_names_said(answer, question, excerpts) or "@" in answer):
        return "the question asks who; the answer names no one"
    if _HOW_MUCH.search(question) and not _NUMBER.search(answer):
        return "the question asks how much or how many; the answer has no number"
    return None
