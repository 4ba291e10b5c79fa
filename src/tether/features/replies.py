"""Smart replies: three short, distinct replies to a message or an email.

Generation is guided by a JSON schema (one reply that agrees, one that declines,
one that asks), so the output
always parses. A reply is cut to whole sentences within MAX_REPLY_CHARS, and one
that is cut off, blank, a duplicate or the message said back is dropped. Missing
replies get one sampled retry that keeps the good ones; after that the gaps are
filled from a fixed set and ``fallback`` is True. A gap is filled kind for kind
(a missing "decline" by a decline), so the three stay one of each. With a router, a gap the retry
leaves is the cascade's reason to ask the private cloud instead.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, StringConstraints

from tether.errors import InputError, InvalidOutputError
from tether.features import prompts
from tether.features._common import DeviceResult, check_text
from tether.models.catalog import DEFAULT_MODEL
from tether.models.engine import Sampling
from tether.routing.tiers import DEVICE
from tether.session import Session, guided_prompt

if TYPE_CHECKING:
    from tether.routing.router import Router

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
    tier: str = DEVICE  # where they were written
    route: str = ""  # with a router: why it ran there (the decision and its notes)


_FALLBACK_QUESTION = ["Yes, sounds good.", "Sorry, I can't.", "Can you tell me more?"]
_FALLBACK_STATEMENT = ["Thanks for letting me know!", "Got it.", "Can we talk about this later?"]
MAX_MESSAGE_CHARS = 4000  # longer emails are cut to their start: replies depend on the gist


_ENUMERATION = re.compile(r"^(?:\d+[.)]|[-*•])\s*")
# A label for a kind of reply, not a reply ("Accepting", "Decline.", "Question:")
_LABEL = re.compile(r"^(?:accept|agree|declin|refus|question|ask|repl|respon)\w*(?:\W*$|:)", re.IGNORECASE)
# The schema's field names said back: "Yes, I agree to the latest report.", "No, I decline to
# the follow-up email.", "Agree, these edits look good." are the 0.5B's answer to mail that asks
# nothing (7 of 17 received emails in benchmarks/replies_cascade.py); nobody writes them.
_FIELD_ECHO = re.compile(r"\b(?:agree|decline)(?:d|ing)? to\b|^(?:agree|decline)\b|\bI decline\b"
                         r"|\bI am (?:agreeing|declining)\b", re.IGNORECASE)
# An assistant talking, not the user: a refusal or an offer of help ("I'm sorry, but I can't
# assist with that.", "How can I help you today?") that small models write when a message is
# not a request. Sent as a reply, it reads as a bot.
_CANNOT = r"\b(?:can(?:no|['’])t|unable to|not able to) "
_ASSISTANT = re.compile(_CANNOT + r"assist\b|" + _CANNOT + r"help (?:you )?with (?:that|this)\b"
                        r"|\bhow (?:can|may) I (?:assist|help) you\b|\banything else I can (?:do|help)"
                        r"|\bas an AI\b", re.IGNORECASE)


_ANSWER = re.compile(r"(?i)^(?:yes|no|yeah|yep|nope|sure|sorry|of course|absolutely|definitely|okay|ok)\b")
_FIRST_PERSON = frozenset("i im ill id ive we".split())  # as _trigrams spells them, apostrophes dropped


def _key(reply: str) -> str:
    return re.sub(r"[^\w ]", "", reply.lower()).strip()


def _trigrams(text: str) -> set[tuple[str, ...]]:
    """Word trigrams, apostrophes dropped: a reply's "won't" repeats a message's "wont"."""
    words = re.findall(r"\w+", re.sub(r"['’]", "", text.lower()))
    return {tuple(words[i:i + 3]) for i in range(len(words) - 2)}


def usable(reply: str, message: str = "") -> str | None:
    """``reply`` tidied and cut to whole sentences within MAX_REPLY_CHARS, or None when no
    complete sentence fits, it is a label or a field name said back, an assistant's refusal, a
    fragment or a loop, or it mostly repeats the message back (a small model's habit)."""
    r = _ENUMERATION.sub("", " ".join(reply.split()))
    if len(r) > MAX_REPLY_CHARS:
        end = max(r.rfind(mark, 0, MAX_REPLY_CHARS) for mark in ".!?")
        if end < 1:
            return None
        r = r[:end + 1]
    if _LABEL.match(r) or _FIELD_ECHO.search(r) or _ASSISTANT.search(r):
        return None
    if r[-1] in ",;:-–(" or not re.search(r"[^\W\d_]", r):
        return None  # a fragment that stops mid-clause ("Your friendly smile,"), or no word at all
    words = re.findall(r"\w+", r.lower())
    if len(set(zip(words, words[1:], words[2:]))) < len(words) - 2:
        return None  # a loop ("I'm sorry, I'm sorry, I'm sorry")
    grams = _trigrams(r)
    shared = grams & _trigrams(message)
    if len(grams) >= 4 and len(shared) >= 0.6 * len(grams) and not _answers(r, shared):
        return None
    return r or None


def _answers(reply: str, shared: set[tuple[str, ...]]) -> bool:
    """Does a reply that repeats much of the message answer it? It opens with an answer ("Yes, I
    am up for a hiking trip this weekend." to "Are you up for a hiking trip this weekend?") and
    says none of the sender's first-person words as its own ("Yes, I am planning a party…" to
    "I am planning a party…" is the message said back)."""
    return bool(_ANSWER.match(reply)) and not any(g[0] in _FIRST_PERSON for g in shared)


