"""Recall-first candidates for text that leaves the device.

The precise rules (spaCy NER, name lists, patterns) miss names they have never seen, places
written in capitals, and birth dates the text does not call birth dates. For an off-device
tier a missed name is a leak, while a pseudonymized ordinary word only costs the receiver
some fluency (the reply is restored anyway), so the guard adds these candidates when
``detection.recall_first`` is on (the default):

* runs of capitalised words on one line that are not common English (``common_words``):
  "Mimount Bijster", "Invesco BulletShares", "HIPPERHOLME". A run that opens a sentence needs
  more evidence, since every sentence starts with a capital: two uncommon words, a letter
  outside ASCII ("Csanád"), a word from the name lists, all capitals, or a comma or a verb
  such as "is" / "said" right after it ("Motoko is from…").
* full dates with a year that is not in the future ("since 7/8/1999"): any of them may be a
  birth date.
* lower-case names: a first name followed by a surname ("maria gonzalez"), or a listed
  name right after a cue ("my name is jan").
* numbers shaped like a US SSN (``123-45-6789``), including the ones Presidio rejects as
  never issued.

A word that is common English, a calendar word, a form label ("Phone", "Address") or
everyday software ("Python", "GitHub") is never a candidate by itself; anything else can be
exempted with ``detection.allow_list``.
"""

from __future__ import annotations

import bisect
import datetime
import functools
import re
from collections.abc import Sequence

from tether.privacy.detect import fold_accents
from tether.privacy.recognizers import (
    _COMMON_WORDS,
    _DATE,
    _NAME_CUE,
    _PARTICLES,
    _name_lists,
    common_words,
    country_names,
    field_type,
    handle_names_someone,
    hard_words,
    is_sentence_start,
    name_words,
    particle_chain,
)

# After a run that opens a sentence, these make it a subject or an addressee, not a verb.
_SUBJECT_NEXT = re.compile(r"(?:[ \t]*,|[ \t]+(?:is|was|has|had|said|says|asked|told|lives|lived|works|worked|"
                           r"wrote|writes|called|shouted|began|will|would|can|could|should|must|might|wants|wanted|"
                           r"needs|needed|sent|emailed|texted|replied|brought|left|came|went|got|gave|took|thinks|"
                           r"thought|and|met|saw|made|found|paid|bought|ran|spoke|knew|kept|lost|won|felt|heard|held|"
                           r"sat|stood|drove|flew|fell|forgot|grew|led|rang|rode|slept|spent|threw|woke|wore|taught|"
                           r"caught|sold|built|became|chose|did|loves|likes|plays|joins|owes|[a-z]{3,}ed)\b)")
# "Mineko: What a wife." A line that opens with a word and a colon is a speaker or a label;
# labels ("Note:", "Summary:") are common words, so an uncommon one is taken for a speaker.
_LABEL_NEXT = re.compile(r"[ \t]*(?:[:=;|,\t]|$)", re.M)
_SPEAKER_NEXT = re.compile(r"[ \t]*:[ \t]*[^\s]")
_CONTRACTION = re.compile(r"(?i)['’](?:m|d|ll|re|ve|s|t)$|n['’]t$")
_URL = re.compile(r"(?i)\b(?:https?://|www\.)\S+|\S+@\S+")
_PLACE_BEFORE = re.compile(r"(?i)\b(?:in|at|near|from|visiting|visit|around|outside|inside|across)[ \t]+$")
_STREET_NOUN = (r"(?:veg|vei|vej|vegen|veien|gate|gata|gatan|gade|vägen|väg|tee|kapu|utca|út|cesta|ulica|ul\.|"
                r"straße|strasse|str\.|weg|gasse|allee|platz|plass|plads|laan|straat|kuja|tie|katu|sokak|caddesi)")
_HOUSE_NUMBER_AFTER = re.compile(rf"(?:[ \t]+{_STREET_NOUN})?[ \t]+\d{{1,5}}[A-Za-z]?(?![\w:%]|[.,]\d)")
_LINE_OR_COMMA = re.compile(r"[ \t]*(?:,|\r?\n|$)")
_NUMBER_BEFORE = re.compile(r"(?<![\w.,\-/+])\d{1,6}[A-Za-z]?[ \t]+$")
# Before a place name: frequent words are not taken as everyday English here ("in Amsterdam").
_PLACE_CUE = re.compile(r"(?i)\b(?:in|at|near|from|to|of|visiting|visit|around|outside|inside|across|city|town|"
                        r"village|where:)[ \t]+$")
