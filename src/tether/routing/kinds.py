"""What kind of task a prompt is, for callers that cannot say (the gateway, chat).

The routing models score a request by its kind: a math word problem is where the cloud model
helps most (it doubles the device's GSM8K accuracy), and the cascade checks math answers in
ways that mean nothing for prose (the final number, arithmetic steps, self-consistency). An
app calling ``/v1/chat/completions`` does not tag its requests, so ``kind="auto"`` asks the
router to tell a word problem from a chat turn by the text alone. The rule is deliberately
plain (numbers plus a quantity question) and measured on the labelled tasks in
``docs/routing.md``.
"""

from __future__ import annotations

import re

from tether.routing.escalation import MATH

CHAT = "chat"

_NUMBER = re.compile(
    r"(?<![\w.])\$?\d*\.?\d+(?:[.,/]\d+)*%?"
    r"|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty|"
    r"hundred|thousand|dozen|half|twice|double|triple|thrice|third|quarter|fourth|fifth)s?\b",
    re.I)
_QUANTITY = re.compile(
    r"\bhow (?:many|much|long|far|old|often|fast|tall|high|big|heavy)\b"
    r"|\bwhat(?:'s| is| was| were| are| will| would)\b[^.?!]{0,60}?\b"
    r"(?:total|sum|difference|average|cost|price|percent(?:age)?|number|amount|area|perimeter|ratio|speed|"
    r"profit|weight|height|size|measure|age|value|score|length|distance|time)s?\b"
    r"|\b(?:calculate|compute|solve for|find the (?:total|number|value|sum|difference|combined))\b"
    r"|\bwhat (?:percent(?:age)?|fraction|number|score)\b",
    re.I)


def looks_like_math(text: str) -> bool:
    """A word problem: at least two numbers and a question about a quantity."""
    return len(_NUMBER.findall(text)) >= 2 and _QUANTITY.search(text) is not None


def infer_kind(text: str) -> str:
    """``gsm8k`` (math) for a word problem, else ``chat``."""
    return MATH if looks_like_math(text) else CHAT
