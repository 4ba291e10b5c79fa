"""Writing tools: proofread, rewrite in a tone, summarize (summary, key points, list, table).

The model only writes text; structure (edit spans, list items, table cells) is
derived deterministically from that text, so spans are always exact.
"""

from __future__ import annotations

import difflib
import re
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Literal, NamedTuple

from pydantic import BaseModel

from tether.errors import InputError, InvalidOutputError
from tether.features import prompts, wording
from tether.features.proofcheck import Suspect, suspects, with_fixes
from tether.features._common import (DeviceResult, Edit, abbreviated, answer_budget, check_text, clean_output, numbers_in,
                                     split_sentences)
from tether.models.catalog import DEFAULT_MODEL
from tether.models.engine import Sampling
from tether.routing.tiers import DEVICE
from tether.session import Session

if TYPE_CHECKING:
    from tether.routing.router import Router

Tone = Literal["friendly", "professional", "concise"]
Progress = Callable[[int, int], None]  # (parts done, parts in all): a long text takes minutes
SummaryForm = Literal["summary", "key_points", "list", "table"]


class ProofreadResult(BaseModel):
    original: str
    corrected: str
    edits: list[Edit]
    undone: list[Edit] = []  # the model's rewording, dropped phrases and joined lines, not applied
    fallback: bool = False  # True: the model's output was unusable; only the rules' sure fixes were made
    flagged: list[Suspect] = []  # what still looks wrong in ``corrected`` (its offsets): for the user to check
    model: str
    duration_s: float
    tier: str = "device"  # where it was corrected: device, or the tier that corrected a part the device could not
    route: str = ""  # with a router: why it ran there (the decision and its notes; the first part sent away)


class RewriteResult(BaseModel):
    original: str
    tone: Tone
    text: str
    missing_numbers: list[str] = []  # numbers of the original the rewrite dropped
    missing_links: list[str] = []  # links and e-mail addresses of the original the rewrite dropped or changed
    added_numbers: list[str] = []  # numbers in the rewrite that the original lacks (made up)
    unfilled: list[str] = []  # fill-in slots the model left in the text, such as "[Date]"
    lost_question: bool = False  # the original asks something; the rewrite neither asks nor requests anything
    cut: bool = False  # some piece's answer ran past its budget twice: it ends at its last whole sentence or line
    parts: int = 1  # a long text is rewritten a few paragraphs at a time
    model: str
    duration_s: float
    tier: str = "device"  # where it was written: device, or the tier that wrote a part the device could not
    route: str = ""  # with a router: why it ran there (the decision and its notes; the first part sent away)


class SummaryResult(BaseModel):
    form: SummaryForm
    text: str  # markdown
    items: list[str] = []  # for key_points and list
    table: list[list[str]] = []  # for table: header row first
    model: str
    duration_s: float
    fallback: bool = False  # the items are the text's own first sentences: the model's answers were unusable
    parts: int = 1  # over 1: the text did not fit one call; this is the summary of its parts' summaries
    tier: str = "device"  # where the final answer was written: device, private_cloud or third_party
    route: str = ""  # with a router: why it ran there (the decision and its notes)


def _ask(model: str, task: str, text: str, max_tokens: int | None = None, *, retry: bool = False,
         fit: bool = False) -> str:
    """One model call; ``max_tokens=None`` allows an answer about as long as the input, or with
    ``fit`` (a list or table that condenses the text) as much of that as the window leaves room for."""
    return _complete(model, task, text, max_tokens, retry=retry, fit=fit)[0]


def _complete(model: str, task: str, text: str, max_tokens: int | None = None, *, retry: bool = False,
              fit: bool = False) -> tuple[str, bool]:
    """``_ask``, and whether the answer was cut at ``max_tokens``."""
    session = Session(instructions=prompts.WRITER, model=model)
    prompt = f"{task}:\n\n{text}"
    max_tokens = _budget(session, prompt, text, max_tokens, fit)
    sampling = Sampling.random(0.6, seed=7, max_tokens=max_tokens) if retry else Sampling.greedy(max_tokens)
    response = session.respond(prompt, sampling=sampling)
    return clean_output(response.text, text), response.completion.finish_reason == "length"


def _budget(session: Session, prompt: str, text: str, max_tokens: int | None, fit: bool) -> int:
    if max_tokens is None:
        max_tokens = answer_budget(session.engine, text)
        if fit:
            room = session.engine.context_window - session.token_count(prompt)
            # too little room: the window error; a long text's list stops at MAX_CONDENSED_BUDGET
            max_tokens = max(min(max_tokens, room, MAX_CONDENSED_BUDGET), MIN_CONDENSED_BUDGET)
    return max_tokens


# ----------------------------------------------------------------- proofread

# CJK is written without spaces: each ideograph or kana is a token, so an edit is one character, not a sentence
_TOKEN = re.compile(r"\s+|[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|\w+|[^\w\s]")


def diff_edits(original: str, corrected: str) -> list[Edit]:
    """Word-level edits that turn ``original`` into ``corrected``, with exact spans."""
    a = [(m.start(), m.group()) for m in _TOKEN.finditer(original)]
    b = [m.group() for m in _TOKEN.finditer(corrected)]
    matcher = difflib.SequenceMatcher(a=[t for _, t in a], b=b, autojunk=False)
    edits = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        start = a[i1][0] if i1 < len(a) else len(original)
        end = a[i2 - 1][0] + len(a[i2 - 1][1]) if i2 > i1 else start
        edits.append(Edit(start=start, end=end, original=original[start:end], replacement="".join(b[j1:j2])))
    return edits


