"""Helpers shared by the features: input checks, cleaning model output."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import BaseModel

from tether.errors import InputError
from tether.models.engine import LlamaEngine
from tether.text import MAX_INPUT_CHARS, require_unicode


T = TypeVar("T")


class DeviceResult(Generic[T]):
    """What the device makes of one routed request, made at most once.

    In the cascade the router's ``check`` makes it from the device's first answer, and the
    feature reuses it; when a rule decided instead, nothing has made it yet, so the feature
    calls it itself: with the routed answer when the device answered, with ``None`` when the
    request went away first and the device must write its own (the cloud's answer failed).
    ``make(answer, cut)`` gets the raw answer and whether it stopped at its token budget."""

    def __init__(self, make: Callable[[str | None, bool], T]) -> None:
        self._make = make
        self._made: list[T] = []

    def __call__(self, answer: str | None = None, cut: bool = False) -> T:
        if not self._made:
            self._made.append(self._make(answer, cut))
        return self._made[0]

    @property
    def made(self) -> bool:
        return bool(self._made)


class Edit(BaseModel):
    start: int  # character offsets into the original text
    end: int
    original: str
    replacement: str

def check_text(text: str, what: str = "text") -> str:
    if not isinstance(text, str):
        raise InputError(f"{what} must be a string, not {type(text).__name__}")
    if not text.strip():
        raise InputError(f"{what} is empty")
    if len(text) > MAX_INPUT_CHARS:
        raise InputError(f"{what} is {len(text):,} characters; the limit is {MAX_INPUT_CHARS:,}")
    return require_unicode(text, what)


def read_file(path: str | Path) -> bytes:
    """File bytes, or an ``InputError`` that names the file and says what is wrong."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None


def decode_utf8(raw: bytes, name: str) -> str:
    """Strict UTF-8: guessing an encoding would silently corrupt the user's text. A leading byte
    order mark (Windows editors write one) is dropped: it is no part of the text, and json refuses it."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:  # its offset counts from after a byte order mark: count from the file's start
        at = exc.start + (3 if raw.startswith(b"\xef\xbb\xbf") else 0)
        raise InputError(f"{name}: not valid UTF-8 (byte {at})") from None


def answer_budget(engine: LlamaEngine, text: str, factor: float = 1.4, floor: int = 48) -> int:
    """Tokens to allow for an answer about as long as ``text``."""
    return max(floor, int(engine.count_tokens(text) * factor) + 16)


_PREAMBLE = re.compile(
    r"^\s*(?:here(?:'s| is)[^\n:]*:|(?:corrected|rewritten|revised|summary|result)[^\n:]{0,20}:"
    # a remark before it, on a line of its own: "The text has several spelling issues. Here's the corrected version:"
    r"|[^\n]{0,200}?[.!]\s+here(?:'s| is)[^\n:]*:(?=[ \t]*\n))\s*",
    re.IGNORECASE,
)
_CLOSES = {'"': '"', "“": "”"}  # not ' : "'tis", "'90s"


def clean_output(text: str, source: str = "") -> str:
    """Strip chatter small models add around an answer: a preamble, code fences, quotes. What
    the ``source`` text itself has ("Here is the plan: …", a quoted line) is the user's, and stays."""
    src = source.strip()
    out = text.strip()
    if not src.startswith("```"):
        out = re.sub(r"^```[a-z]*\n?|\n?```$", "", out).strip()
    preamble, own = _PREAMBLE.match(out), _PREAMBLE.match(src)
    # the source's own lead-in, perhaps corrected ("Here is teh plan:" → "Here is the plan:"), stays
    if preamble and not (own and difflib.SequenceMatcher(a=own.group().lower(), b=preamble.group().lower()).ratio() > 0.8):
        out = out[preamble.end():].strip()
    quoted = lambda t: len(t) >= 2 and t[0] == t[-1] and t[0] in "\"'“”"  # noqa: E731
    if quoted(out) and not quoted(src):
        out = out[1:-1].strip()
    elif out[:1] in _CLOSES and not src.startswith(out[0]) and _CLOSES[out[0]] not in out[1:]:
        out = out[1:].lstrip()  # the opening quote of an answer the model quoted and did not close
    return out


NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")


_WORDS = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty".split()
NUMBER_WORDS = {w: str(i) for i, w in enumerate(_WORDS)} | {
    w: str(v) for w, v in zip("thirty forty fifty sixty seventy eighty ninety hundred thousand million".split(),
                              (30, 40, 50, 60, 70, 80, 90, 100, 1000, 1_000_000))}
_NUMBER_WORD = re.compile(r"\b(" + "|".join(NUMBER_WORDS) + r")\b", re.IGNORECASE)


_LIST_MARKER = re.compile(r"(?m)^\s*(?:[-*•][ \t]+)?\d{1,2}[.)]\s")  # "1. ", "- 1. "


def numbers_in(text: str, words: bool = True) -> set[str]:
    """Digit runs in ``text`` ("1,250" as 1250, "3:00" and "03:00" as 3; list markers "1." are no number),
    plus with ``words`` spelled-out numbers (one to twenty, the tens, hundred…) as digits. Words
    count where a number may come from; not where one must be kept: "one" is also a pronoun.
    Commas that do not group thousands separate numbers: a CSV row's "150000,75000" is two."""
    text = _LIST_MARKER.sub(" ", text)
    found = set()
    for run in NUMBER.findall(text):
        run = run.rstrip(".,:")
        for n in [run.replace(",", "")] if _THOUSANDS.fullmatch(run) else run.split(","):
            if n:
                found.add(_normal_number(n))
    if words:
        found |= {NUMBER_WORDS[w.lower()] for w in _NUMBER_WORD.findall(text)}
    return found


_THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+(?:[.:]\d+)*")


def _normal_number(n: str) -> str:
    """ "09:30" as "9:30", "03" as "3", "14:00" as "14"."""
    if re.fullmatch(r"0\d(?::\d\d)?", n):  # "09:30" is "9:30", "03 June" is "3 June"
        n = n[1:]
    return n[:-3] if re.fullmatch(r"\d{1,2}:00", n) else n


# a title before a name: its full stop ends no sentence ("Dr. Patel", "St. Vincent Hospital")
_TITLE = re.compile(r"(?<![\w.])(?:dr|mr|mrs|ms|mx|prof|st|mt|gen|col|capt|lt|sgt|rev|hon|gov|sen|rep|pres)\.$", re.I)
_INITIAL = re.compile(r"(?:^|\s)(?:([\w'’-]+)\s+)?[A-Z]\.$")  # "Maria J. Lopez"
# a letter that names, not an initial: "Conference Room B. Weekly sync", "Gate C. Boarding"
_LETTERED = frozenset("""room gate plan part form unit zone wing hall door area type bay row lot level floor block
suite class grade stage phase track seat annex building terminal section platform vitamin appendix exhibit option
version schedule concourse""".split())
_BREAK = re.compile(r"(?<=[.!?])\s+")


def abbreviated(before: str, after: str) -> bool:
    """Whether the full stop that ends ``before`` is an abbreviation's, given the text ``after``
    it: split there, a summary cut to its first sentence was "Dr.". After a title always; after
    an initial before a capital; after another abbreviation ("approx.", "e.g.", "No.") before a
    lower-case word or a number."""
    from tether.features.proofcheck import _ABBREVIATION

    if not before.endswith("."):
        return False
    tail, nxt = before[-14:], after.lstrip()[:1]
    if _TITLE.search(tail):
        return True
    initial = _INITIAL.search(before[-30:])
    if initial and nxt.isupper() and (initial.group(1) or "").lower() not in _LETTERED:
        return True
    return bool(nxt) and (nxt.islower() or nxt.isdigit()) and bool(_ABBREVIATION.search(tail))


def split_sentences(text: str, breaks: re.Pattern[str] = _BREAK) -> list[str]:
    """``text``'s sentences: split where ``breaks`` matches (the space after an end mark), except
    after an abbreviation (``abbreviated``)."""
    pieces, start = [], 0
    for m in breaks.finditer(text):
        if not abbreviated(text[start:m.start()], text[m.end():]):
            pieces.append(text[start:m.start()])
            start = m.end()
    pieces.append(text[start:])
    return [p.strip() for p in pieces if p.strip()]
