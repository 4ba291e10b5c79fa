"""Notification summaries: group into stacks, flag what is time-sensitive, summarize each.

Priority is decided by rules, not by the model: the rules are fast, explain
themselves (``reasons``) and never hallucinate. The model only writes the
one-sentence summary, and a faithfulness check rejects any name, number, date
or time that is not in the stack. After one failed retry the stack goes to the
private cloud when a router allows it (``summarize_stack_routed``), else it gets an
extractive summary built from its own text, marked ``extractive=True``.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from pydantic import BaseModel, ValidationError, field_serializer, field_validator, model_validator

from tether.errors import InputError, TierUnavailableError
from tether.features import prompts
from tether.features._common import (NUMBER_WORDS, DeviceResult, clean_output, decode_utf8, numbers_in, read_file,
                                     split_sentences)
from tether.models.catalog import DEFAULT_MODEL
from tether.models.engine import Sampling
from tether.routing.tiers import DEVICE
from tether.session import Session, TranscriptEntry

if TYPE_CHECKING:
    from tether.routing.router import Router


def with_offset(value: datetime) -> str:
    """A device-local (naive) time in ISO 8601 with this device's UTC offset, so JSON read on
    another machine, or by a program in UTC, means the same instant."""
    return (value.astimezone() if value.tzinfo is None else value).isoformat()


class Notification(BaseModel):
    app: str
    title: str | None = None
    sender: str | None = None
    body: str
    timestamp: datetime
    thread: str | None = None

    @field_validator("app", "body")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v

    @field_validator("title", "sender")
    @classmethod
    def _blank_is_none(cls, v: str | None) -> str | None:
        return v if v is None or v.strip() else None  # "   " names no one: not an origin

    @field_validator("timestamp")
    @classmethod
    def _local_time(cls, v: datetime) -> datetime:
        """Device-local and naive, so "…10:00" and "…10:05Z" in one list compare (and print) alike."""
        if not 1900 <= v.year <= 9998:  # outside what the platform's clock converts (and what a phone sends)
            raise ValueError(f"year {v.year} is out of range")
        return v.astimezone().replace(tzinfo=None) if v.tzinfo is not None else v

    @field_serializer("timestamp", when_used="json")
    def _with_offset(self, value: datetime) -> str:
        return with_offset(value)

    @model_validator(mode="after")
    def _has_origin(self) -> "Notification":
        if not (self.title or self.sender):
            raise ValueError("needs a title or a sender")
        return self

    @property
    def origin(self) -> str:
        return self.sender or self.title or self.app


class Stack(BaseModel):
    app: str
    thread: str
    notifications: list[Notification]
    summary: str
    extractive: bool  # True: built from the notifications' own text, not written by the model
    # True: one notification short enough to read at a glance, shown as it came (no model call)
    as_sent: bool = False
    tier: str = "device"  # where the summary was written: device, private_cloud or third_party
    route: str = ""  # with a router: why it ran there (the decision and its notes)
    time_sensitive: bool
    reasons: list[str]
    latest: datetime

    @field_serializer("latest", when_used="json")
    def _with_offset(self, value: datetime) -> str:
        return with_offset(value)


class NotificationDigest(BaseModel):
    stacks: list[Stack]
    model: str
    duration_s: float


# ----------------------------------------------------------------- input


def parse_notifications(data: Any) -> list[Notification]:
    """Validate a decoded JSON list; errors name the item and the field."""
    if isinstance(data, dict) and "notifications" in data:
        data = data["notifications"]
    if not isinstance(data, list):
        raise InputError("notifications must be a JSON list of objects")
    if not data:
        raise InputError("the notification list is empty")
    out = []
    for i, item in enumerate(data):
        try:
            out.append(Notification.model_validate(item))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "item"
            raise InputError(f"notification {i}: {where}: {err['msg']}") from None
    return out


def load_notifications(path: str | Path) -> list[Notification]:
    if not isinstance(path, (str, Path)):
        raise InputError(f"expected the path of a JSON file, not {type(path).__name__}")
    return parse_notifications(decode_json(read_file(path), str(path)))


def decode_json(raw: bytes, name: str) -> Any:
    text = decode_utf8(raw, name)
    if not text.strip():
        raise InputError(f"{name}: text is empty")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{name}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise InputError(f"{name}: JSON nested too deeply") from None
    except ValueError as exc:  # an integer of more than 4,300 digits
        raise InputError(f"{name}: {exc}") from None
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"{name}: holds text that is not valid Unicode (a \\ud800-style escape of half a "
                         "character)") from None
    return value


# ----------------------------------------------------------------- grouping and priority


def group(notifications: Iterable[Notification]) -> dict[tuple[str, str], list[Notification]]:
    """Stacks keyed by (app, thread); without a thread, by the sender or title."""
    stacks: dict[tuple[str, str], list[Notification]] = {}
    for n in notifications:
        stacks.setdefault((n.app, n.thread or n.origin), []).append(n)
    for items in stacks.values():
        items.sort(key=lambda n: n.timestamp)
    return stacks


_CODE_WORD = (r"(?:(?:security|verification|login|sign-?in|confirmation|access|auth(?:entication)?|one-time|2fa|"
              r"your|the)\s+code|one-time pass(?:word|code)|otp|passcode|pin|tan|bestätigungscode|"
              r"sicherheitscode|code de (?:vérification|sécurité)|código|認証コード|確認コード|验证码)")
# 4-8 digits, also grouped ("123 456", "123-456"); a year (19xx, 20xx) alone is no code
_CODE = r"(?<![\d.,])(?!(?:19|20)\d\d(?![\d -]))\d{3,4}(?:[ -]?\d{2,4})?(?!\d|[.,]\d)"
_AMOUNT = r"(?:[$€£¥]\s?\d|\d(?:[\d.,]*\d)?\s?(?:€|£|\$|eur|usd|gbp|chf|dollars?|euros?|pounds?)\b)"
# the code said to be the code: right after the word or its "is" ("Your code for Acme is 482913",
# "code: 123-456"), or before an "is" ("482913 is your code"). Not "Your pin was dropped at 221
# Baker Street", "Your code review for PR 4521 is ready"
_IS = r"(?:is|ist|lautet|est|es|as|was)"
_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("security code", re.compile(rf"{_CODE_WORD}(?!\s+review)(?:[^\d.\n]{{0,30}}?\b{_IS}\b\W{{0,3}}|\s*[:：=]?\s*)"
                                 rf"{_CODE}|{_CODE}\W{{0,3}}{_IS}\b[^\d.\n]{{0,30}}{_CODE_WORD}", re.I)),
    ("security alert", re.compile(r"\b(?:new sign-?in|login attempt|password (?:reset|changed)|suspicious|unusual activity)\b", re.I)),
    # payment words count with an amount, or in phrases that are only about money
    ("payment or bank", re.compile(
        rf"\b(?:payment|paid|charged?|transaction|withdrawal|deposit|overdraft|balance|card ending|invoice|refund|"
        rf"direct debit|kartenzahlung|zahlung|abbuchung|paiement|pago)\b.{{0,60}}{_AMOUNT}|{_AMOUNT}.{{0,60}}\b(?:"
        rf"payment|paid|charged?|transaction|withdrawal|withdrawn|deposit|debit|refund|invoice|received|transferred|"
        rf"spent|zahlung|kartenzahlung|abbuchung)\b|(?:received|transferred|withdrawn|spent|sent you)\W{{0,3}}{_AMOUNT}|"
        rf"\b(?:card ending|overdraft|fraud alert|payment (?:failed|declined|due|received)|direct debit|low balance|balance is (?:low|negative|below)|insufficient funds|account overdrawn)\b|"
        rf"\bkartenzahlung\b", re.I)),
    ("deadline", re.compile(r"\b(?:deadline|due(?! to\b)|overdue|(?<!discount )(?<!offer )(?<!sale )expires?|expiring|"
                            r"last day|submit by|by (?:today|tonight|tomorrow|eod|end of day|noon|monday|tuesday|"
                            r"wednesday|thursday|friday|saturday|sunday|\d{1,2}(?::\d{2})?\s?(?:am|pm)))\b", re.I)),
    ("meeting soon", re.compile(
        # "call" the noun: "call me tomorrow" or "I'll call you" asks for no meeting
        r"\b(?:meeting|(?<!'ll )(?<!will )(?<!to )(?<!can )call(?!\s+(?:me|you|him|her|them|us|back|it)\b)|standup|"
        r"stand-up|appointment|interview|reunión|cita|besprechung|termin|réunion|rendez-vous)\b.{0,40}"
        r"(?:\b(?:in \d+\s?(?:m|min|minutes|mins|h|hours?)\b|starts?|starting|now|at \d{1,2}(?::\d{2})?\s?(?:am|pm)?|"
        r"today|tomorrow|en \d+\s?min(?:utos)?|a las \d{1,2}|hoy|mañana|in \d+\s?min(?:uten)?|um \d{1,2}(?::\d{2})?\s?uhr|"
        r"heute|morgen|dans \d+\s?min(?:utes)?|à \d{1,2}\s?h|aujourd'hui|demain)\b)"
        r"|\bstarts? in (?:\d+|an?|one)\s?(?:min|minutes|hours?)\b|\b(?:empieza|beginnt|commence) (?:en|in|dans) \d+\s?min", re.I)),
    ("delivery", re.compile(r"\b(?:out for delivery|delivered|arriving|arrives|courier|your (?:package|parcel|order)|shipment|driver is)\b", re.I)),
]
# what a meeting left, not one to come: "The meeting notes from today are in the drive"
_MEETING_RECORD = re.compile(
    r"\b(?:meeting|call|standup|stand-up|interview|webinar)\s+(?:notes|minutes|recording|recap|summary|transcript|"
    r"slides)\b|\b(?:notes|minutes|recording|recap|summary|transcript|slides)\s+(?:of|from)\s+(?:[\w'’]+\s+){0,2}?"
    r"(?:meeting|call|standup|stand-up|interview|webinar)\b", re.I)
# Sales talk: "expires", "last day" and "due" in an offer are no deadline of the user's
_PROMOTION = re.compile(r"\b(?:sale|discount|% off|offer|deal|promo(?:tion)?|coupon|save \d+|limited time)\b", re.I)
REPEAT_COUNT = 3
REPEAT_WINDOW = timedelta(minutes=30)


def time_sensitivity(items: list[Notification]) -> list[str]:
    """Why a stack is time-sensitive (empty: it is not)."""
    text = "\n".join(f"{n.title or ''} {n.body}" for n in items)
    reasons = [name for name, rule in _RULES if rule.search(_MEETING_RECORD.sub(" ", text) if name == "meeting soon" else text)]
    if "deadline" in reasons and _PROMOTION.search(text):
        reasons.remove("deadline")
    if "delivery" in reasons and "deadline" in reasons:  # "arrives by 8 pm" is a delivery, not a deadline
        if not re.search(r"\b(?:deadline|due|overdue|expires?|expiring|last day|submit by)\b", text, re.I):
            reasons.remove("deadline")
    # Repeated: REPEAT_COUNT distinct messages from one person within any REPEAT_WINDOW (the same
    # notification delivered twice is one message); a chat names its sender in the title.
    by_sender: dict[str, set[tuple[datetime, str]]] = {}
    for n in items:
        who = n.sender or (n.title if n.thread is None and n.title else None)
        if who:
            by_sender.setdefault(who, set()).add((n.timestamp, n.body))
    for sender, messages in by_sender.items():
        times = sorted(t for t, _ in messages)
        if any(times[i + REPEAT_COUNT - 1] - times[i] <= REPEAT_WINDOW for i in range(len(times) - REPEAT_COUNT + 1)):
            reasons.append(f"repeated messages from {sender}")
    return reasons


# ----------------------------------------------------------------- faithfulness

_DATE_WORDS = re.compile(
    r"\b(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?|"
    r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|today|tonight|tomorrow|yesterday|noon|midnight|morning|afternoon|evening|"
    r"weekend|week|month|year)\b",
    re.I,
)
_WORD = re.compile(r"\b\w[\w'’-]*\b")


def _capitalised(text: str) -> list[str]:
    """Words that start with a capital, in any script ("Émilie", "Øyvind")."""
    return [w for w in _WORD.findall(text) if w[0].isupper()]
# Capitalised words a summary may use that are not names.
_COMMON = set(
    """a an the and or but so if then this that these those there here it its they their them he she his her him
    you your we our us i my me new reminder reminders update updates message messages notification notifications
    alert alerts meeting meetings call calls payment payments order orders package delivery your someone several
    multiple two three four five many some all no yes please asked asks says said sent wants needs is are was were
    has have had will would can could should may might must let lets team group chat thread app email emails mail
    security code codes account bank card verification login sign password due deadline today tomorrow tonight
    friend friends family mom dad boss invitation invite invites event events calendar photo photos file files
    document documents link links video videos news weather flight flights ride driver store shop sale discount
    also both each either neither after before while when where who what why how about from with for to of in on at
    by via re fwd ok okay hi hello hey thanks thank sorry good great heads don am pm
    user users organizer organizers organiser attendee attendees participant participants member members
    customer customers client clients sender recipient recipients everyone people staff colleague colleagues
    manager employee employees guest guests host hosts""".split()
) | set(NUMBER_WORDS)  # "Three messages…": a number, checked as one, not a name
# A summary may shorten a day the stack names ("Mon" for "Monday").
_DAY_ABBREVIATIONS = {"mon", "tue", "tues", "wed", "thu", "thur", "thurs", "fri", "sat", "sun"}
_CLOCK_12H = re.compile(r"\b(\d{1,2})(?::(\d{2}))?\s?([ap])\.?m\b\.?", re.I)


def _as_24h(text: str) -> str:
    """"6 PM" → "18:00", "12:00 AM" → "0:00": a summary may turn the stack's clock either way."""
    def convert(m: re.Match[str]) -> str:
        hour = int(m.group(1))
        if hour > 12:
            return m.group(0)
        hour = hour % 12 + (12 if m.group(3).lower() == "p" else 0)
        return f"{hour}:{m.group(2) or '00'}"
    return _CLOCK_12H.sub(convert, text)


