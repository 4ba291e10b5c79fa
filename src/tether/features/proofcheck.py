"""What a proofread may have left: cheap signs that an error is still in the text.

A small model fixes about two errors in three (``docs/benchmarks.md``, proofreading quality)
and misses the rest quietly. These rules look at the corrected text the way a grammar checker's
first pass does: a misspelling with a far commoner spelling one letter away (pyspellchecker's
dictionary and wordfreq's counts), a contraction without its apostrophe, a lower-case "i", a
sentence that starts lower-case, "a" before a vowel or "an" before a consonant, a doubled word,
a few word pairs that are almost always a confusion ("your welcome", "could of", "more then"), and
two sentences run together ("the meeting Let me know"). They favour precision: a name, an
address, code and anything capitalised are left alone, and so is prose in another language
(German "habe" is no "have"); a word of four letters or fewer is fixed only for two swapped
letters ("teh"), since "json" is no "jason".

Where a rule is sure of the fix ("an table" → "a table", "dont" → "don't", "i" → "I", a
doubled word, a misspelling's commoner spelling) ``with_fixes`` applies it on the device; what
is left without one ("their going": there or they're? "happy too.": "I'm happy too" or "happy
to"?) is what the proofread cascade escalates
(``tether.features.writing``), and ``ProofreadResult.flagged`` lists it for the user.
"""

from __future__ import annotations

import collections
import functools
import math
import re
import threading
from collections.abc import Callable
from pydantic import BaseModel, ConfigDict

_lock = threading.Lock()


class Suspect(BaseModel):
    model_config = ConfigDict(frozen=True)

    start: int  # character offsets into the checked text
    end: int
    text: str
    why: str
    fix: str | None = None  # what the span should read, where the rule is sure ("an table" → "a table")


# a lower-case word not glued to an address, a path, a handle, code, a number or a hyphen
_WORD = re.compile(r"(?<![\w@/\\.#`'’_-])[a-z]+(?:['’][a-z]+)?(?![\w@/\\#`_-]|['’]?\.\w|:/)")
_CODE = re.compile(r"```.*?```|`[^`\n]*`|\bhttps?://\S+|\S+@\S+\.\w+", re.S)
_GAP = 1.5  # a spelling this much commoner (zipf: 30x), one edit away, is what was meant ("backend" is 1.4 from "backed")
_CONTRACTION = re.compile(r"(?:n't|'m|'ve|'ll|'re|'d)$")
# contractions without their apostrophe that are no word ("cant", "wont", "ill", "well", "its" are)
_NO_APOSTROPHE = {w.replace("'", ""): w for w in (
    "don't", "doesn't", "didn't", "isn't", "wasn't", "aren't", "weren't", "couldn't", "wouldn't", "shouldn't",
    "haven't", "hasn't", "hadn't", "mustn't", "needn't", "i'm", "i've", "you're", "you've", "you'll", "they're",
    "they've", "they'll", "we've", "it'll", "that's", "what's", "there's", "here's", "she's", "who's")}
_NO_APOSTROPHE["im"], _NO_APOSTROPHE["ive"] = "I'm", "I've"
_VERB = (r"be|see|send|call|get|do|have|let|make|take|check|look|try|bring|come|go|meet|talk|need|review|share|"
         r"follow|keep|give|ask|update|start|finish|write|reply|confirm|join|forward|pick|grab|catch|plan|set|put|"
         r"find|help|work|chat|discuss|schedule|book|move|wrap|focus|celebrate|aim|hope|think|say|tell|stop|wait|"
         r"leave|run|play|eat|drink|sort|figure|head|hang|touch|circle|reach|loop|probably|just|also|definitely|"
         r"still|never|always|really|not")
# contractions without their apostrophe that are words too ("Ill health", "it lets you", "his
# wont"), with what must follow for one reading to be left: "ill be", "id like", "lets go"
_AMBIGUOUS = {"ill": ("I'll", _VERB), "id": ("I'd", rf"like|love|appreciate|rather|prefer|suggest|recommend|want|{_VERB}"),
              "lets": ("let's", rf"{_VERB}|us"), "cant": ("can't", r"[a-z]+"), "wont": ("won't", r"[a-z]+")}