def distinct(replies: list[str], message: str = "") -> list[str]:
    seen, out = set(), []
    for raw in replies:
        r = usable(raw, message)
        if r and _key(r) and _key(r) not in seen:
            seen.add(_key(r))
            out.append(r)
    return out


KINDS = ("agree", "decline", "ask")  # the schema's fields: one reply of each kind
Slots = dict[str, str]  # kind → reply, in the order they were filled; a kind missing is a gap


def fill(slots: Slots, more: dict[str, str] | _ReplySchema, message: str = "") -> Slots:
    """``slots`` with each gap filled by ``more``'s reply of the same kind, when it is ``usable``
    and repeats no reply kept. Kind for kind: a retry's second "agree" filled the gap its
    "decline" left, and the user got two yeses and no way to say no."""
    more = more.model_dump() if isinstance(more, _ReplySchema) else more
    out = dict(slots)
    for kind in KINDS:
        r = usable(more[kind], message) if kind not in out and more.get(kind) else None
        if r and _key(r) and _key(r) not in {_key(x) for x in out.values()}:
            out[kind] = r
    return out


def with_fallback(slots: Slots, message: str) -> tuple[list[str], bool]:
    """(the replies, whether the fixed set filled a gap): each gap from the fixed set's reply of
    its kind ("Sorry, I can't." for a missing decline), else from any of the set left over."""
    if len(slots) == len(KINDS):
        return list(slots.values()), False
    pool = _FALLBACK_QUESTION if "?" in message else _FALLBACK_STATEMENT
    slots = fill(slots, dict(zip(KINDS, pool)))
    for kind in KINDS:  # a fixed reply the model's own already says: another from the set
        for spare in pool:
            if kind not in slots:
                slots = fill(slots, {kind: spare})
    return list(slots.values()), True


def smart_replies(message: str, *, model: str = DEFAULT_MODEL, router: "Router | None" = None, tier: str = "auto",
                  consent: bool | None = None) -> SmartReplies:
    """Three replies to ``message``. With a ``router`` (whose device model is then the one used)
    the request goes through it as the ``replies`` feature: where a rule sends it (a busy or
    low-power device), where ``tier`` names a tier, or when the device's replies and their retry
    leave a gap (the cascade's check), it is written off the device, pseudonymized, and restored
    here. ``consent``: this request's answer for a third party (None: the saved policy)."""
    check_text(message, "message")
    if router is None and tier not in ("auto", DEVICE):
        raise InputError(f"tier {tier!r} needs a router to reach it: smart_replies(..., router=Router.from_config())")
    start = time.perf_counter()
    prompt = prompts.SMART_REPLIES.format(message=message.strip()[:MAX_MESSAGE_CHARS])
    written, route = DEVICE, ""
    if router is None:
        best = _on_device(model, prompt, message)
    else:
        model = getattr(router.device, "model", model)
        best, written, route = _routed(router, model, prompt, message, tier, consent)
    replies, fallback = with_fallback(best, message)
    return SmartReplies(message=message, replies=replies, fallback=fallback, model=model,
                        duration_s=time.perf_counter() - start, tier=written, route=route)


def _parsed(answer: str, message: str) -> Slots:
    """The usable replies in a model's JSON answer, by kind; none when it does not parse."""
    try:
        return fill({}, _ReplySchema.model_validate_json(answer), message)
    except ValueError:
        return {}


def _on_device(model: str, prompt: str, message: str, first: Slots | None = None) -> Slots:
    """Up to three usable replies, one of each kind: greedy first (or ``first``, the router's
    device answer), then one sampled retry that keeps the good ones and fills the gaps."""
    best: Slots = dict(first) if first is not None else {}
    for attempt in range(0 if first is None else 1, 2):
        if len(best) == len(KINDS):
            break
        session = Session(instructions=prompts.REPLIER, model=model)
        sampling = Sampling.greedy(160) if attempt == 0 else Sampling.random(0.8, seed=11, max_tokens=160)
        try:
            best = fill(best, session.respond(prompt, _ReplySchema, sampling=sampling).content, message)
        except InvalidOutputError:
            pass
    return best


def _routed(router: "Router", model: str, prompt: str, message: str, tier: str,
            consent: bool | None) -> tuple[Slots, str, str]:
    """(replies, the tier that wrote them, the route), with "the device's replies or its retry
    fill all three" as the cascade's check."""
    from tether.routing.router import RouteRequest

    mine = DeviceResult(lambda answer, cut: _on_device(
        model, prompt, message, first=None if answer is None else _parsed(answer, message)))
    schema = _ReplySchema.model_json_schema()
    routed = router.respond(RouteRequest(guided_prompt(prompt, schema), instructions=prompts.REPLIER, kind="feature",
                                         feature="replies", json_schema=schema, sampling=Sampling.greedy(160),
                                         check=lambda answer, cut: len(mine(answer, cut)) == len(KINDS), tier=tier,
                                         consent=consent))
    route = routed.explain()
    if routed.tier != DEVICE:  # escalated, or sent away by a rule: its replies first, the device's fill gaps
        away = _parsed(routed.text, message)
        if len(away) == len(KINDS):
            return away, routed.tier, route
        mixed = fill(away, mine(), message)  # mine(): written now if a rule sent it
        return mixed, routed.tier if away else DEVICE, route + f"; it gave {len(away)} usable {'reply' if len(away) == 1 else 'replies'} of 3"
    return mine(routed.text, routed.finish_reason == "length"), DEVICE, route