def unsupported_facts(summary: str, items: list[Notification]) -> list[str]:
    """Names, numbers, dates and times in ``summary`` that the notifications do not contain."""
    # The prompt does not show when each notification arrived, so a time or day the stack does not
    # state is invented ("Yoga class Tuesday 17:45" for a class at 18:00 announced at 17:45).
    source = "\n".join(" ".join(filter(None, [n.app, n.sender, n.title, n.body, n.thread])) for n in items)
    source_lower = source.lower()
    source_words = set(re.findall(r"[\w'’-]+", source_lower))
    problems = []
    allowed_numbers = numbers_in(source) | numbers_in(_as_24h(source)) | {str(len(items)), str(len(items) - 1)}
    problems += [f"number {x}" for x in sorted(numbers_in(_as_24h(summary)) - allowed_numbers)]
    for word in {w.lower() for w in _DATE_WORDS.findall(summary)}:
        if word not in source_words and not any(s.startswith(word) for s in source_words if len(word) >= 3 and _DATE_WORDS.fullmatch(s)):
            problems.append(f"date word {word!r}")
    for word in dict.fromkeys(_capitalised(summary)):
        low = word.lower().strip("'’-")
        # "I'm", "We'll", "Heads-up": a common word with its ending, not a name
        low_stem = re.sub(r"(?:['’](?:s|m|ll|re|ve|d|t)|-\w+)$", "", low)
        # Whole words only: "Tom" is not in "tomorrow", nor "Ann" in "planning".
        if low_stem in _COMMON or low_stem in source_words or \
                re.search(rf"(?<!\w){re.escape(low_stem)}(?!\w)", source_lower):
            continue
        if _DATE_WORDS.fullmatch(low_stem):
            continue  # already judged above
        if low_stem in _DAY_ABBREVIATIONS:
            if not any(s.startswith(low_stem) for s in source_words if _DATE_WORDS.fullmatch(s)):
                problems.append(f"date word {word!r}")
            continue
        problems.append(f"name {word!r}")
    return problems