def apply_edits(original: str, edits: list[Edit]) -> str:
    out, pos = [], 0
    for e in sorted(edits, key=lambda e: e.start):
        out.append(original[pos : e.start])
        out.append(e.replacement)
        pos = e.end
    out.append(original[pos:])
    return "".join(out)


def _plausible_correction(original: str, corrected: str) -> bool:
    if not corrected.strip():
        return False
    # case-folded: capitalising "i" or a sentence start is a correction, not a rewrite
    ratio = difflib.SequenceMatcher(a=original.casefold(), b=corrected.casefold(), autojunk=False).ratio()
    return ratio >= 0.6  # a proofread keeps most characters; lower means the model rewrote or chatted


PROOFREAD_PIECE_TOKENS = 700  # per model call: with its 1.4× answer budget, far inside a 4,096 window
MAX_PROOFREAD_PIECES = 16  # about 8,000 words: past that, minutes of generation for one call


def proofread(text: str, *, model: str = DEFAULT_MODEL, progress: Progress | None = None,
              keep_wording: bool = True, router: "Router | None" = None) -> ProofreadResult:
    """Correct ``text`` a few paragraphs at a time (a long document does not fit one call), with
    each piece's edits placed in the whole text. ``fallback``: some piece came back unusable and
    was left as it was but for the rules' sure fixes. ``keep_wording``: undo the model's edits that reword, drop phrases or
    join paragraphs instead of fixing an error (``tether.features.wording``), and fix what the
    model left where a rule is sure of the fix (``proofcheck.with_fixes``: "an table", "dont",
    a doubled word…). ``flagged``: what still looks like an error afterwards.

    With a ``router`` (whose device model is then the one used) each piece goes through it as
    the ``proofread`` feature: in the default cascade a piece whose device proofread, so fixed,
    still shows an error is sent, pseudonymized, to the private cloud (when one is configured
    and the policy and consent allow); the cloud's correction, restored, reviewed and fixed on
    the device, is used unless it is unusable or shows more errors than the device's."""
    check_text(text)
    if router is not None:
        model = getattr(router.device, "model", model)
    start = time.perf_counter()
    from tether.models.engine import load

    engine = load(model)
    out: list[str] = []
    edits: list[Edit] = []
    undone: list[Edit] = []
    fallback = False
    at = 0
    tier, route = DEVICE, ""
    pieces = _pieces(text, lambda t: engine.count_tokens(t) <= PROOFREAD_PIECE_TOKENS)
    if len(pieces) > MAX_PROOFREAD_PIECES:
        raise InputError(f"the text is too long to proofread at once ({len(text.split()):,} words; up to about "
                         f"{MAX_PROOFREAD_PIECES * PROOFREAD_PIECE_TOKENS * 3 // 4:,}): proofread it in parts")
    for done, piece in enumerate(pieces, 1):
        asked = _asked(piece, keep_wording)
        if not piece.strip():
            corrected, skipped = piece, []
        elif router is None:
            corrected, skipped = _device_proofread(model, piece, asked, keep_wording)
        else:
            corrected, skipped, where, why = _proofread_routed(router, model, piece, asked, keep_wording,
                                                               answer_budget(engine, piece))
            tier, route = _part_route(tier, route, where, why, done, len(pieces))
        if corrected is None:  # no model answer was a proofread: the piece with the rules' sure fixes
            fallback, corrected = True, asked
        undone += _shifted(skipped, at)
        edits += _shifted(diff_edits(piece, corrected), at)
        out.append(corrected)
        at += len(piece)
        if progress:
            progress(done, len(pieces))
    corrected = "".join(out)
    if verbatim := verbatim_spans(text):  # the model's edits there are no corrections: "exmaple.com" is another site
        edits = [e for e in edits if not _inside(e, verbatim)]
        undone = [e for e in undone if not _inside(e, verbatim)]
        corrected = apply_edits(text, edits)
    return ProofreadResult(original=text, corrected=corrected, edits=edits, undone=undone, fallback=fallback,
                           flagged=suspects(corrected), model=model, duration_s=time.perf_counter() - start,
                           tier=tier, route=route if router is not None else "")


# What a proofread leaves as written: code (fenced, to its fence or the text's end, or inline),
# links, e-mail addresses, @handles and paths. Not prose: a "typo" there is another address or name.
_LINK = r"\b(?:[a-z][a-z0-9+.-]*://|www\.)[^\s<>]*[^\s<>.,;:!?)\]'\"”’]|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
_VERBATIM = re.compile(
    r"^[ \t]*(`{3,}|~{3,})[^\n]*\n.*?(?:^[ \t]*\1[ \t]*$|\Z)|`[^`\n]+`"
    rf"|{_LINK}|(?<![\w@])@\w[\w.-]*\w"
    r"|(?<!\S)(?:~|\.{1,2})?/[\w.~/-]*\w|\b[a-z]:\\[^\s<>]*[^\s<>.,;:!?)\]'\"”’]",
    re.M | re.S | re.I)


def verbatim_spans(text: str) -> list[tuple[int, int]]:
    """Where ``text`` has code, a link, an address or a path, which a proofread must not change."""
    return [m.span() for m in _VERBATIM.finditer(text)]