_ENGLISH_SUFFIX = re.compile(r"(?:ly|ing|ed|ion|ions|ness|ment|ments|ity|ous|ive|able|ful|less|ize|ise)$")
# Endings that names share ("Rosing", "Chise", "Fielding"): English only on an English stem.
_NAME_LIKE_SUFFIX = re.compile(r"(?:ing|ed|ize|ise)$")
# A sentence-opening word before a place noun is a place: "Almada bridge is falling down".
_PLACE_NEXT = re.compile(r"[ \t]+(?:bridge|airport|station|harbou?r|beach|river|lake|bay|valley|county|province|"
                         r"district|village|port|cathedral|castle|fjord|island|mountains?|hills?|stadium)\b")
# Three-letter codes that follow "in"/"at" without being places.
_ACRONYMS = frozenset("""
usd eur gbp jpy chf cny inr cad aud utc gmt cet cest est edt pst pdt bst ist cpu gpu ram ssd hdd pdf csv sql api
xml rss ftp ssh dns vpn lan wan url faq eta etc diy hr pr qa ui ux seo crm erp aws gcp ibm sap ceo cfo cto coo
""".split())
_INTERJECTIONS = frozenset("""
sorry great sure well oh ah wow alright indeed actually basically honestly congrats congratulations welcome
absolutely perfect awesome nice cool excellent right correct agreed done noted understood unfortunately
fortunately hopefully apparently obviously seriously quick urgent important c'mon
""".split())


@functools.cache
def _lower_name_lists() -> tuple[frozenset[str], frozenset[str]]:
    """Lower-case first and last names that are not also common English words."""
    first, last = _name_lists()
    common = common_words() | _INTERJECTIONS
    return (frozenset(n.lower() for n in first if n.lower() not in common and len(n) > 2),
            frozenset(n.lower() for n in last if n.lower() not in common and len(n) > 2))


def _morph_common(low: str, common: frozenset[str]) -> bool:
    if low in common:
        return True
    for suffix, repl in (("ies", "y"), ("es", ""), ("s", ""), ("ed", ""), ("ed", "e"), ("ing", ""), ("ing", "e"),
                         ("ly", ""), ("er", ""), ("ers", "")):
        if low.endswith(suffix) and len(low) - len(suffix) >= 3 and low[: len(low) - len(suffix)] + repl in common:
            return True
    return False


# Zipf frequency (log10 of uses per billion words) from which a word is everyday English:
# 3.5 takes ~15,000 words ("fiscal", "energetic"), few of them first names ("bartholomew" is
# 3.1) but many places ("oslo"), so a word in capitals or after a place cue is never everyday.
# See docs/benchmarks.md for what it does to precision and leaks; 3.0 leaked two names more.
ENGLISH_ZIPF = 3.5


@functools.cache
def frequent_english() -> frozenset[str]:
    """Words that are common in English text by ``wordfreq``'s counts (films, news, books, web),
    beyond the thousand-odd words of ``common_words``. A listed name stays a name (``safe``)."""
    from wordfreq import get_frequency_dict

    # A country's words are left out: "Finland 94182" is a postcode line, not "Finland" and a number.
    countries = {w.lower() for name in country_names() for w in re.findall(r"\w+", name)}
    floor = 10 ** (ENGLISH_ZIPF - 9)  # Zipf is log10 of uses per billion; the dict holds uses per word
    return frozenset(w for w, freq in get_frequency_dict("en").items()
                     if freq >= floor and w.isalpha() and w not in countries)