# an amount with its currency before or after it ("$1,250.40", "42,50 €", "19.99 EUR"), or a code
_KEY_FACT = re.compile(r"[$€£]\s?\d[\d,]*(?:\.\d+)?|(?<![\d.,])\d[\d.,]*\d?\s?(?:€|£|(?:EUR|GBP|CHF|USD)\b)"
                       r"|\b\d{4,8}\b")
_AMOUNT_AFTER = re.compile(r"(\d[\d.,]*)\s?(?:€|£|EUR|GBP|CHF|USD)$")


def _kept(fact: str, squashed: str) -> bool:
    """Whether a summary (without its spaces) keeps ``fact``: "42,50 €" may also be "€42,50"."""
    after = _AMOUNT_AFTER.match(fact)
    if after is None:
        return fact.replace(" ", "") in squashed
    return re.search(rf"(?<![\d.,]){re.escape(after.group(1))}(?!\d|[.,]\d)", squashed) is not None


def missing_key_facts(summary: str, items: list[Notification]) -> list[str]:
    """Security codes and money amounts a summary must keep: leaving them out defeats its purpose."""
    text = " ".join(f"{n.title or ''} {n.body}" for n in items)
    if len(items) > 3:
        return []  # a long stack cannot keep every figure in one sentence
    squashed = summary.replace(" ", "")
    return [f"missing {fact}" for fact in dict.fromkeys(_KEY_FACT.findall(text)) if not _kept(fact, squashed)]