def _inside(edit: Edit, spans: list[tuple[int, int]]) -> bool:
    """Whether ``edit`` changes any of ``spans`` (an insertion: strictly within one)."""
    if edit.start == edit.end:
        return any(a < edit.start < b for a, b in spans)
    return any(edit.start < b and edit.end > a for a, b in spans)


def _part_route(tier: str, route: str, where: str, why: str, part: int, parts: int) -> tuple[str, str]:
    """The (tier, route) a text reports, after part ``part`` of ``parts`` ran on ``where`` for
    ``why``: the first part's, until a part is sent away; then the first sent away."""
    if route and (where == DEVICE or tier != DEVICE):
        return tier, route
    return where, why if parts == 1 else f"part {part} of {parts}: {why}"


def _shifted(edits: list[Edit], at: int) -> list[Edit]:
    """A piece's edits, placed in the whole text."""
    return [e.model_copy(update={"start": e.start + at, "end": e.end + at}) for e in edits]


def _proofread_piece(model: str, text: str, first: str | None = None) -> str | None:
    """The device's correction of one piece: greedy (``first``, if already written), then one
    sampled retry if that one is no proofread; None if neither is."""
    for attempt in range(2):
        corrected = first if attempt == 0 and first is not None else _ask(model, prompts.PROOFREAD, text,
                                                                           retry=attempt > 0)
        if _plausible_correction(text, corrected):
            return _in_place_of(text, corrected)
    return None


def _asked(piece: str, keep_wording: bool) -> str:
    """What the model is given: the piece with the rules' sure fixes made, so it need not guess
    what "docmuents" was ("documentation"?) or reword "an few" ("some"); the review still
    compares its answer with the user's own text. With ``keep_wording`` off, the piece as it is."""
    return with_fixes(piece) if keep_wording else piece


def _device_proofread(model: str, piece: str, asked: str, keep_wording: bool,
                      first: str | None = None) -> tuple[str | None, list[Edit]]:
    """(the piece corrected, the edits undone as rewording), or (None, []) when the model's
    answers to ``asked`` (the piece as the model is given it) were no proofread."""
    corrected = _proofread_piece(model, asked, first)
    return (None, []) if corrected is None else _reviewed(piece, corrected, keep_wording)


def _reviewed(piece: str, corrected: str, keep_wording: bool) -> tuple[str, list[Edit]]:
    """A model's correction as the user gets it: its rewording undone and the sure fixes of what
    it left applied; or, with ``keep_wording`` off, as the model wrote it."""
    if not keep_wording:
        return corrected, []
    corrected, undone = wording.review(piece, corrected)
    return with_fixes(corrected), undone


def _proofread_routed(router: "Router", model: str, piece: str, asked: str, keep_wording: bool,
                      budget: int) -> tuple[str | None, list[Edit], str, str]:
    """(the correction, the edits undone, the tier that wrote it, the route): one piece through
    the router, with "the device's correction shows no error left" as the cascade's check."""
    from tether.routing.router import RouteRequest

    mine = DeviceResult(lambda answer, cut: _device_proofread(
        model, piece, asked, keep_wording, None if answer is None else clean_output(answer, piece)))

    def judge(answer: str, cut: bool) -> bool:
        corrected = mine(answer, cut)[0]
        return corrected is not None and not suspects(corrected)

    routed = router.respond(RouteRequest(f"{prompts.PROOFREAD}:\n\n{asked}",
                                         instructions=prompts.WRITER, kind="writing", feature="proofread",
                                         sampling=Sampling.greedy(budget), check=judge))
    route = routed.explain()
    if routed.tier != DEVICE:  # escalated, or sent away by a rule: checked, never retried there
        away = clean_output(routed.text, piece)
        if routed.finish_reason != "length" and _plausible_correction(piece, away):
            corrected, skipped = _reviewed(piece, _in_place_of(piece, away), keep_wording)
            own = mine()[0] if mine.made else None
            if own is None or len(suspects(corrected)) <= len(suspects(own)):
                return corrected, skipped, routed.tier, route
        return *mine(), DEVICE, route + "; its proofread was no better"  # mine(): written now if a rule sent it
    return *mine(routed.text, routed.finish_reason == "length"), DEVICE, route


def _in_place_of(piece: str, out: str) -> str:
    """``out`` with the user's surrounding whitespace and line endings, which the model drops,
    so that pieces join back as the paragraphs they were."""
    lead = piece[: len(piece) - len(piece.lstrip())]
    trail = piece[len(piece.rstrip()):]
    out = out.strip()
    if "\r\n" in piece:  # the model writes "\n": a Windows file must not get every line ending as an edit
        out = out.replace("\r\n", "\n").replace("\n", "\r\n")
    return lead + out + trail


def _pieces(text: str, fits) -> list[str]:  # noqa: ANN001 - fits: str -> bool
    """``text`` cut into consecutive pieces that each ``fits``, at paragraph ends, else at
    sentence ends (a sentence that alone does not fit is one piece). They join back to ``text``."""
    if fits(text):
        return [text]
    for boundary in (r"(?<=\n)\s*\n", r"(?<=[.!?])\s+"):
        cuts = [m.end() for m in re.finditer(boundary, text)]
        units = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)]) if b > a]
        if len(units) > 1:
            break
    else:
        return [text]
    pieces: list[str] = []
    for unit in units:
        if pieces and fits(pieces[-1] + unit):
            pieces[-1] += unit
        elif fits(unit):
            pieces.append(unit)
        else:
            pieces += _pieces(unit, fits)
    return pieces