_NEXT = {w: rf"(?=[ \t]+(?:{after})\b)" for w, (_, after) in _AMBIGUOUS.items()}
# capitalised, one opens a sentence: only what follows must fit ("Cant" and "Wont" are no nouns there)
_CAPITAL_CONTRACTION = re.compile(rf"(?<![\w'’@/.-])(?:{'|'.join(f'({w.title()}){_NEXT[w]}' for w in _AMBIGUOUS)})")
# lower-case, what comes before must fit too: "i think ill be late", "ok lets go", "they cant come"
_OPENER = r"(?:^|[.!?,;:][ \t]+|\b(?:so|ok|okay|yeah|yes|then|and|but|now|well|maybe|think|guess|hope|sure|oh|hey)[ \t]+)"
_LOWER_CONTRACTION = re.compile(rf"(?m){_OPENER}(?:{'|'.join(f'({w}){_NEXT[w]}' for w in ('ill', 'id', 'lets'))})|"
                                rf"\b(?:i|you|we|they|he|she|it|that|this|who|u) (cant|wont)\b")
# a pronoun and the contractions it takes: "itd" is "it'd", while "deliverables" is no "deliverable's"
_PRONOUNS = {p: ("d", "ll", "s") for p in ("it", "that", "what", "there", "here", "he", "she", "who")} | {
    p: ("d", "ll", "ve", "re") for p in ("you", "they", "we")} | {"let": ("s",)}
_MISSPELT_OFTEN = 2.5  # a misspelling this frequent in web text is made on purpose too: "recieve", "untill"
_COMMON = 3.2  # a word this frequent in wordfreq's English ("facto", "exp") is in use, listed or not
# endings and beginnings that make new words of known ones: "shard" + "ing", "re" + "ranking"
_SUFFIXES = ("ings", "ing", "ers", "er", "ed", "es", "s", "less", "ness", "ments", "ment", "able", "ly", "wise", "ful")
_E_SUFFIXES = ("rs", "r", "d")  # after a final "e": "invite" + "r", "introduce" + "rs"
_PREFIXES = ("re", "pre", "sub", "non", "multi", "over", "under", "inter", "super", "micro", "auto", "mis", "un")


@functools.lru_cache(maxsize=1)
def _checker():  # noqa: ANN202 - spellchecker.SpellChecker
    from spellchecker import SpellChecker

    return SpellChecker(distance=1)  # distance 2 is 50x slower and mostly suggests other words


def _zipf(word: str) -> float:
    from wordfreq import zipf_frequency

    return zipf_frequency(word, "en")


# Latin-script languages whose words English text rarely uses; a lower-case word far commoner in
# one of them than in English ("habe", "domani", "het") is that language's
_OTHER_LANGUAGES = ("de", "fr", "es", "it", "nl", "pt", "sv", "da", "nb", "pl", "tr", "id", "fi", "ro", "cs", "hu", "ca")


@functools.lru_cache(maxsize=1)
def _other_words() -> tuple[dict[str, float], ...]:
    from wordfreq import get_frequency_dict

    return tuple(get_frequency_dict(lang, wordlist="small") for lang in _OTHER_LANGUAGES)


def _english(masked: str) -> bool:
    """Whether the prose is English: the rules' dictionary is, so German "habe" would become
    "have" and Italian "domani" "domain". A lower-case word at least ten times commoner in
    another language (and in use there) counts against, one common in English for; names,
    capitalised, count neither way ("Anna", "Marco"). The text is English unless two or more
    words count against it and they outnumber those for."""
    votes = collections.Counter(_vote(w) for w in re.findall(r"(?<![^\W\d_])[^\W\d_A-Z]+(?![^\W\d_])", masked)
                                if w.islower())
    return votes[-1] < 2 or votes[-1] <= votes[1]  # "We met": Dutch "met" once is no Dutch