_ASKED = r"(?:asked|asks|is asking|was asking|has asked|has requested|wants to know|requested|requests|is requesting|inquired|is inquiring)"
_ASKER = re.compile(rf"\b([A-Z][\w'’-]*(?: [A-Z][\w'’-]*){{0,2}}) {_ASKED}\b(?! by\b)(?: (?:if|whether) (\w+))?")
_REQUEST = re.compile(r"\?|\b(?:please|can you|could you|would you|will you|let me know|let us know|do you|are you)\b",
                      re.IGNORECASE)
# "We received a request to reset your password": the sender got the request, it made none
_GOT_REQUEST = re.compile(r"\b(?:we|I)(?:'ve| have)? (?:received|got) (?:a|your|the) request\b|\byou (?:have )?requested\b",
                          re.IGNORECASE)
_YOU_QUESTION = re.compile(r"\b(?:are|will|can|could|would|do|did|have|were) you\b[^.!?]*\?", re.IGNORECASE)


def misattributed(summary: str, items: list[Notification]) -> list[str]:
    """Who asked or did what, turned around: a small model's commonest false summary, which names
    only facts the stack has. "Alice asked about her hobby" for "My hobby is painting"; "Emma
    asked for travel deals" for a mail sent to Emma; "Alice Chen is asking if she is still
    coming" for Alice's "Are you still coming?"; and the shapes of ``_joint_askers``,
    ``_request_done``, ``_deed_of_another`` and ``_named_twice``."""
    said: dict[str, list[str]] = {}
    for n in items:
        if n.sender:
            said.setdefault(n.sender, []).append(n.body)

    def names(sender: str) -> set[str]:
        return {sender, sender.split()[0]}

    problems = _joint_askers(summary, said) + _request_done(summary, said) + _deed_of_another(summary, said) + \
        _named_twice(summary, said) + _asked_someone_else(summary, said)
    for m in _ASKER.finditer(summary):
        who, about = m.group(1), (m.group(2) or "").lower()
        sender = next((s for s in said if who in names(s) or names(s) & set(who.split())), None)
        if sender is None:
            if any(_mentions(bodies, who) for bodies in said.values()):
                problems.append(f"{who} is said to ask, but was only written to")
            continue
        if not any(_REQUEST.search(b) for b in said[sender]):
            problems.append(f"{who} is said to ask, but asks nothing")
        elif m.group(0).split()[-1].startswith("request") and any(_GOT_REQUEST.search(b) for b in said[sender]):
            problems.append(f"{who} is said to request, but received the request")
        elif about in {"she", "he", "they", *(w.lower() for w in names(sender))} and \
                any(_YOU_QUESTION.search(b) for b in said[sender]):
            problems.append(f"{who} is said to ask about themselves, but asked you")
    return problems


_NAME = r"[A-Z][\w'’-]*(?: [A-Z][\w'’-]*){0,2}"
_JOINT_ASKERS = re.compile(rf"\b({_NAME}) and ({_NAME}) (?:are|were|have been) (?:asking|requesting|inquiring)\b|"
                           rf"\b({_NAME}) and ({_NAME}) (?:ask|asked|requested|inquired|want to know)\b")


def _sender(name: str, said: dict[str, list[str]]) -> str | None:
    """The stack's sender ``name`` stands for: the whole name, or the first name of a person's
    ("Emma" for Emma Johnson; not "Payment" for a mail titled "Payment sent")."""
    return next((s for s in said if name == s or (_person(s) and name == s.split()[0])), None)


def _person(sender: str) -> bool:
    return all(w[:1].isupper() for w in sender.split()) and len(sender.split()) <= 3


def _joint_askers(summary: str, said: dict[str, list[str]]) -> list[str]:
    """"Mark and Emma are asking for a hiking trip" of two people writing to each other: each
    asks the other, so "they ask" says nothing true. (Two people asking a third may.)"""
    problems = []
    for m in _JOINT_ASKERS.finditer(summary):
        one, other = (_sender(n, said) for n in (m.group(1) or m.group(3), m.group(2) or m.group(4)))
        if one and other and one != other and _mentions(said[one], other) and _mentions(said[other], one):
            problems.append(f"{one} and {other} are said to ask, but wrote to each other")
    return problems


def _mentions(bodies: list[str], person: str) -> bool:
    """Whether any of ``bodies`` names ``person`` by their first name."""
    return any(re.search(rf"\b{re.escape(person.split()[0])}\b", b) for b in bodies)