class _Words:
    """Word tests shared by the rules (the lists are built once)."""

    def __init__(self) -> None:
        self.first, self.last = _name_lists()
        self.common = common_words() | _INTERJECTIONS
        self.frequent = frequent_english()
        self.hard = hard_words() | _INTERJECTIONS

    def title(self, w: str) -> str:
        return w.capitalize() if w.isupper() else w

    def listed(self, w: str) -> bool:
        t = self.title(w)
        return t in self.first or t in self.last

    def safe(self, w: str, text: str = "", start: int = 0, *, frequent: bool = True) -> bool:
        """Not a candidate on its own: common English that is not also a listed name. Three
        capitals are an acronym, unless they follow "in", "at", "from"… ("I am in SKI").
        ``frequent=False``: only the core list counts, not ``frequent_english``."""
        if _CONTRACTION.search(w):  # "I'm", "Don't", "We'll"
            w = _CONTRACTION.sub("", w)
        low = w.lower()
        if len(w) <= 1 or low in self.hard or low in _ACRONYMS:
            return True
        if w.isupper() and len(w) <= 3:
            return len(w) < 3 or not _PLACE_BEFORE.search(text, max(0, start - 12), start)
        if self.listed(w):
            return False
        if _morph_common(low, self.common):
            return True
        if "-" in low.strip("-") and all(p and self.safe(p, text, start, frequent=frequent) for p in low.split("-")):
            return True  # "Follow-up", "Kick-off": every part is everyday English
        if field_type(low) and _LABEL_NEXT.match(text, start + len(w)):  # "Geburtsdatum:", "Nachname;Telefon"
            return True
        # Frequent words include famous places ("oslo", "budapest"): not where a place is written.
        return (frequent and low in self.frequent and not w.isupper()
                and not _PLACE_CUE.search(text, max(0, start - 12), start))

    def strong_opener(self, w: str, text: str, start: int, end: int) -> bool:
        """Evidence that a capitalised word opening a sentence is a name, not just a first word."""
        if w.isupper() and len(w) >= 4:
            return True
        if not w.isascii():
            return True
        low = w.lower()
        if self.listed(w) and low not in self.common:
            return True
        if _morph_common(low, self.common) or self.english_shaped(low):
            return False
        line_start = start == 0 or text[start - 1] == "\n"
        return bool(_SUBJECT_NEXT.match(text, end) or _PLACE_NEXT.match(text, end)
                    or (line_start and _SPEAKER_NEXT.match(text, end)))

    def english_shaped(self, low: str) -> bool:
        """An English word's ending; for endings names share, only on a stem that is frequent English
        ("Boarding": "board"; not "Rosing" or "Chise")."""
        m = _ENGLISH_SUFFIX.search(low)
        if m is None:
            return False
        if not _NAME_LIKE_SUFFIX.search(low):
            return True
        stem = low[: m.start()]
        stems = {stem, stem + "e", stem[:-1] if len(stem) > 3 and stem[-1] == stem[-2] else stem}
        return any(len(st) >= 3 and (st in self.frequent or st in self.common) for st in stems)


@functools.cache
def _words() -> _Words:
    return _Words()


# A line's label may be rarer English than a name is ("Attendee": 2.7).
LABEL_ZIPF = 2.5


def english_not_a_name(word: str) -> bool:
    """English in no name list ("Start", "Attendee", "Conference"): before a colon at a line's
    start it is a field's label, not a speaker. A listed name ("Emma:", "Will:") stays a speaker,
    and so does a word English hardly uses ("Mineko:")."""
    from wordfreq import zipf_frequency

    return word.isalpha() and not _words().listed(word) and zipf_frequency(word, "en") >= LABEL_ZIPF


def recall_first_spans(text: str, spans: Sequence[tuple[str, int, int]] = ()) -> list[tuple[str, int, int, str]]:
    """Candidates as (entity_type, start, end, reason). ``spans`` (entity_type, start, end) are
    what the precise rules found; a candidate may overlap them (the caller merges)."""
    ww = _words()
    out: list[tuple[str, int, int, str]] = []
    urls = [m.span() for m in _URL.finditer(text)] if ("@" in text or "://" in text or "www." in text) else []
    url_starts = [a for a, _ in urls]  # in order and disjoint: the one that may hold a word comes before it

    def in_url(pos: int) -> bool:
        i = bisect.bisect_right(url_starts, pos)
        return i > 0 and pos < urls[i - 1][1]

    tokens = [t for t in name_words(text) if not in_url(t[0])]
    out += _capitalised_runs(text, tokens, ww)
    out += _lower_case_names(text, tokens, ww)
    out += _name_handles(text)
    out += _chat_speakers(text)
    out += _past_dates(text)
    out += _ssn_shaped(text)
    out += _lower_case_ibans(text)
    return out


_SSN_SHAPE = re.compile(r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])")


_SSN_CUE = re.compile(r"(?i)(?:\bssn|social[ _-]?security(?:[ _-]?(?:number|no))?)[\"' ]*[:=#]?[\"' ]*(?P<v>\d{9})(?!\d)")
_IBAN_ANY_CASE = re.compile(r"(?i)(?<![\w\-])[a-z]{2}\d{2}(?:[ \-]?[a-z0-9]{4}){2,7}(?:[ \-]?[a-z0-9]{1,3})?(?![\w\-])")


def _ssn_shaped(text: str) -> list[tuple[str, int, int, str]]:
    """Presidio rejects SSNs that cannot be issued (123-45-6789, 987-65-4320, area 000/666/9xx),
    but a user who writes one next to "SSN" means it as theirs, and a real one mistyped is still
    personal: off the device, every number of that shape goes, and nine digits glued to "ssn"
    (``{"ssn":"219099999"}``), where presidio's context word is not a word of its own."""
    out = [("US_SSN", m.start(), m.end(), "a number shaped like a US SSN") for m in _SSN_SHAPE.finditer(text)]
    out += [("US_SSN", m.start("v"), m.end("v"), "nine digits after SSN") for m in _SSN_CUE.finditer(text)]
    return out