# ----------------------------------------------------------------- rewrite


REWRITE_PIECE_TOKENS = 700  # as proofread: each piece and its answer fit the window
MAX_REWRITE_PIECES = 16
# A tone can lengthen a text: a two-line note becomes an email with a greeting and a sign-off.
REWRITE_FACTOR, REWRITE_FLOOR = 2.0, 192


def rewrite(text: str, tone: Tone = "professional", *, model: str = DEFAULT_MODEL,
            progress: Progress | None = None, router: "Router | None" = None) -> RewriteResult:
    """Rewrite ``text`` in ``tone``, a few paragraphs at a time when it is long (the answer is
    as long as the text, so a long one does not fit one call). A piece that drops a number of
    the original, has one the original lacks, leaves a slot to fill in ("[Date]"), neither asks
    nor requests anything where the original asks something, or whose answer runs past its
    budget, is tried once more; numbers still missing or made up and slots still there are
    listed, and a lost question and a cut answer are marked, never hidden.

    With a ``router`` (whose device model is then the one used) each piece goes through it as
    the ``rewrite`` feature: in the default cascade a piece whose device rewrite and retry both
    fail that check is sent, pseudonymized, to the private cloud (when one is
    configured and the policy and consent allow); the cloud's rewrite, restored on the device,
    is checked the same way and used only if it passes."""
    check_text(text)
    if not isinstance(tone, str) or tone not in prompts.TONES:
        raise InputError(f"unknown tone {tone!r}; choose one of: {', '.join(prompts.TONES)}")
    if router is not None:
        model = getattr(router.device, "model", model)
    start = time.perf_counter()
    from tether.models.engine import load

    engine = load(model)
    pieces = _pieces(text, lambda t: engine.count_tokens(t) <= REWRITE_PIECE_TOKENS)
    if len(pieces) > MAX_REWRITE_PIECES:
        raise InputError(f"the text is too long to rewrite at once ({len(text.split()):,} words; up to about "
                         f"{MAX_REWRITE_PIECES * REWRITE_PIECE_TOKENS * 3 // 4:,}): rewrite it in parts")
    task = prompts.REWRITE.format(tone=prompts.TONES[tone])
    out: list[str] = []
    missing: set[str] = set()
    added: set[str] = set()
    unfilled: list[str] = []
    any_cut = any_lost_question = False
    tier, route = DEVICE, ""
    for done, piece in enumerate(pieces, 1):
        if piece.strip():
            budget = answer_budget(engine, piece, factor=REWRITE_FACTOR, floor=REWRITE_FLOOR)
            if router is None:
                done_try, where, why = _rewrite_on_device(model, task, piece, budget), DEVICE, ""
            else:
                done_try, where, why = _rewrite_routed(router, model, task, piece, budget)
            written, cut = done_try.text, done_try.cut  # a cut one already ends at a whole sentence
            tier, route = _part_route(tier, route, where, why, done, len(pieces))
            if not written:
                raise InvalidOutputError("the model returned an empty rewrite twice" + (f" ({why})" if why else ""))
            out.append(_in_place_of(piece, written) if len(pieces) > 1 else written)
            missing |= done_try.lost
            added |= done_try.added
            unfilled += [slot for slot in done_try.unfilled if slot not in unfilled]
            any_lost_question |= done_try.lost_question
            any_cut |= cut
        else:
            out.append(piece)
        if progress:
            progress(done, len(pieces))
    written = "".join(out).strip()
    links = dict.fromkeys(m.group() for m in re.finditer(_LINK, text, re.I))
    return RewriteResult(original=text, tone=tone, text=written, missing_numbers=sorted(missing),
                         missing_links=[link for link in links if link not in written],
                         added_numbers=sorted(added), unfilled=unfilled, lost_question=any_lost_question,
                         cut=any_cut, parts=len(pieces), model=model,
                         duration_s=time.perf_counter() - start, tier=tier, route=route if router is not None else "")


class _Try(NamedTuple):
    """One rewrite of a piece, without template filler, and what the check sees in it."""
    text: str
    cut: bool  # ran past its budget
    lost: set[str]  # numbers of the piece it dropped
    added: set[str]  # numbers it has that the piece does not (an invented date, amount…)
    unfilled: list[str]  # fill-in slots the filler removal leaves ("meet you at [Address]")
    lost_question: bool  # the piece asks something, the rewrite neither asks nor requests anything


def _rewrite_try(written: str, cut: bool, piece: str) -> _Try:
    """Checked as it would be shown: a cut answer ends at its last whole sentence."""
    written = without_template_filler(written, piece)
    if cut:
        written = whole_sentences(written)
    return _Try(written, cut, numbers_in(piece, words=False) - numbers_in(written),
                numbers_in(written, words=False) - numbers_in(piece), unfilled_slots(written, piece),
                lost_question(piece, written))


def _passes(t: _Try) -> bool:
    """The rewrite check: something written, not cut at its budget, no number lost or made up,
    no slot left to fill in, a question still a question."""
    return bool(t.text) and not t.cut and not t.lost and not t.added and not t.unfilled and not t.lost_question


def _best(tries: list[_Try]) -> _Try:
    """Not empty, then not cut, then the fewest faults (numbers lost or made up, slots, a lost
    question); the earlier of equals."""
    return min(tries, key=lambda t: (not t.text, t.cut, len(t.lost) + len(t.added) + len(t.unfilled) + t.lost_question))