_PLEA = re.compile(r"\b(?:can|could|would|will) you (?:please )?(\w+)|\bplease (\w+)", re.IGNORECASE)
_PAST = {"send": "sent", "make": "made", "buy": "bought", "bring": "brought", "pay": "paid", "tell": "told",
         "give": "gave", "find": "found", "take": "took", "write": "wrote", "get": "got", "set": "set",
         "put": "put", "meet": "met", "lend": "lent", "forward": "forwarded", "share": "shared"}


def _done_forms(verb: str) -> set[str]:
    """"invite" → invited, invites, has invited…: how a summary says the deed was done."""
    v = verb.lower()
    past = _PAST.get(v) or (v + "d" if v.endswith("e") else v[:-1] + "ied" if v.endswith("y") and
                            v[-2:-1] not in "aeiou" else v + "ed")
    third = v + "es" if v.endswith(("s", "sh", "ch", "x")) else v[:-1] + "ies" if v.endswith("y") and \
        v[-2:-1] not in "aeiou" else v + "s"
    return {past, third}


def _request_done(summary: str, said: dict[str, list[str]]) -> list[str]:
    """"Bob invited Dora to Slack" for Bob's "can you invite Dora to Slack?": a request told as a
    deed. Not when the sender also says it is done ("I sent it"), nor of one of two subjects
    ("Emma and Katie have reviewed the draft")."""
    problems = []
    for sender, bodies in said.items():
        asked = {v.lower() for m in _PLEA.finditer(" ".join(bodies)) for v in m.groups() if v}
        for verb in asked - {"let", "be", "have", "do", "help", "check", "confirm", "reply", "advise"}:
            forms = _done_forms(verb)
            if any(re.search(rf"\bI (?:have |just |already )?{f}\b", b) for f in forms for b in bodies):
                continue
            for name in {sender, sender.split()[0]} if _person(sender) else {sender}:
                if re.search(rf"(?<!and )\b{re.escape(name)} (?:has |just |already )?(?:{'|'.join(forms)})\b", summary):
                    problems.append(f"{sender} is said to have done what they asked for ({verb})")
                    break
    return problems


_CONTENT = re.compile(r"[a-z][a-z'’.-]{3,}")
_PLAIN = {"about", "after", "again", "also", "been", "before", "from", "have", "into", "just", "more", "that",
          "their", "them", "they", "this", "with", "will", "would", "your", "what", "when", "where", "which",
          "there", "some", "said", "says", "asked", "asking", "wants", "know", "like", "next", "week", "today"}


def _words(text: str) -> set[str]:
    return {w.strip(".'’-")[:5] for w in _CONTENT.findall(text.lower())} - {w[:5] for w in _PLAIN}


def _deed_of_another(summary: str, said: dict[str, list[str]]) -> list[str]:
    """"Charlie read an interesting article" when Bob read it and Charlie wrote something else:
    the sentence's subject shares no word with their own messages but several with another's."""
    if len(said) < 2:
        return []
    wrote = {s: _words(" ".join(bodies)) for s, bodies in said.items()}
    problems = []
    for sentence in re.split(r"(?<=[.!?;])\s+", summary):
        m = re.match(rf"({_NAME}) (?!and\b)([a-z].*)", sentence)
        sender = _sender(m.group(1), said) if m else None
        if sender is None:
            continue
        claim = _words(m.group(2))
        other = max((s for s in said if s != sender), key=lambda s: len(claim & wrote[s]))
        if not claim & wrote[sender] and len(claim & wrote[other]) >= 2:
            problems.append(f"{sender} is said to do what {other} wrote of")
    return problems


_ASKS_SOMEONE = re.compile(rf"\b({_NAME}) (?:asked|asks|is asking|was asking|requested) "
                          rf"({_NAME})\b(?! and)")
_GREETED = re.compile(r"\b(?:Hi|Hello|Hey|Dear|Morning|Good morning|Good afternoon)[ \t]+([A-Z][\w'’-]*)")
_GROUPS = {"team", "all", "everyone", "everybody", "folks", "guys", "friends", "colleagues", "there", "both"}


def _asked_someone_else(summary: str, said: dict[str, list[str]]) -> list[str]:
    """"Emma asked Julie to review" when Emma wrote "Hi David, could you send…? Julie might also
    need to review": the one asked is the one greeted or called on, not one spoken of."""
    problems = []
    for m in _ASKS_SOMEONE.finditer(summary):
        sender = _sender(m.group(1), said)
        asked = m.group(2).split()[0]
        if sender is None or asked in {"You", "Your", "Them", "Everyone"} or asked == sender.split()[0]:
            continue
        bodies = said[sender]
        greeted = {g for b in bodies for g in _GREETED.findall(b)}
        if not greeted or greeted & {g.capitalize() for g in _GROUPS} or asked in greeted:
            continue  # no one, or a group, was greeted: anyone in it may have been asked
        called_on = any(re.search(rf"(?:^|[.!?,]\s*|@){re.escape(asked)}\b(?:\s*,|\s+(?:please|could|can|would))", b)
                        for b in bodies)
        if not called_on and _mentions(bodies, asked):
            problems.append(f"{sender} is said to ask {asked}, but wrote to {', '.join(sorted(greeted))}")
    return problems


_SUBJECT = re.compile(rf"^({_NAME}(?: and {_NAME})*) (?=[a-z])")