@functools.lru_cache(maxsize=50_000)
def _vote(word: str) -> int:
    """-1: another language's word, 1: English, 0: neither or both."""
    en = _zipf(word)
    best = max(d.get(word, 0.0) for d in _other_words())
    theirs = math.log10(best) + 9 if best else 0.0
    return -1 if theirs >= 3 and theirs >= en + 1 else int(en >= 3)


def _known(word: str) -> bool:
    with _lock:
        return bool(_checker().known([word]))


def _derived(word: str, fix: str | None, prefixed: bool = False) -> bool:
    """Whether ``word`` is a common word with an ending or a beginning added ("sharding",
    "stackers", "reranking"), which no dictionary lists but no typo makes either; unless ``fix``
    is the same word spelt right ("begining" is "beginning", "truely" is "truly"). With an
    ending, the word must be in use itself: "quitly" and "darkess" are typos, not coinages."""
    for suffix in _SUFFIXES + _E_SUFFIXES:
        stem = word[:-len(suffix)]
        if not word.endswith(suffix) or len(stem) < 4 or (suffix in _E_SUFFIXES and not stem.endswith("e")):
            continue
        if _zipf(word) > 0 and _zipf(stem) >= 2.5 and _known(stem):
            return not (fix and fix.startswith(stem.rstrip("e")) and fix.endswith(suffix))
    for prefix in () if prefixed else _PREFIXES:
        rest = word[len(prefix):]
        if word.startswith(prefix) and len(rest) >= (5 if prefix == "un" else 4) and (
                _zipf(rest) >= 3 or _derived(rest, None, prefixed=True)):
            return not (fix and fix.endswith(rest))
    return False


def _misspelt(word: str) -> str | None:
    """What ``word`` should have been, or None when it is a word (or one we cannot place)."""
    if word in _NO_APOSTROPHE:
        return _NO_APOSTROPHE[word]
    if len(word) < 3 or "'" in word or "’" in word or not re.search(r"[aeiou]", word):
        return None  # "mvn", "plt": an abbreviation or a command, not a word misspelt
    with _lock:
        checker = _checker()
        if checker.known([word]):
            return None
        fix = checker.correction(word)
        candidates = checker.candidates(word) or set()
    if not fix or fix == word:  # nothing one edit away: a typo of two ("ifnomation") if no text uses it
        if fix is None and 6 <= len(word) <= 12 and _zipf(word) == 0:  # longer: a coinage
            return None if _derived(word, None) else ""
        return None
    if _CONTRACTION.search(fix) and fix.replace("'", "") == word:  # "dont" → "don't"
        return fix
    rest = word[len(fix):]
    if word.startswith(fix) and fix in _PRONOUNS and rest in _PRONOUNS[fix]:  # "itd" → "it'd", not "it"
        return f"{fix}'{rest}"
    if _zipf(word) >= _COMMON:
        return None
    # the commonest spelling one edit away that keeps the first letter: "adress" is "address", not
    # "dress" (pyspellchecker's pick); "numpy" is no "bumpy"; "hte" is "the"
    near = [c for c in candidates if c != word and (c[0] == word[0] or c[:2] == word[1::-1])]
    if not near:
        return None
    fix = max(sorted(near), key=_zipf)  # a tie goes the same way every run
    if word[:-1] == fix and word[-1] in "rs" and word[-1] != fix[-1]:  # "influencer", "emojis": a form, not a typo
        return None
    if _zipf(fix) - _zipf(word) < _GAP:
        return None
    if len(word) <= 4 and not _swapped(word, fix):  # "json" is no "jason", "venv" no "vent", "env" no "end"
        return None
    return None if _derived(word, fix) else fix


def _swapped(word: str, fix: str) -> bool:
    """Whether ``fix`` is ``word`` with two letters side by side swapped ("teh", "adn", "jsut"):
    the one short typo a fix can be sure of, where one letter more, less or other is as often
    a short name or a file type ("json", "docx", "args")."""
    return len(word) == len(fix) and any(word[:i] + word[i + 1] + word[i] + word[i + 2:] == fix
                                         for i in range(len(word) - 1))


