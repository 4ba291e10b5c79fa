"""One check for text that crossed a boundary: command-line arguments (decoded with
``surrogateescape``), JSON ``"\\ud800"`` escapes and YAML can all hold lone surrogates,
which no model, tokenizer or SQLite column can take."""

from __future__ import annotations

import re

from tether.errors import InputError

_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_INPUT_CHARS = 200_000  # far beyond any context window; stops pathological input early


def require_unicode(text: str, what: str = "text") -> str:
    """``text`` unchanged, or ``InputError`` naming where the unpaired surrogate is."""
    m = _SURROGATE.search(text)
    if m is not None:
        raise InputError(f"{what} is not valid Unicode (an unpaired surrogate at character {m.start()}; "
                         "invalid UTF-8 on the command line gives one)")
    return text


def replace_surrogates(text: str) -> tuple[str, bool]:
    """``text`` with each lone surrogate replaced by U+FFFD, and whether there was one. A pair
    held as two code points (halves of an emoji joined from two stream deltas) becomes its
    character."""
    if _SURROGATE.search(text) is None:
        return text, False
    out = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return out, out.count("\ufffd") > text.count("\ufffd")