def _named_twice(summary: str, said: dict[str, list[str]]) -> list[str]:
    """"Blue Sparrow Tech is hosting a dinner with Blue Sparrow Tech", "Emma and Sarah are asking
    Sarah to meet": the subject named again, in the same clause, as its own object."""
    m = _SUBJECT.match(summary)
    if not m:
        return []
    names = set()
    for part in m.group(1).split(" and "):
        sender = _sender(part, said)
        if sender or " " in part:  # a lone word may be no name: "Payment sent: … Payment received"
            names.add(part)
        if sender and _person(sender):
            names.add(part.split()[0])
    names = {n for n in names if len(n) > 2 and n not in {"The", "Your", "This", "Our", "Their", "His", "Her"}}
    # its own clause only: "Charlie likes swimming; swimming is Charlie's favorite hobby" is fine
    rest = re.split(r"[;,:]|\.(?:\s|$)", summary[m.end():])[0]
    # a whole run of capitalized words: "Office" in "BlueSparrow Tech Office" is part of another name
    runs = {re.sub(r"['’]s$", "", r) for r in re.findall(r"[A-Z][\w'’-]*(?: [A-Z][\w'’-]*)*", rest)}
    again = sorted(names & runs)
    return [f"{again[0]} is named as its own object"] if again else []


_GREETING = re.compile(r"^(?:(?i:hi|hello|hey|dear|good (?:morning|afternoon|evening))\b[^,.!?\n]{0,40}[,!.]|"
                       r"(?i:hi|hello|hey)\s+[A-Z][\w'’-]*(?:\s+[A-Z][\w'’-]*)?(?=\s+[A-Z]))\s*")
_PLEASANTRY = re.compile(r"^(?:thanks?\b|thank you\b|great\b|awesome\b|perfect\b|cool\b|(?:i )?hope\b|"
                         r"how are (?:you|things)\b|how(?:'s| is) (?:it going|your|the|everything)\b|i trust\b|"
                         r"good (?:morning|afternoon|evening)\b|happy (?:monday|tuesday|wednesday|thursday|friday|"
                         r"weekend|new year)\b|sounds (?:good|great)\b|good to hear\b|great to hear\b|cheers\b)",
                         re.IGNORECASE)


# a sign-off a flattened body runs into: "Amount: $9.99 Best regards, Streaming Service Team"
_SIGNED = re.compile(r"(?:^|\s+)(?:(?:Best|Kind|Warm) [Rr]egards|Regards|Best wishes|Sincerely|Cheers|Best|Many thanks|"
                     r"Thanks|Thank you),?\s+[A-Z][^.!?,]{0,40}$")  # capitalised: "you are the best, Anna" stays
_BREAK = re.compile(r"(?<=[^\d\s][.!?])\s+")  # not after a number: "Your code is 482913. It expires…" is one


def extractive_summary(items: list[Notification]) -> str:
    """A summary made only of the stack's own words: the latest message's first sentence that
    holds a fact a summary must keep (a code, an amount) or that a time-sensitivity rule reads,
    else its first that says something, trimmed: "Let's meet at the trailhead at 8 AM", not
    "Hi Emma, Great!", and "Invoice 88231 for $1,250.40 is now overdue", not "Hope the week is
    going well"."""
    latest = items[-1]
    body = _GREETING.sub("", latest.body.strip(), count=1)
    body = body[:1].upper() + body[1:]  # "Hello Maria, the form is due" → "The form is due"
    # a paragraph ends a sentence: "Amount: $9.99" and "Best regards," are no part of the one before
    sentences = [_SIGNED.sub("", x) for part in re.split(r"\n\s*\n", body)
                 for x in split_sentences(" ".join(part.split()), _BREAK)]
    sentences = [x for x in sentences if x]
    sentences = sentences or [" ".join(latest.body.split())]
    says = [x for x in sentences if not (_PLEASANTRY.match(x) and len(x.split()) <= 12)] or sentences
    keyed = next((x for x in sentences if _KEY_FACT.search(x)), None)
    first = keyed or next((x for x in says if any(rule.search(x) for _, rule in _RULES)), says[0])
    if keyed and len(keyed.split()) <= 4 and sentences.index(says[0]) < sentences.index(keyed):
        # a label line says too little alone: "…has been processed. Amount: $9.99"
        first = f"{says[0]}{'' if says[0][-1] in '.!?' else '.'} {keyed}"
    if len(first) > 160:
        first = first[:157].rsplit(" ", 1)[0] + "…"
    more = f" (+{len(items) - 1} more)" if len(items) > 1 else ""
    return f"{latest.origin}: {first}{more}"


# ----------------------------------------------------------------- summarizing

MAX_SUMMARY_TOKENS = 48
MAX_BODY_CHARS = 300
MAX_NAME_CHARS = 80  # a sender, title or app name past this is cut in the prompt
MAX_PROMPT_NOTIFICATIONS = 20  # a huge stack is summarized from its latest messages; it must fit the window
MAX_STACKS = 100  # threads per call: each is a model call of 1-3 s, so 3,000 were an hour of work


def format_stack(items: list[Notification]) -> str:
    """Compact prompt text: one line per notification (prefill is the expensive part). Without
    the time each arrived: the 0.5B model took it for the event's time ("Client presentation
    Friday 13:45" for one at 14:00, announced at 13:45)."""
    lines = []
    for n in items[-MAX_PROMPT_NOTIFICATIONS:]:
        who = (n.sender or n.title or "")[:MAX_NAME_CHARS]
        title = f" [{n.title[:MAX_NAME_CHARS]}]" if n.sender and n.title else ""
        body = " ".join(n.body.split())[:MAX_BODY_CHARS]
        lines.append(f"{who}{title}: {body}")
    return f"{items[0].app[:MAX_NAME_CHARS]} notifications:\n" + "\n".join(lines)


