"""Smart replies: three short, distinct replies to a message or an email.

Generation is guided by a JSON schema (exactly three strings of bounded
length), so the output always parses. Duplicates or blanks get one retry;
after that the gaps are filled from a fixed set and ``fallback`` is True.
"""

from __future__ import annotations

import re
import time
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from tether.errors import InvalidOutputError
from tether.features import prompts
from tether.features._common import check_text
from tether.models.catalog import DEFAULT_MODEL
from tether.models.engine import Sampling
from tether.session import Session

Reply = Annotated[str, StringConstraints(min_length=2, max_length=80)]


class _ReplySchema(BaseModel):
    replies: list[Reply] = Field(min_length=3, max_length=3)


class SmartReplies(BaseModel):
    message: str
    replies: list[str]
    fallback: bool = False  # True: some replies come from the fixed set, not the model
    model: str
    duration_s: float


_FALLBACK_QUESTION = ["Yes, sounds good.", "Sorry, I can't.", "Can you tell me more?"]
_FALLBACK_STATEMENT = ["Thanks for letting me know!", "Got it.", "Can we talk about this later?"]
MAX_MESSAGE_CHARS = 4000  # longer emails are cut to their start: replies depend on the gist


_ENUMERATION = re.compile(r"^(?:\d+[.)]|[-*•])\s*")


def _key(reply: str) -> str:
    return re.sub(r"[^\w ]", "", reply.lower()).strip()


def distinct(replies: list[str]) -> list[str]:
    seen, out = set(), []
    for r in replies:
        r = _ENUMERATION.sub("", " ".join(r.split()))
        if r and _key(r) and _key(r) not in seen:
            seen.add(_key(r))
            out.append(r)
    return out


def smart_replies(message: str, *, model: str = DEFAULT_MODEL) -> SmartReplies:
    check_text(message, "message")
    start = time.perf_counter()
    prompt = message.strip()[:MAX_MESSAGE_CHARS]
    best: list[str] = []
    for attempt in range(2):
        session = Session(instructions=prompts.REPLIER, model=model)
        sampling = Sampling.greedy(120) if attempt == 0 else Sampling.random(0.8, seed=11, max_tokens=120)
        try:
            replies = distinct(session.respond(prompts.SMART_REPLIES.format(message=prompt), _ReplySchema, sampling=sampling).content.replies)
        except InvalidOutputError:
            replies = []
        if len(replies) > len(best):
            best = replies
        if len(best) == 3:
            break
    fallback = len(best) < 3
    if fallback:
        pool = _FALLBACK_QUESTION if "?" in message else _FALLBACK_STATEMENT
        best = distinct(best + pool)[:3]
    return SmartReplies(message=message, replies=best, fallback=fallback, model=model,
                        duration_s=time.perf_counter() - start)