_ABBREVIATION = re.compile(r"(?:\b(?:[a-z]\.){2,}|\b(?:etc|vs|approx|incl|cf|no|fig|st|mr|mrs|ms|dr|jr|sr|ltd|co|inc|corp|al|"
                           r"e\.g|i\.e|a\.m|p\.m|min|mins|max|ca|dept|est|ext|tel|wk|yr|yrs|hr|hrs|sec|lb|lbs|oz|ft|yd|yds|qt|gal|"
                           r"mi|pp|vol|prof|gov|sen|rep|ave|blvd|rd|mt|add)\.)$", re.I)
_SENTENCE_START = re.compile(r"(?<=[.!?])[\"”’)]?(\s+)([a-z][a-z']+)\b")
# the body's first word after a greeting line: "Hi Katie,\n\nthe draft looks good."
_AFTER_GREETING = re.compile(r"(?im)^[ \t]*(?:hi|hello|hey|dear|good (?:morning|afternoon|evening))\b[^\n]{0,40}\n"
                             r"\s*(?-i:([a-z][a-z']+))\b")
_A_AN = re.compile(r"(?<![\w'-])(a|an|An)[ \t]+([a-z][a-z'-]*)\b")
# "a" before these vowel letters sounds a consonant ("a one-off", "a European", "a university")
_A_OK = re.compile(r"(?:one|once|eu|ew|uni|usu|use|uti|ura|ure|uro|ubi|uku|uk\b|ufo|ouija)", re.I)
_AN_OK = re.compile(r"(?:hour|honest|honou?r|heir|herb)", re.I)
_DOUBLED = re.compile(r"(?<![\w'-])([A-Za-z]+)[ ]+(\1)(?![\w'-])", re.I)  # a tab between: a table's cells
_MAY_DOUBLE = {"had", "that", "bye", "ha", "haha", "no", "so", "very", "really", "knock", "tut", "boo", "hey",
               "yeah", "blah", "bla", "well", "now", "there", "many", "much", "is", "tsk", "mm", "hmm", "la", "na",
               "oh", "ah", "wow", "yay", "go"}
_THAN_FOR_THEN = "“than” where “then” is meant"
_YOURE, _TO_TOO, _TOO_TO = "“your” where “you're” is meant", "“to” where “too” is meant", "“too” where “to” is meant"
_COMPARATIVE = re.compile(r"\b(?:more|less|fewer|better|worse|rather|other|else|different|greater|larger|smaller|"
                          r"higher|lower|earlier|later|faster|longer|shorter|sooner|bigger|easier|harder|older|"
                          r"younger|cheaper|slower|closer|further|farther)\b", re.I)