@dataclass
class StackSummary:
    summary: str
    extractive: bool
    tier: str = "device"  # where the summary was written ("device" for an extractive one)
    route: str = ""  # with a router: its decision and notes, one line
    as_sent: bool = False  # one short notification, shown as it came


MAX_AS_SENT_CHARS = 100


def as_sent(items: list[Notification]) -> str | None:
    """A lone notification of at most ``MAX_AS_SENT_CHARS`` is its own summary: a model could only
    lose or bend it (the 0.5B wrote "Priya starts in 15 minutes in Room 4B" for "Design review
    with Priya starts in 15 minutes in Room 4B"). Its sender or title leads unless the body names it."""
    if len(items) != 1:
        return None
    n = items[0]
    body = " ".join(n.body.split())
    if not body or len(body) > MAX_AS_SENT_CHARS:
        return None
    origin = " ".join(n.origin.split())[:MAX_NAME_CHARS]
    return body if origin.casefold() in body.casefold() else f"{origin}: {body}"


def summarize_stack(items: list[Notification], *, model: str = DEFAULT_MODEL) -> tuple[str, bool]:
    """(summary, extractive). The model gets one retry when its summary is unfaithful."""
    done = summarize_stack_routed(items, model=model)
    return done.summary, done.extractive


def summarize_stack_routed(items: list[Notification], *, model: str = DEFAULT_MODEL,
                           router: "Router | None" = None) -> StackSummary:
    """The stack's summary. The device writes it (greedy); if the faithfulness check refuses it,
    the device tries once more (sampled, told what was wrong; not when it got who asked whom
    wrong, which the retry only garbles); if that fails too, the stack gets an extractive summary.

    With a ``router`` the request goes through it as the ``notifications`` feature, with "the
    device's summary or its retry passes the check" as its ``check``: in the default cascade a
    stack the device cannot summarize faithfully is sent, pseudonymized, to the private cloud
    (when one is configured and the privacy policy and consent allow) before the extractive
    fallback, and the cloud's answer, restored on the device, is checked too. A summary that
    passes never leaves the device. (The retry's tokens are not in the router's ledger row.)

    A lone short notification is shown as it came (``as_sent``): no model call, nothing leaves."""
    shown = as_sent(items)
    if shown is not None:
        return StackSummary(shown, True, DEVICE, "as sent: one short notification is its own summary"
                            if router is not None else "", as_sent=True)
    if router is not None:
        model = getattr(router.device, "model", model)
    prompt = format_stack(items)
    first = Sampling.greedy(MAX_SUMMARY_TOKENS, stop=SENTENCE_END)

    def faithful(answer: str | None, cut: bool) -> str | None:
        """The device's summary: ``answer`` (its first), or else its retry; None when neither passes."""
        summary = _tidy(answer or "", cut, items)
        problems = _problems(summary, items)
        # sampled: a greedy retry tends to repeat the same mistake. Not for who asked whom:
        # told so, the 0.5B writes "Alice Chen asks about herself, but you need to contact
        # them", which no check can tell from a summary.
        if not problems or misattributed(summary, items):
            return None if problems else summary
        session = Session(instructions=prompts.NOTIFICATION_SUMMARY, model=model)
        session.transcript += [TranscriptEntry("prompt", prompt), TranscriptEntry("response", answer or "")]
        response = session.respond(prompts.NOTIFICATION_RETRY.format(problems=", ".join(problems)),
                                   sampling=Sampling.random(0.7, seed=17, max_tokens=MAX_SUMMARY_TOKENS,
                                                            stop=SENTENCE_END))
        again = _tidy(response.text, response.completion.finish_reason == "length", items)
        return None if _problems(again, items) else again

    mine = DeviceResult(faithful)
    if router is None:
        response = Session(instructions=prompts.NOTIFICATION_SUMMARY, model=model).respond(prompt, sampling=first)
        summary = mine(response.text, response.completion.finish_reason == "length")
        return StackSummary(summary or extractive_summary(items), summary is None)

    from tether.routing.router import RouteRequest

    try:
        routed = router.respond(RouteRequest(prompt, instructions=prompts.NOTIFICATION_SUMMARY, kind="feature",
                                             feature="notifications", sampling=first,
                                             check=lambda answer, cut: mine(answer, cut) is not None))
    except TierUnavailableError as exc:  # the cloud failed and the policy forbids a degraded answer:
        # the stack's own words are no model's answer, so this stack, not the digest, falls back
        return StackSummary(extractive_summary(items), True, DEVICE, str(exc))
    route = routed.explain()
    cut = routed.finish_reason == "length"
    if routed.tier != DEVICE:  # escalated, or sent away by a rule (busy, low power…): checked, never retried here
        summary = _tidy(routed.text, cut, items)
        if not _problems(summary, items):
            return StackSummary(summary, False, routed.tier, route)
        return StackSummary(extractive_summary(items), True, DEVICE, route + "; its summary failed the check too")
    summary = mine(routed.text, cut)  # made by the check, or now if a rule other than the cascade decided
    return StackSummary(summary or extractive_summary(items), summary is None, DEVICE, route)


def _tidy(text: str, cut: bool, items: list[Notification]) -> str:
    """The model's answer as one clean sentence (a cut one without its unfinished clause, unless
    the cut came after its first sentence was whole)."""
    if cut and len(split_sentences(" ".join(text.split()))) < 2:
        text = _drop_cut_clause(text)
    return _one_sentence(_strip_app_echo(clean_output(text), items[0].app))


def _problems(summary: str, items: list[Notification]) -> list[str]:
    if not summary:
        return ["an empty summary"]
    loop = ["a summary that repeats itself"] if repeats_itself(summary) else []
    return loop + other_script(summary, items) + unsupported_facts(summary, items) + \
        missing_key_facts(summary, items) + misattributed(summary, items)