def _lower_case_ibans(text: str) -> list[tuple[str, int, int, str]]:
    """An IBAN in lower case (``iban: gb82 west 1234 5698 7654 32``, or with dashes), checked by its
    mod-97 digits; presidio reads only capitals."""
    out = []
    for m in _IBAN_ANY_CASE.finditer(text):
        if m.group() != m.group().upper() and _iban_ok(m.group()):
            out.append(("IBAN_CODE", m.start(), m.end(), "an IBAN in lower case (mod-97 checked)"))
    return out


def _iban_ok(value: str) -> bool:
    code = value.replace(" ", "").replace("-", "").upper()
    if not 15 <= len(code) <= 34:
        return False
    digits = "".join(str(int(c, 36)) for c in code[4:] + code[:4])
    return int(digits) % 97 == 1


def _capitalised_runs(text: str, tokens: list[tuple[int, int, str]], ww: _Words) -> list[tuple[str, int, int, str]]:
    out = []
    i = 0
    while i < len(tokens):
        if not tokens[i][2][:1].isupper():
            i += 1
            continue
        run = [i]
        j = i + 1
        while j < len(tokens):
            prev_s, prev_e, prev_w = tokens[run[-1]]
            s, e, w = tokens[j]
            gap = text[prev_e:s]
            initial = len(prev_w) == 1
            if text[prev_e - 1] == "." and not initial:
                break  # "…on Tuesday. Can you…": a full stop ends the run
            if gap not in (" ", "\t") and not (initial and gap.strip(" \t") == "." and "\n" not in gap):
                break
            if w[:1].isupper():
                run.append(j)
            elif particle_chain(text, tokens, j) or (w in _PARTICLES and tokens[run[-1]][2] in _PARTICLES):
                run.append(j)  # "Rue du Niger", "Isolda van Gameren", "Veronica van der Voet"
            else:
                break
            j += 1
        out += _run_candidates(text, [tokens[k] for k in run], ww)
        i = j
    return out


def _run_candidates(text: str, run: list[tuple[int, int, str]], ww: _Words) -> list[tuple[str, int, int, str]]:
    flags = [not (w in _PARTICLES or ww.safe(w, text, s)) for s, _, w in run]
    if not any(flags):
        return []
    lo = flags.index(True)
    # "Herengracht 1," or a line "Storgata 5" opens a sentence as a street; "Aadhaar 2345 6789" does
    # not, nor a postcode line "Brazil 35172" (a country and its postcode: the block rule's).
    street = ((m := _HOUSE_NUMBER_AFTER.match(text, run[-1][1])) and _LINE_OR_COMMA.match(text, m.end())
              and " ".join(w for _, _, w in run) not in country_names())
    if lo == 0 and is_sentence_start(text, run[0][0]) and not street:
        # Evidence by the core list: "Where: Amsterdam Country Club" is three uncommon words there,
        # though only "Amsterdam" becomes the candidate.
        hits = sum(not (w in _PARTICLES or ww.safe(w, text, s, frequent=False)) for s, _, w in run)
        if not (hits >= 2 or ww.strong_opener(run[0][2], text, run[0][0], run[0][1])):
            flags[0] = False
            if not any(flags):
                return []
            lo = flags.index(True)
    hi = len(flags) - 1 - flags[::-1].index(True)
    # A listed name next to the core belongs to it even when it is a common word ("April Ngata").
    while lo > 0 and ww.listed(run[lo - 1][2]) and not run[lo - 1][2].isupper():
        lo -= 1
    while hi + 1 < len(run) and ww.listed(run[hi + 1][2]):
        hi += 1
    start, end = run[lo][0], run[hi][1]
    if text[end - 1] == "." and len(run[hi][2]) > 1:
        end -= 1  # a full stop, not an initial
    core = [w for _, _, w in run[lo:hi + 1]]
    if hi == len(run) - 1 and (m := _HOUSE_NUMBER_AFTER.match(text, end)):
        # "Fitjabraut 87", "788 Martin Linges veg 149": a street name and house number.
        end = m.end()
        if (b := _NUMBER_BEFORE.search(text, max(0, run[0][0] - 10), run[0][0])) and lo == 0:
            start = b.start()
        return [("STREET_ADDRESS", start, end, "capitalised words and a house number")]
    if any(ww.listed(w) for w in core) or _NAME_CUE.search(text, max(0, start - 20), start):
        etype = "PERSON"
    elif _PLACE_BEFORE.search(text, max(0, start - 12), start) or _PLACE_NEXT.match(text, end):
        etype = "LOCATION"
    else:
        etype = "PERSON"
    return [(etype, start, end, "capitalised words that are not common English")]