# (pattern, why, the fix of the matched text or None where two readings are possible: "their going")
_CONFUSIONS: list[tuple[re.Pattern[str], str, Callable[[str], str] | None]] = [
    (re.compile(r"\b(?:[Cc]ould|[Ww]ould|[Ss]hould|[Mm]ight|[Mm]ust) of\b"), "“of” where “have” is meant",
     lambda t: t[:-2] + "have"),
    # not "thanks for your welcome", "your a.m. slot"
    (re.compile(r"(?<!\bfor )(?<!\bby )(?<!\bof )(?<!\bwith )\b[Yy]our (?:welcome(?=[ \t]*(?:[.!?,;:]|$)|[ \t]+to\b)|"
                r"(?:a|an|the)\b(?![.'’-]\w))"), _YOURE, lambda t: t[:3] + "'re" + t[4:]),
    # "your going away party", "your being here", "your already busy week", "on your right.": either
    (re.compile(r"\b[Yy]our (?:going|doing|being|getting|coming|looking|not|sure|always|never|already|invited)\b"
                r"(?![-'’])|\b[Yy]our right(?=[ \t]*[.!?,;:]|[ \t]+about\b)"), _YOURE, None),
    # "I'll be their and…", "we got their early": a place, after a verb that goes or stays somewhere
    (re.compile(r"\b(?:be|go|get|got|going|went|been|stay|staying|arrive|arrived|over|out) (their)(?=[ \t]*[.!?,;:]|"
                r"[ \t]+(?:and|or|but|too|soon|by|at|on|tomorrow|today|tonight|early|late|later|now|then|again|"
                r"before|after|around)\b)"), "“their” where “there” is meant", lambda t: "there"),
    (re.compile(r"\b(?:[Tt]heir|[Yy]our)(?=[.!?,;:])"), "a possessive with nothing after it", None),
    (re.compile(r"\b[Tt]heir (?:is|are|was|were|be|going|has|have|isn't|aren't|wasn't|weren't)\b"),
     "“their” where “there” or “they're” is meant", None),
    # not "its so-called name", "its very own", "its important role", "during its time in power"
    (re.compile(r"\b[Ii]ts (?:a|an|the|been|not|going|just|very(?! own)|so|too|really|always|already|still|my|"
                r"your|our|all|about)\b(?![-'’])|\b[Ii]ts (?:great|good|nice|fine|ok|okay|important|time)"
                r"(?=[ \t]*(?:[.!?,;:]|$)|[ \t]+(?:to|that|for|and|but|now|again)\b)"), "“its” where “it's” is meant",
     lambda t: t[:2] + "'" + t[2:]),
    (re.compile(r"\b(?:more|less|better|worse|rather|other|greater|fewer|larger|smaller|higher|lower|earlier|"
                r"faster|longer|sooner|bigger|easier|harder) then\b"), "“then” where “than” is meant",
     lambda t: t[:-4] + "than"),
    (re.compile(r"(?:^|[.!?,]\s+|\band )[Tt]han\b"), _THAN_FOR_THEN, lambda t: t[:-3] + "hen"),
    # "is to much", "way to many", "to busy." but not "apply to many schools", "due to busy leaders"
    (re.compile(r"(?:\b(?:is|are|was|were|be|been|am|way|far|feel|felt|seems?|seemed)|['’](?:s|m|re)) "
                r"(to (?:much|many|busy))\b|\b(to busy)(?=[ \t]*[.!?,;:]|[ \t]+(?:to|for)\b)"),
     _TO_TOO, lambda t: "too" + t[2:]),
    # "there are way to many." or "it means a lot to many.", "thanks to many for their help"
    (re.compile(r"\b(to (?:much|many))(?=[ \t]*[.!?,;:]|[ \t]+(?:to|for)\b)"), _TO_TOO, None),
    (re.compile(r"\btoo (?:see|go|be|do|get|make|meet|hear|help|discuss|know|let|send|share|the|a|an|you|me|"
                r"him|her|us|them|it|my|your|our|their)\b"), _TOO_TO, lambda t: "to" + t[3:]),
    # "I'd love too!", "we are able too." ("me too!", "I love you too" are fine)
    (re.compile(r"\b(?:love|like|want|able|supposed|ought) (too)(?=[ \t]*[.!?])"), _TOO_TO, lambda t: "to"),
    # "we have too." or "my sister has too.", "I'd be happy too." or "I'm happy too.": either
    (re.compile(r"\b(?:need|have|has|had|going|got|used|trying|try|plan|planning|hope|hoping|wish|glad|happy|meant|"
                r"allowed) (too)(?=[ \t]*[.!?])"), _TOO_TO, None),
]
_SIGN_OFFS = (r"best|cheers|thanks|regards|sincerely|kind regards|best regards|warm regards|all the best|thank you|"
              r"many thanks|love|yours")
_SIGN_OFF = re.compile(rf"(?m)(?:^|(?<=[.!?] ))[ \t]*((?:{_SIGN_OFFS})),[ \t]*(?:\S[^\n]{{0,30}})?$")
# "Cheers,\nMark.": the name under a sign-off takes no full stop (an initial, "S.", does)
_SIGNED = re.compile(rf"(?im)^[ \t]*(?:{_SIGN_OFFS})[,!]?[ \t]*\n[ \t]*(?-i:[A-Z][a-z]{{2,}}(?: [A-Z][a-z]+)?)(\.)[ \t]*$")
# a capitalised sentence opener straight after a lower-case word: a full stop is missing. Not
# before another capital: "in The Daily Telegraph", "as He Zhizhang" are titles and names
_RUN_ON = re.compile(r"(?<![\w'’])[a-z]+,?[ \t]+((?:Let|Let's|Please|Thanks|Thank|The|This|That|We|We're|We'll|It|It's|"
                     r"Could|Can|Would|Looking|Also|Do|Are|Is|What|How|When|My|Our|If|They|He|She|You|"
                     r"You're|Hi|Hello|Hope|See)\b)(?![ \t]+[A-Z0-9\"“])")