_SLOT = re.compile(r"\[[^\[\]\n]{1,40}\](?!\()")  # "[Date]", not a markdown link's "[here](https://…)"


def unfilled_slots(text: str, source: str) -> list[str]:
    """Fill-in slots ("[Address]", "[Your Name]") in ``text`` that ``source`` does not have: a
    letter template's blanks, which a small model leaves where it lacks a fact. A bracket the
    source has ("[draft]", "[1]") is the user's."""
    return list(dict.fromkeys(m.group() for m in _SLOT.finditer(text) if m.group() not in source))


# A "?" that ends a question: after a word, a closing quote or bracket ("…lunch?", "…(Friday)?").
_QUESTION_MARK = re.compile(r"[^\W_][\"'”’)]*\s?[?？]")


# A request put as a statement: a professional rewrite of "Could you send me the update?" is
# "I am writing to request the latest update." or "Please let me know the time."
_REQUEST = re.compile(r"\b(?:please|kindly|let (?:me|us) know|(?:could|would|can|will) you"
                      r"|I(?: would|['’]d) (?:appreciate|be grateful|like to (?:ask|know|request))"
                      r"|I am writing to (?:ask|request))\b", re.I)


def asks(text: str) -> bool:
    """Whether ``text`` asks something: a question mark after a word, outside links, code and
    paths (a reset link's "token=?a1b2" asks nothing)."""
    spans = verbatim_spans(text)
    return any(not any(a <= m.end() - 1 < b for a, b in spans) for m in _QUESTION_MARK.finditer(text))


def lost_question(source: str, rewrite: str) -> bool:
    """Whether ``source`` asks something and ``rewrite`` neither asks nor makes a request of its
    own (one the source lacks: "Are you up for a hike? Let me know!" rewritten "You're up for a
    hike. Let me know!" lost its question). Such a rewrite has usually changed what the text
    says: "Would you be free for lunch next week?" became "I am looking forward to catching up
    with you next week", and "Could you please send me the latest update?" became "I'm sorry to
    hear that you're having trouble"."""
    if not asks(source) or asks(rewrite):
        return False
    had = {m.group().lower() for m in _REQUEST.finditer(source)}
    return not any(m.group().lower() not in had for m in _REQUEST.finditer(rewrite))


def _rewrite_on_device(model: str, task: str, piece: str, budget: int, first: _Try | None = None) -> _Try:
    """The device's rewrite of one piece: greedy (``first``, if already written), then one sampled retry."""
    tries = [first if first is not None else _rewrite_try(*_complete(model, task, piece, budget), piece)]
    if not _passes(tries[0]):
        tries.append(_rewrite_try(*_complete(model, task, piece, budget, retry=True), piece))
    return _best(tries)


def _rewrite_routed(router: "Router", model: str, task: str, piece: str, budget: int) -> tuple[_Try, str, str]:
    """(the rewrite, the tier that wrote it, the route): one piece through the router, with "the
    device's rewrite or its retry passes the check" as the cascade's check."""
    from tether.routing.router import RouteRequest

    mine = DeviceResult(lambda answer, cut: _rewrite_on_device(
        model, task, piece, budget, None if answer is None else _rewrite_try(clean_output(answer, piece), cut, piece)))
    routed = router.respond(RouteRequest(f"{task}:\n\n{piece}", instructions=prompts.WRITER, kind="writing",
                                         feature="rewrite", sampling=Sampling.greedy(budget),
                                         check=lambda answer, cut: _passes(mine(answer, cut))))
    route = routed.explain()
    cut = routed.finish_reason == "length"
    if routed.tier != DEVICE:  # escalated, or sent away by a rule: checked, never retried there
        away = _rewrite_try(clean_output(routed.text, piece), cut, piece)
        if _passes(away):
            return away, routed.tier, route
        best = _best([mine(), away])  # mine(): written now if a rule sent it; the device's on a tie
        return best, routed.tier if best is away else DEVICE, route + "; its rewrite failed the check too"
    return mine(routed.text, cut), DEVICE, route


_PLACEHOLDER = re.compile(r"\[[^\[\]\n]{1,40}\]")
_GREETING = re.compile(r"(?im)^[ \t]*(dear|hi|hello|hey)[ \t]+(\[[^\[\]\n]{1,40}\])[ \t]*([,!]?)[ \t]*$")
_SUBJECT = re.compile(r"(?i)\A\s*subject:[^\n]*\n+")
_VALEDICTION = re.compile(r"(?im)^[ \t]*(?:(?:best|kind|warm|warmest|with best)[ \t]+(?:regards|wishes)|best|regards|"
                          r"sincerely(?:[ \t]+yours)?|yours[ \t]+(?:sincerely|truly|faithfully)|respectfully|cheers|"
                          r"all[ \t]+the[ \t]+best|thanks(?:[ \t]+again)?|thank[ \t]+you|many[ \t]+thanks)[ \t]*[,.!]?[ \t]*$")


# A chat assistant's offer of help, which small models append to a rewrite of a note that made
# none ("I'm here to help you with any questions or concerns you may have."): the user did not
# write it, and in their name it reads as a bot. Three of the 0.5B's 81 rewrites of AgentDojo
# mail had one (benchmarks/rewrite_cascade.py, 2026-12-05).
_ASSISTANT_OFFER = re.compile(
    r"\bI(?:['’]m| am) (?:always )?here to (?:help|assist)\b"
    r"|\banything else (?:that )?I can (?:do|help|assist)\b"
    r"|\bif you (?:need|require) any (?:further |more |other |additional )?assistance\b"
    r"|\bany questions or concerns you (?:may )?have\b", re.I)