def _lower_case_names(text: str, tokens: list[tuple[int, int, str]], ww: _Words) -> list[tuple[str, int, int, str]]:
    first, last = _lower_name_lists()
    out = []
    for k, (s, e, w) in enumerate(tokens):
        if not w.islower() or w in _COMMON_WORDS:
            continue
        nxt = tokens[k + 1] if k + 1 < len(tokens) and text[e:tokens[k + 1][0]] == " " else None
        if w in first and nxt and nxt[2].islower() and nxt[2] in last:
            out.append(("PERSON", s, nxt[1], "lower-case first name and surname"))
        elif (w in first or w in last) and _NAME_CUE.search(text, max(0, s - 20), s):
            end = nxt[1] if nxt and nxt[2].islower() and nxt[2] in last else e
            out.append(("PERSON", s, end, "lower-case name after a cue"))
        elif w in last and (m := _INITIAL_BEFORE.search(text, max(0, s - 3), s)):
            out.append(("PERSON", m.start(), e, "an initial and a lower-case surname"))
    return out


# "k. nowicka", "m.duda": not after another initial ("e.g. smith", "i.e. jones")
_INITIAL_BEFORE = re.compile(r"(?<![\w.])[a-z]\.[ \t]?$")


# A login or @mention spelt from a name: "@jakub.wrobel", "User thanh.pham", "user=anna_kowalska".
_HANDLE = re.compile(r"(?<![\w.\-])(?P<f>[^\W\d_]{3,20})[._](?P<l>[^\W\d_]{3,30})\d{0,4}(?![\w@\-]|\.[^\W\d_])")


@functools.cache
def _folded_name_lists() -> tuple[frozenset[str], frozenset[str]]:
    first, last = _lower_name_lists()
    return frozenset(map(fold_accents, first)), frozenset(map(fold_accents, last))


def _name_handles(text: str) -> list[tuple[str, int, int, str]]:
    """A handle whose two parts are a listed first name and surname (accents ignored: "wrobel")."""
    if "." not in text and "_" not in text:
        return []
    first, last = _folded_name_lists()
    return [("PERSON", m.start(), m.end("l"), "a handle spelt from a first name and surname")
            for m in _HANDLE.finditer(text)
            if fold_accents(m["f"].lower()) in first and fold_accents(m["l"].lower()) in last]


# A chat log's speaker label names a person whatever the name: "@oleksandr.bondarenko: me",
# "[09:21] @kasia: on it". Not a broadcast (@here), a system account, an everyday word or a
# log field (@timestamp).
_SPEAKER = re.compile(r"(?m)^[ \t]*(?:\[[^\]\n]{1,24}\][ \t]*)?@(?P<h>[^\W\d_][\w.\-]{0,38}[^\W_.\-]|[^\W\d_])"
                      r"[ \t]*:(?!//)")
_NOT_SPEAKERS = frozenset("here channel everyone all team room timestamp version type id context graph value".split())


def _chat_speakers(text: str) -> list[tuple[str, int, int, str]]:
    if "@" not in text:
        return []
    return [("PERSON", m.start("h"), m.end("h"), "a chat log's speaker") for m in _SPEAKER.finditer(text)
            if m["h"].lower() not in _NOT_SPEAKERS and handle_names_someone(m["h"])]


_YEAR = re.compile(r"(?<!\d)(?:19|20)\d{2}(?!\d)")


def _past_dates(text: str) -> list[tuple[str, int, int, str]]:
    this_year = datetime.date.today().year
    out = []
    for m in _DATE.finditer(text):
        years = [int(y) for y in _YEAR.findall(m.group())]
        if not years or not all(1900 <= y <= this_year for y in years):
            continue  # "3/5/69" needs a birth cue; a version number "3.11.12" is no date
        parts = [int(p) for p in re.findall(r"\d+", m.group())]
        if len(parts) == 3 and m.group()[:1].isdigit():  # numeric: a day and a month besides the year
            rest = [p for p in parts if p < 100]
            if len(rest) != 2 or not all(1 <= p <= 31 for p in rest) or min(rest) > 12:
                continue
        out.append(("DATE_OF_BIRTH", m.start(), m.end(), "a full date in the past"))
    return out
