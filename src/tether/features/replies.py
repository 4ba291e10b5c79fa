"""Smart replies: three short, distinct replies to a message or an email.

Generation is guided by a JSON schema (one reply that agrees, one that declines,
one that asks), so the output
always parses. A reply is cut to whole sentences within MAX_REPLY_CHARS, and one
that is cut off, blank, a duplicate or the message said back is dropped. Missing
replies get one sampled retry that keeps the good ones; after that the gaps are
filled from a fixed set and ``fallback`` is True.
"""

from __future__ import annotations

import re
import time
from typing import Annotated

from pydantic import BaseModel, StringConstraints

from tether.errors import InvalidOutputError
from tether.features import prompts
from tether.features._common import check_text
from tether.models.catalog import DEFAULT_MODEL
from tether.models.engine import Sampling
from tether.session import Session

MAX_REPLY_CHARS = 80
# The grammar allows more than a reply may have, so a long reply is cut at a sentence end below
# MAX_REPLY_CHARS instead of being stopped mid-word by the grammar ("…to celebrate the!").
Reply = Annotated[str, StringConstraints(min_length=2, max_length=160)]


class _ReplySchema(BaseModel):
    # One field per kind of reply: with a bare list of three, small models answer with the
    # prompt's own labels ("Accepting", "Declining", "Questioning").
    agree: Reply
    decline: Reply
    ask: Reply

    @property
    def replies(self) -> list[str]:
        return [self.agree, self.decline, self.ask]


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
# A label for a kind of reply, not a reply ("Accepting", "Decline.", "Question:")
_LABEL = re.compile(r"^(?:accept|agree|declin|refus|question|ask|repl|respon)\w*(?:\W*$|:)", re.IGNORECASE)
# An assistant talking, not the user: a refusal or an offer of help ("I'm sorry, but I can't
# assist with that.", "How can I help you today?") that small models write when a message is
# not a request. Sent as a reply, it reads as a bot.
_ASSISTANT = re.compile(r"\b(?:can(?:no|['’])t|unable to) (?:assist|help) (?:you )?with (?:that|this)\b"
                        r"|\bhow (?:can|may) I (?:assist|help) you\b|\banything else I can (?:do|help)"
                        r"|\bas an AI\b", re.IGNORECASE)


def _key(reply: str) -> str:
    return re.sub(r"[^\w ]", "", reply.lower()).strip()


def _trigrams(text: str) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i:i + 3]) for i in range(len(words) - 2)}


def usable(reply: str, message: str = "") -> str | None:
    """``reply`` tidied and cut to whole sentences within MAX_REPLY_CHARS, or None when no
    complete sentence fits, it is a label or an assistant's refusal, or it mostly repeats the
    message back (a small model's habit)."""
    r = _ENUMERATION.sub("", " ".join(reply.split()))
    if len(r) > MAX_REPLY_CHARS:
        end = max(r.rfind(mark, 0, MAX_REPLY_CHARS) for mark in ".!?")
        if end < 1:
            return None
        r = r[:end + 1]
    if _LABEL.match(r) or _ASSISTANT.search(r):
        return None
    grams = _trigrams(r)
    if len(grams) >= 4 and len(grams & _trigrams(message)) >= 0.6 * len(grams):
        return None
    return r or None


def distinct(replies: list[str], message: str = "") -> list[str]:
    seen, out = set(), []
    for raw in replies:
        r = usable(raw, message)
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
        sampling = Sampling.greedy(160) if attempt == 0 else Sampling.random(0.8, seed=11, max_tokens=160)
        try:
            answer = session.respond(prompts.SMART_REPLIES.format(message=prompt), _ReplySchema, sampling=sampling)
            replies = distinct(best + answer.content.replies, message)[:3]
        except InvalidOutputError:
            replies = []
        best = replies or best  # a retry keeps the good replies of the first try and adds to them
        if len(best) == 3:
            break
    fallback = len(best) < 3
    if fallback:
        pool = _FALLBACK_QUESTION if "?" in message else _FALLBACK_STATEMENT
        best = distinct(best + pool)[:3]
    return SmartReplies(message=message, replies=best, fallback=fallback, model=model,
                        duration_s=time.perf_counter() - start)