def suspects(text: str) -> list[Suspect]:
    """Places in ``text`` that look like an error a proofread missed, in text order."""
    letters = re.findall(r"[^\W\d_]", text)
    if not letters or sum(c.isascii() for c in letters) < 0.9 * len(letters):
        return []  # the rules know English prose only
    masked = _CODE.sub(lambda m: " " * len(m.group()), text)  # code, links and addresses are not prose
    if not _english(masked):
        return []
    found: list[Suspect] = []

    def add(start: int, end: int, why: str, fix: str | None = None) -> None:
        found.append(Suspect(start=start, end=end, text=text[start:end], why=why, fix=fix))

    def capital(start: int, end: int) -> str:
        return text[start].upper() + text[start + 1:end]

    uses = collections.Counter(w.lower() for w in re.findall(r"[A-Za-z]+", masked))
    for m in _WORD.finditer(masked):
        word = m.group()
        if word in ("i", "i'm", "i've", "i'll", "i'd", "i’m", "i’ve", "i’ll", "i’d"):
            around = masked[max(0, m.start() - 1):m.start()] + masked[m.end():m.end() + 1]
            if not re.search(r"^[({\[)]|[)}\]^=]$", around):  # "(i) the", "D_{i}": a label or an index
                add(m.start(), m.end(), "a lower-case “I”", "I" + word[1:])
        elif (fix := _misspelt(word)) is not None:
            if word not in _NO_APOSTROPHE and _zipf(word) < _MISSPELT_OFTEN and \
                    uses[word] + uses[word + "s"] + (uses[word[:-1]] if word.endswith("s") else 0) > 1:
                continue  # "smores" twice, "ballpen" twice: a word the writer means, if not one we know
            add(m.start(), m.end(), f"not a word; “{fix}”?" if fix else "not a word", fix or None)
    for m in re.finditer(r"(?<![\w'’@/.\\#`_-])[A-Z][a-z]+(?![\w'’@/\\#`_-])", masked):
        if (full := _NO_APOSTROPHE.get(m.group().lower())) is not None:  # "Dont", "Thats", "Im"
            add(m.start(), m.end(), f"not a word; “{full[0].upper() + full[1:]}”?", full[0].upper() + full[1:])
    for m in (*_CAPITAL_CONTRACTION.finditer(masked), *_LOWER_CONTRACTION.finditer(masked)):
        word = m.group(m.lastindex)
        fix = _AMBIGUOUS[word.lower()][0]
        fix = fix[0].upper() + fix[1:] if word[0].isupper() else fix
        add(m.start(m.lastindex), m.end(m.lastindex), f"not a word; “{fix}”?", fix)
    for m in _AFTER_GREETING.finditer(masked):
        line = masked[m.start(1):].split("\n", 1)[0].rstrip()
        if line.endswith((".", "!", "?")) and len(line.split()) >= 4:  # prose, not a list or code
            add(m.start(1), m.end(1), "a sentence that starts lower-case", capital(m.start(1), m.end(1)))
    for m in _SENTENCE_START.finditer(masked):
        if masked[m.start() - 1] in "?!" and masked[m.start()] in "\"”’":  # 'lines like "Is it ripe?" remain'
            continue
        if re.search(r"[a-z,][ \t]+[A-Z][\w'’-]*!$", masked[max(0, m.start() - 40):m.start()]):
            continue  # "the current Jeopardy! host", "a Yahoo! account": a name with its mark
        before = masked[max(0, m.start() - 12):m.start()].rstrip("\"”’)")
        if _ABBREVIATION.search(before) or re.search(r"(?:\.\.|…|\d\.|(?<!\w)\w\.)$", before):  # "c." labels a list item
            continue
        if "\n" in m.group(1):  # a new line: prose if the line ends as a sentence does, not code or a list
            line = masked[m.start(2):].split("\n", 1)[0].rstrip()
            if not line.endswith((".", "!", "?")) or len(line.split()) < 4:
                continue
        add(m.start(2), m.end(2), "a sentence that starts lower-case", capital(m.start(2), m.end(2)))
    for m in _A_AN.finditer(masked):
        article, word = m.group(1).lower(), m.group(2)
        if word in ("a", "an"):  # "a a look": a doubled word, whose fix is one "a"
            continue
        rest = masked[m.end(1):m.end()]
        if article == "a" and (word[0] in "aeio" or re.match(r"u[^aeiou][^aeiouy]", word)) and not _A_OK.match(word):
            add(m.start(), m.end(), "“a” before a vowel sound", m.group(1) + "n" + rest)
        elif article == "an" and word[0] not in "aeiou" and not _AN_OK.match(word):
            add(m.start(), m.end(), "“an” before a consonant sound", m.group(1)[0] + rest)
    for m in _DOUBLED.finditer(masked):
        word, again = m.group(1), m.group(2)
        if text[m.end(1):m.start(2)].strip():
            continue  # an address or code, masked, between them: "a@b.com and c@d.com and"
        if word.istitle() and again[0].isupper() and (_zipf(word.lower()) < 4 or re.match(r"[ ]+[A-Z]", masked[m.end():])) \
                or word.islower() and not again.islower():
            continue  # "Cao Cao", "Will Will Smith": a name ("The The" is no name); "information Information": a heading
        if len(word) > 3 and re.match(rf"[ ]+{word}\b", masked[m.end():], re.I):
            continue  # "Buzz buzz buzz": said three times on purpose; "to to to" is not
        if (word.islower() or word.istitle()) and word.lower() not in _MAY_DOUBLE and word.lower() == again.lower():
            add(m.start(), m.end(), "a doubled word", word)
    for pattern, why, fix in _CONFUSIONS:
        for m in pattern.finditer(masked):
            if why == _THAN_FOR_THEN and m.group().startswith(",") and \
                    _COMPARATIVE.search(re.split(r"[.!?]\s", masked[:m.start()])[-1]):
                continue  # "4 fewer boxes of pie, than on Sunday"
            if m.lastindex:  # the part after the context: "is [to much]"
                start, end = m.span(m.lastindex)
            else:
                start, end = m.start() + (len(m.group()) - len(m.group().lstrip(".!?, \n\t"))), m.end()
            add(start, end, why, fix(text[start:end]) if fix else None)
    for m in _SIGN_OFF.finditer(masked):
        add(m.start(1), m.end(1), "a sign-off that starts lower-case", capital(m.start(1), m.end(1)))
    for m in _SIGNED.finditer(masked):
        if not _ABBREVIATION.search(masked[m.start():m.end(1)]):  # "Jr."
            add(m.start(1), m.end(1), "a full stop after the name that signs off", "")
    for m in _RUN_ON.finditer(masked):
        add(m.start(1), m.end(1), "a full stop missing before it?")
    sure = {(s.start, s.end, s.why) for s in found if s.fix is not None}
    found = [s for s in found if s.fix is not None or (s.start, s.end, s.why) not in sure]  # "are [to many]." is sure
    return sorted(set(found), key=lambda s: (s.start, s.end, s.why, s.fix or ""))  # the same order every run


def with_fixes(text: str) -> str:
    """``text`` with every suspect whose rule is sure of the fix fixed (the first of overlapping
    ones): the rules find what the model left, and where they know the answer the device gives it."""
    for _ in range(3):  # a fix can bring the next to light: "to to to" is "to to", then "to"
        out, pos = [], 0
        for s in suspects(text):
            if s.fix is None or s.start < pos:
                continue
            out += [text[pos:s.start], s.fix]
            pos = s.end
        if not out:
            break
        text = "".join(out) + text[pos:]
    return text
