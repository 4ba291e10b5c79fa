"""Helpers shared by the features: input checks, cleaning model output."""

from __future__ import annotations

import re
from pathlib import Path

from tether.errors import InputError
from tether.models.engine import LlamaEngine
from tether.text import require_unicode

MAX_INPUT_CHARS = 200_000  # far beyond any context window; stops pathological input early


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
    """Strict UTF-8: guessing an encoding would silently corrupt the user's text."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{name}: not valid UTF-8 (byte {exc.start})") from None


def answer_budget(engine: LlamaEngine, text: str, factor: float = 1.4, floor: int = 48) -> int:
    """Tokens to allow for an answer about as long as ``text``."""
    return max(floor, int(engine.count_tokens(text) * factor) + 16)


_PREAMBLE = re.compile(
    r"^\s*(?:here(?:'s| is)[^\n:]*:|(?:corrected|rewritten|revised|summary|result)[^\n:]{0,20}:)\s*",
    re.IGNORECASE,
)


def clean_output(text: str) -> str:
    """Strip chatter small models add around an answer: a preamble, code fences, quotes."""
    out = text.strip()
    out = re.sub(r"^```[a-z]*\n?|\n?```$", "", out).strip()
    out = _PREAMBLE.sub("", out, count=1).strip()
    if len(out) >= 2 and out[0] == out[-1] and out[0] in "\"'“”":
        out = out[1:-1].strip()
    return out


NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")


_WORDS = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty".split()
NUMBER_WORDS = {w: str(i) for i, w in enumerate(_WORDS)} | {
    w: str(v) for w, v in zip("thirty forty fifty sixty seventy eighty ninety hundred thousand million".split(),
                              (30, 40, 50, 60, 70, 80, 90, 100, 1000, 1_000_000))}
_NUMBER_WORD = re.compile(r"\b(" + "|".join(NUMBER_WORDS) + r")\b", re.IGNORECASE)


def numbers_in(text: str) -> set[str]:
    """Digit runs in ``text``, plus spelled-out numbers (one to twenty, the tens, hundred…) as digits."""
    found = {n.rstrip(".,:") for n in NUMBER.findall(text)}
    found |= {NUMBER_WORDS[w.lower()] for w in _NUMBER_WORD.findall(text)}
    return found