def _script(char: str) -> str:
    """A letter's script: LATIN, CJK (Han and kana together: Japanese mixes them), ARABIC…"""
    name = unicodedata.name(char, "")
    first = name.split(" ", 1)[0]
    return "CJK" if first in ("CJK", "HIRAGANA", "KATAKANA") else first


def other_script(summary: str, items: list[Notification]) -> list[str]:
    """A summary in another script than the messages: the 0.5B model wrote "Priya Sharma asked if
    she had any questions about WhatsApp's notifications." for two Hindi messages about dinner.
    The check reads names and numbers, not a translation, so such a summary is unchecked. Words
    the stack has (a sender's name, an app) do not count."""
    source = "\n".join(" ".join(filter(None, [n.app, n.sender, n.title, n.body])) for n in items)
    have = set(re.findall(r"\w+", source.lower()))
    said = Counter(_script(c) for n in items for c in f"{n.title or ''} {n.body}" if c.isalpha())
    wrote = Counter(_script(c) for w in re.findall(r"\w+", summary) if w.lower() not in have for c in w if c.isalpha())
    if not said or not wrote:
        return []
    script = wrote.most_common(1)[0][0]
    return [] if said[script] >= 0.2 * sum(said.values()) else [f"a summary in {script.replace('CJK', 'Cjk').title().replace('Cjk', 'CJK')} script, not the messages' own"]


def repeats_itself(summary: str) -> bool:
    """A model caught in a loop ("Charlie asked Charlie to ask Charlie to ask Charlie…") names
    only facts the stack has, so the fact check passes it: three words in a row, three times."""
    words = [w.lower() for w in _WORD.findall(summary)]
    seen = Counter(zip(words, words[1:], words[2:]))
    return any(n >= 3 for n in seen.values())


# one sentence is all we keep, so stop generating there; not at ". ", which "Dr. Patel" has
# (``_one_sentence`` cuts after the first full stop that ends a sentence)
SENTENCE_END = ("! ", "? ", "\n")


def _drop_cut_clause(text: str) -> str:
    """A summary cut by the token cap ends mid-clause ("…under 0."): keep the complete part."""
    head = re.split(r"[,;:]\s+(?=[^,;:]*$)", text.rstrip(), maxsplit=1)[0] if re.search(r"[,;:]\s", text) else ""
    if not head:
        head = text.rstrip().rsplit(" ", 1)[0]
    return head.rstrip(" ,;:-") + "."


def _strip_app_echo(text: str, app: str) -> str:
    """Small models sometimes open with the prompt's header ("News notifications: …")."""
    return re.sub(rf"^(?:app:\s*)?{re.escape(app)}(?:\s+notifications?)?\s*[-:–]\s*", "", text, flags=re.I)


def _one_sentence(text: str) -> str:
    text = " ".join(text.split())
    first = (split_sentences(text) or [""])[0]
    return first + "." if first and first[-1] not in ".!?。！？" else first


def summarize_notifications(
    notifications: Iterable[Notification | dict[str, Any]], *, model: str = DEFAULT_MODEL,
    progress: Callable[[int, int], None] | None = None, router: "Router | None" = None,
) -> NotificationDigest:
    """Stacks, time-sensitive first, then most recent first. ``progress(done, total)`` after each
    stack: every stack is a model call, and a day's notifications can be hundreds of them.
    With a ``router`` (whose device model is then the one used), a stack the device summarizes
    unfaithfully may be escalated to the private cloud: see ``summarize_stack_routed``."""
    start = time.perf_counter()
    if router is not None:
        model = getattr(router.device, "model", model)
    if isinstance(notifications, dict) and "notifications" in notifications:
        notifications = notifications["notifications"]  # the file's wrapper form, as parse_notifications takes
    if isinstance(notifications, (dict, str, bytes, Notification)) or not isinstance(notifications, Iterable):
        raise InputError("notifications must be a list of notifications (dicts or Notification objects), "
                         f"not {type(notifications).__name__}")
    raw = list(notifications)
    items = [n for n in raw if isinstance(n, Notification)]
    if len(items) < len(raw):  # dicts are checked like a JSON file: errors name the item and the field
        items = parse_notifications([n.model_dump() if isinstance(n, Notification) else n for n in raw])
    if not items:
        raise InputError("the notification list is empty")
    # one notification delivered twice is one: not a stack of two ("Zahlung (2)") nor "(+1 more)"
    items = list({n.model_dump_json(): n for n in items}.values())
    stacks = []
    groups = group(items)
    if len(groups) > MAX_STACKS:
        raise InputError(f"the notifications form {len(groups):,} threads; at most {MAX_STACKS} are summarized "
                         "per call (each is a model call): send the newest, or split them")
    for (app, thread), members in groups.items():
        reasons = time_sensitivity(members)
        done = summarize_stack_routed(members, model=model, router=router)
        stacks.append(Stack(app=app, thread=thread, notifications=members, summary=done.summary,
                            extractive=done.extractive, as_sent=done.as_sent, tier=done.tier, route=done.route,
                            time_sensitive=bool(reasons), reasons=reasons, latest=members[-1].timestamp))
        if progress:
            progress(len(stacks), len(groups))
    stacks.sort(key=lambda s: s.latest, reverse=True)
    stacks.sort(key=lambda s: not s.time_sensitive)  # stable: time-sensitive first, each part newest first
    return NotificationDigest(stacks=stacks, model=model, duration_s=time.perf_counter() - start)