def without_assistant_offers(text: str, source: str) -> str:
    """``text`` without the sentences that offer help as a chat assistant would, when ``source``
    offers none; a line left empty goes too."""
    if _ASSISTANT_OFFER.search(source) or not _ASSISTANT_OFFER.search(text):
        return text
    lines = []
    for line in text.split("\n"):
        if _ASSISTANT_OFFER.search(line):
            line = " ".join(s for s in _sentences(line) if not _ASSISTANT_OFFER.search(s))
            if not line:
                continue
        lines.append(line.rstrip())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def without_template_filler(text: str, source: str) -> str:
    """Remove what small models add to make a note look like a letter template: a made-up
    "Subject:" line, fill-in-the-blank slots such as "[Your Name]" or "Dear [Recipient's Name],",
    and an assistant's offer of help. A bracket the source itself has ("[draft]", "[1]") stays."""
    def invented(slot: str) -> bool:
        return slot not in source

    text = without_assistant_offers(text, source)

    if not _SUBJECT.match(source):
        text = _SUBJECT.sub("", text, count=1)
    text = _GREETING.sub(lambda m: (("Hello" if m[1].lower() == "dear" else m[1]) + (m[3] or ","))
                         if invented(m[2]) else m[0], text)
    lines = [ln for ln in text.split("\n") if not ((slot := ln.strip()) and _PLACEHOLDER.fullmatch(slot)
                                                    and invented(slot))]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    # "Best regards," with no name after it (the "[Your Name]" slot went, or never came) reads
    # as a letter cut off; a closing the source had stays.
    last = text.rsplit("\n", 1)
    if len(last) == 2 and _VALEDICTION.fullmatch(last[1]) and not _VALEDICTION.search(source):
        text = last[0].rstrip()
    return text


_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*(?=\s|$)")


def whole_sentences(text: str) -> str:
    """``text`` up to its last complete sentence or line: an answer cut mid-sentence reads as a mistake."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text) if not abbreviated(text[:m.end()], text[m.end():])]
    ends += [m.start() + 1 for m in _LINE_END.finditer(text)]  # a line a newline ends is whole ("Date: 5 May")
    return text[: max(ends)].rstrip() if ends else text.rstrip()


_LINE_END = re.compile(r"\S[ \t]*\n")


# ----------------------------------------------------------------- summarize

_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+(?:\d{1,2}[.)]\s+)?(.*\S)\s*$")  # "- 1. Take a look": one marker


def parse_items(text: str) -> list[str]:
    return [m.group(1) for line in text.splitlines() if (m := _BULLET.match(line))]


def parse_table(text: str) -> list[list[str]]:
    """Rows of a markdown table (header first, separator dropped); [] if there is none."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("|") or ln.count("|") >= 2]
    if len(lines) < 2 or not re.fullmatch(r"\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?", lines[1]):
        return []
    rows = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in lines if ln is not lines[1]]
    width = len(rows[0])
    # Like markdown renderers: short rows are padded, long rows cut to the header's width.
    return [(r + [""] * width)[:width] for r in rows] if len(rows) >= 2 else []


_RELATIVE = re.compile(r"(?:which|that|who)\s+(?=\w)")


def tidy_table(rows: list[list[str]]) -> list[list[str]]:
    """Cells that repeat their row's first cell, or open with the clause word the sentence was cut
    at, read as the split sentence they came from: "Supporters | supporters say it will…" and
    "Plan | which costs 12 million…" become "Supporters | say it will…", "Plan | costs 12 million…".
    A two-column row whose whole sentence sits in the Topic cell is split at its subject:
    "Construction of the first route starts in March | " becomes "Construction of the first route |
    starts in March"."""
    out = [rows[0]]
    for row in rows[1:]:
        head, cells = row[0], list(row[1:])
        if len(cells) == 1 and not cells[0] and len(head.split()) >= 3 and (split := wording.split_subject(head)):
            head, cells[0] = split
            head = re.sub(r"^(?:The|A|An) (?=\w)", "", head)
            head = head[:1].upper() + head[1:]
        for i, cell in enumerate(cells):
            if head and cell.lower().startswith(head.lower() + " ") and len(cell) > len(head) + 1:
                cell = cell[len(head) + 1:]
            if m := _RELATIVE.match(cell):
                cell = cell[m.end():]
            cells[i] = cell
        out.append([head, *cells])
    return out


def render_table(rows: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(rows[0]), "|" + "---|" * len(rows[0]), *(line(r) for r in rows[1:])])


# not after a list's number: "do the following: 1. Take a look" is one sentence
_SENTENCE_BREAK = re.compile(r"(?<!: \d\.)(?<!: \d\d\.)(?<=[.!?])\s+")


def _sentences(text: str) -> list[str]:
    return split_sentences(text.strip(), _SENTENCE_BREAK)  # not after "Dr." either


# A letter's frame, not its content: "Hi Emma,", "Best,", "Kind regards," (and the name under it).
_SALUTATION = re.compile(r"(?i)^(?:(?:hi|hello|hey|dear)\b[^.!?]{0,40},|(?:best|regards|best regards|kind regards|"
                         r"warm regards|thanks|many thanks|thank you|cheers|sincerely|yours),?)$")


_FENCED = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1[ \t]*$\n?", re.M | re.S)


def opening_sentences(text: str, n: int) -> list[str]:
    """The first ``n`` sentences of ``text`` read as prose: without code blocks, headings and
    markdown marks, so an extractive stand-in for a README part is not "## Use it ```sh"."""
    prose = _FENCED.sub("\n", text)
    lines = []
    for line in prose.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "|", ">", "---", "```")):
            lines.append("")  # a heading, table row or rule ends the sentence before it
            continue
        lines.append(re.sub(r"\*\*|__|`", "", _BULLET.sub(r"\1", line)))
    paragraphs = [" ".join(p.split()) for p in "\n".join(lines).split("\n\n")]
    sentences = [s for p in paragraphs if p for s in _sentences(p) if len(s.split()) >= 2]
    return sentences[:n] or _sentences(text)[:n]


def as_prose(text: str) -> str:
    """A summary the model wrote as a list ("1. Define clear objectives\n2. …") as sentences, one
    per line: cut to its first sentences, the list would otherwise end on a bare "3."."""
    if not parse_items(text):
        return text
    out = []
    signed = False
    for line in text.splitlines():
        m = _BULLET.match(line)
        s = (m.group(1) if m else line).strip()
        if not m and _SALUTATION.match(s):  # a copied letter's greeting or closing
            signed = signed or not s.lower().startswith(("hi", "hello", "hey", "dear"))
            continue
        if signed and not m and len(s.split()) <= 3 and s[-1:].isalpha():
            continue  # the name under the closing
        if s and not re.fullmatch(r"\d{1,2}[.)]|[-*•]", s):  # a marker whose item was cut off
            out.append(s if s[-1] in ".!?:;" else s + ".")
    return " ".join(out)


MIN_CONDENSED_BUDGET = 128  # tokens a list or table of a long text needs at least
# ... and at most: about 25 items or rows. Unbounded, the 0.5B model "listed" a 2,250-token text
# by copying all 75 of its sentences (1,773 tokens, 136 s); a list condenses, like a summary.
MAX_CONDENSED_BUDGET = 640
MAX_SUMMARY_SENTENCES = 3  # small models ignore "two sentences"; longer output is cut, never padded
MAX_FALLBACK_ITEMS = 5  # an extractive fallback: the text's opening sentences, not all of them


SUMMARY_PIECE_TOKENS = 2_800  # a piece, the instructions and its summary fit a 4,096 window
MAX_SUMMARY_PIECES = 12  # the parts' summaries then fit one call; 200k characters need fewer
PART_SUMMARY_TOKENS = 160


def summarize(text: str, form: SummaryForm = "summary", *, model: str = DEFAULT_MODEL,
              progress: Progress | None = None, router: "Router | None" = None) -> SummaryResult:
    """Summarize ``text`` in ``form``. A text too long for one call is summarized in parts first,
    and the parts' summaries are then summarized (map-reduce); ``parts`` says how many.

    With a ``router`` (whose device model is then the one used) the final call goes through it
    as the ``summarize`` feature: in the default cascade, when the device's answer and its retry
    are both unusable (a number the text lacks, no list or table), the text goes, pseudonymized,
    to the private cloud instead of failing or falling back."""
    check_text(text)
    if not isinstance(form, str) or form not in prompts.SUMMARY_FORMS:
        raise InputError(f"unknown form {form!r}; choose one of: {', '.join(prompts.SUMMARY_FORMS)}")
    if router is not None:
        model = getattr(router.device, "model", model)
    start = time.perf_counter()
    source_numbers = numbers_in(text)
    source, parts = _condensed(text, model, progress)
    task = prompts.SUMMARY_FORMS[form]
    budget = {"summary": 160, "key_points": 200, "list": None, "table": None}[form]
    tier, route = DEVICE, ""
    if router is None:
        out, raw = _first_usable((_attempt(model, task, source, budget, form, retry=attempt > 0) for attempt in range(2)),
                                 form, source_numbers)
    else:
        out, tier, route = _summarize_routed(router, model, task, source, budget, form, source_numbers)
        raw = out
    took = time.perf_counter() - start
    if progress and parts > 1:
        progress(parts + 1, parts + 1)
    where = f" ({route})" if route else ""
    if form == "summary":
        if not out:
            raise InvalidOutputError(f"the model returned no usable summary after a retry{where}")
        out = " ".join(_sentences(as_prose(out))[:MAX_SUMMARY_SENTENCES])
        return SummaryResult(form=form, text=out, model=model, duration_s=took, parts=parts, tier=tier, route=route)
    if form == "table":
        rows = parse_table(out)
        if not rows:
            raise InvalidOutputError(f"the model did not produce a markdown table after a retry{where}", raw)
        rows = tidy_table(rows)
        return SummaryResult(form=form, text=render_table(rows), table=rows, model=model, duration_s=took,
                             parts=parts, tier=tier, route=route)
    items = parse_items(out) or _sentences(out)
    fallback = not items
    if fallback:  # deterministic and extractive: the text's opening sentences, never an invented fact
        items = opening_sentences(text, MAX_FALLBACK_ITEMS)
    return SummaryResult(form=form, text="\n".join(f"- {i}" for i in items), items=items, model=model,
                         duration_s=took, fallback=fallback, parts=parts, tier=tier, route=route)


def _first_usable(answers: Iterable[str], form: SummaryForm, source_numbers: set[str]) -> tuple[str, str]:
    """(the first of ``answers`` that ``_usable`` passes, else "", the last answer read): one the
    check refused is never shown, as through a router ("The text discusses the main points of the
    given article." was the summary, and its sentence a key point, when both answers said it)."""
    raw = ""
    for raw in answers:
        if _usable(raw, form, source_numbers):
            return raw, raw
    return "", raw


def _attempt(model: str, task: str, source: str, budget: int | None, form: SummaryForm, *, retry: bool) -> str:
    """One answer of the final call, without the unfinished tail of one cut at its budget."""
    out, cut = _complete(model, task, source, budget, retry=retry, fit=budget is None)
    return _without_cut_tail(out, form) if cut else out


# Words a summary uses to talk about the text rather than what it says.
_ABOUT_THE_TEXT = frozenset("""
the a an this that these those it its is are was were be been being of to in on for with by as and or
text texts summary summaries summarize summarizes summarizing summarized summarise summarises summarising
given provided passage article document content contents following above below author writer describes
describe discusses discuss talks talk mentions mention about information details main point points key
""".split())


def says_nothing(summary: str) -> bool:
    """"The text is summarizing the summary of the given text.": a small model's answer to a
    text it cannot read (code, tables of commands) that speaks only of the text itself."""
    words = re.findall(r"[^\W\d_][\w'’-]*", summary.lower())
    return len([w for w in words if w not in _ABOUT_THE_TEXT]) < 2


def _usable(out: str, form: SummaryForm, source_numbers: set[str]) -> bool:
    """Whether an answer (already without its cut tail) can be shown: no number the text lacks,
    something said beyond "the text", and for a list or a table, one that parses."""
    if not out or numbers_in(out, words=False) - source_numbers or says_nothing(out):
        return False
    if form in ("key_points", "list"):
        return bool(parse_items(out))
    return form == "summary" or bool(parse_table(out))


def _summarize_routed(router: "Router", model: str, task: str, source: str, budget: int | None,
                      form: SummaryForm, source_numbers: set[str]) -> tuple[str, str, str]:
    """(answer, tier, route): the final call through the router, with "the device's answer or its
    retry is usable" as the cascade's check, so only what the device cannot do leaves it."""
    from tether.routing.router import RouteRequest

    prompt = f"{task}:\n\n{source}"
    max_tokens = _budget(Session(instructions=prompts.WRITER, model=model), prompt, source, budget, budget is None)

    def device_summary(answer: str | None, cut: bool) -> str:
        """Its first answer, else a sampled retry, as on the device alone; "" when neither is usable."""
        out = clean_output(answer or "", source)
        out = _without_cut_tail(out, form) if cut else out
        if not _usable(out, form, source_numbers):
            out = _attempt(model, task, source, budget, form, retry=True)
        return out if _usable(out, form, source_numbers) else ""

    mine = DeviceResult(device_summary)
    routed = router.respond(RouteRequest(prompt, instructions=prompts.WRITER, kind="writing", feature="summarize",
                                         sampling=Sampling.greedy(max_tokens),
                                         check=lambda answer, cut: bool(mine(answer, cut))))
    route = routed.explain()
    cut = routed.finish_reason == "length"
    if routed.tier != DEVICE:  # escalated, or sent away by a rule: checked, never retried here
        out = clean_output(routed.text, source)
        out = _without_cut_tail(out, form) if cut else out
        return (out if _usable(out, form, source_numbers) else ""), routed.tier, route
    return mine(routed.text, cut), DEVICE, route


def _without_cut_tail(out: str, form: SummaryForm) -> str:
    """An answer cut at its budget, without the sentence, item or row it was in the middle of."""
    if form == "summary":
        return whole_sentences(out)
    lines = out.rstrip().split("\n")
    keep = 3 if form == "table" else 1  # a table's header and separator, or the first item, always stay
    return "\n".join(lines[:-1]) if len(lines) > keep else out


def _condensed(text: str, model: str, progress: Progress | None) -> tuple[str, int]:
    """``text`` if it fits one call, else the summaries of its parts, in order, and their count.
    A part whose summaries are unusable (empty, or with a number it lacks) is represented by its
    own opening sentences: a long summary may be coarse, never invented."""
    from tether.models.engine import load

    engine = load(model)
    limit = min(SUMMARY_PIECE_TOKENS, engine.context_window - 4 * PART_SUMMARY_TOKENS)
    pieces = _pieces(text, lambda t: engine.count_tokens(t) <= limit)
    if len(pieces) == 1:
        return text, 1
    pieces = [p for p in pieces if p.strip()]
    if len(pieces) > MAX_SUMMARY_PIECES:
        raise InputError(f"the text is too long to summarize ({len(text.split()):,} words; up to about "
                         f"{MAX_SUMMARY_PIECES * limit * 3 // 4:,}): summarize it in parts")
    summaries = []
    for piece in pieces:
        have = numbers_in(piece)
        summary = ""
        for attempt in range(2):
            summary = _ask(model, prompts.SUMMARY_FORMS["summary"], piece, PART_SUMMARY_TOKENS, retry=attempt > 0)
            if summary and not numbers_in(summary, words=False) - have and not says_nothing(summary):
                break
            summary = ""
        sentences = _sentences(as_prose(summary)) or opening_sentences(piece, 2)
        summaries.append(" ".join(sentences[:MAX_SUMMARY_SENTENCES]))
        if progress:  # the summary of the summaries is one more step
            progress(len(summaries), len(pieces) + 1)
    return "\n\n".join(summaries), len(pieces)
