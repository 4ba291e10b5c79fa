"""Emoji creation: a new emoji from a description, composed from Unicode emoji on the device.

A small language model can't draw, but it can plan: it turns "a cat wearing
sunglasses" into a base thing ("cat"), up to two extras placed on it
("sunglasses" on the eyes) and a background colour, by guided generation, so
the plan always parses. Each phrase is then looked up among the Unicode emoji
by BM25 over their CLDR names and aliases (SQLite FTS5 with the Porter
stemmer, in memory), and the glyphs are layered into a PNG with Pillow and the
Noto Color Emoji font, plus an SVG that needs no font on this side. For a PNG,
only emoji the font draws are candidates: Unicode names emoji newer than the
installed font, and those would come out as an empty disc.
"""

from __future__ import annotations

import base64
import functools
import io
import os
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Annotated, Literal
from xml.sax.saxutils import escape

from pydantic import BaseModel, Field, StringConstraints

from tether.errors import EmojiFontUnavailableError, InputError, InvalidOutputError
from tether.features import prompts
from tether.features._common import check_text
from tether.models.catalog import DEFAULT_MODEL
from tether.models.engine import Sampling
from tether.session import Session

MAX_DESCRIPTION_CHARS = 300
Place = Literal["eyes", "head", "hand", "beside"]
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "yellow": (255, 221, 120), "orange": (255, 183, 110), "red": (255, 140, 140), "pink": (255, 182, 213),
    "purple": (205, 170, 255), "blue": (150, 200, 255), "green": (160, 225, 160), "gray": (215, 215, 220),
    "none": (0, 0, 0),
}
FONT_PATHS = ("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf", "/usr/share/fonts/noto/NotoColorEmoji.ttf",
              "/System/Library/Fonts/Apple Color Emoji.ttc")
_FONT_SIZE = 109  # the one bitmap size Noto Color Emoji carries

Phrase = Annotated[str, StringConstraints(min_length=1, max_length=30)]


class _Extra(BaseModel):
    thing: Phrase
    place: Place


class _Plan(BaseModel):
    name: Annotated[str, StringConstraints(min_length=2, max_length=40)]
    base: Phrase
    extras: list[_Extra] = Field(max_length=2)
    background: Literal["yellow", "orange", "red", "pink", "purple", "blue", "green", "gray", "none"]


class Glyph(BaseModel):
    char: str
    name: str  # CLDR name of the emoji used
    phrase: str  # what the plan asked for
    place: Literal["base", "eyes", "head", "hand", "beside"]


class EmojiResult(BaseModel):
    description: str
    name: str
    glyphs: list[Glyph]
    background: str
    svg: str
    png_base64: str | None = None  # None when no colour emoji font is installed
    fallback: bool = False  # True: the plan came from the description's words, not the model
    # "words": the glyphs are the things the description names (each one an emoji), the model's
    # plan giving the name and background; "model": the model's choice of glyphs
    glyphs_from: Literal["model", "words"] = "model"
    unmatched: list[str] = Field(default_factory=list)  # phrases no emoji matched
    model: str
    duration_s: float

    @property
    def png(self) -> bytes | None:
        return base64.b64decode(self.png_base64) if self.png_base64 else None

    @property
    def text(self) -> str:
        """The glyphs in a row, for places that can only show text."""
        return "".join(g.char for g in self.glyphs)


# ----------------------------------------------------------------- lookup

# the languages the emoji package names emoji in besides English; Chinese and Japanese are
# written without spaces, so their names are looked for inside the description (``_cjk_names``)
_LANGUAGES = ("ar", "de", "es", "fa", "fr", "id", "it", "ko", "pt", "ru", "tr")
_CJK_LANGUAGES = ("ja", "zh")
# Everyday names the CLDR names and the emoji package's aliases lack: a bow worn is 🎀 ("ribbon"),
# not 🙇 "person bowing", which the stemmer reads as "bow"; a baseball cap is 🧢 ("billed cap"),
# not ⚾. Found by benchmarks/emoji_plans.py.
_MORE_ALIASES = {"🎀": "bow; hair bow", "🧢": "baseball cap; cap", "🍩": "donut", "☕": "coffee; cup of coffee; mug",
                 "🥤": "soda; soft drink", "🧁": "muffin", "👒": "sun hat; straw hat; sunhat", "🎃": "pumpkin",
                 "🐿": "squirrel", "🥜": "nut; nuts", "🎉": "party hat", "🍵": "tea; cup of tea", "🌼": "flower",
                 "🎣": "fishing rod; rod", "🧤": "mittens; mitten", "📿": "necklace; beads", "🐞": "ladybug; ladybird",
                 "👚": "blouse; top", "🐶": "puppy", "🐱": "kitten; kitty", "🐰": "bunny", "🐴": "pony",
                 "🩴": "flip-flops; flip-flop; flip flops", "🧥": "jacket", "💡": "lightbulb"}


@functools.lru_cache(maxsize=1)
def _index() -> sqlite3.Connection:
    """English names and aliases, which the lookup ranks by, and the other languages' names, which
    it reads only when no English word matched: "eine Katze mit Sonnenbrille" is 🐱 and 🕶️."""
    import emoji

    emoji.config.load_language(list(_LANGUAGES + _CJK_LANGUAGES))
    db = sqlite3.connect(":memory:", check_same_thread=False)
    # two tables: the other languages' words must not change how English ones rank
    db.execute("CREATE VIRTUAL TABLE e USING fts5(char UNINDEXED, name, aliases, tokenize='porter unicode61')")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(char UNINDEXED, tags, tokenize='porter unicode61')")
    db.execute("CREATE VIRTUAL TABLE o USING fts5(char UNINDEXED, others, tokenize='porter unicode61')")
    tags = _gemoji_tags()
    rows = []
    for char, data in emoji.EMOJI_DATA.items():
        name = data["en"].strip(":").replace("_", " ")
        if data.get("status") != emoji.STATUS["fully_qualified"] or "skin tone" in name:
            continue
        aliases = "; ".join([a.strip(":").replace("_", " ") for a in data.get("alias", [])]
                            + [_MORE_ALIASES.get(char.replace("\ufe0f", ""), "")]).strip("; ")
        others = "; ".join(data[lang].strip(":").replace("_", " ") for lang in _LANGUAGES if lang in data)
        rows.append((char, name, aliases, others, tags.get(char.replace("\ufe0f", ""), "")))
    db.executemany("INSERT INTO e VALUES (?, ?, ?)", [r[:3] for r in rows])
    db.executemany("INSERT INTO t VALUES (?, ?)", [(r[0], r[4]) for r in rows if r[4]])
    db.executemany("INSERT INTO o VALUES (?, ?)", [(r[0], r[3]) for r in rows])
    return db


def _gemoji_tags() -> dict[str, str]:
    """GitHub's gemoji tags per emoji (variation selectors dropped): the everyday words Unicode's
    names lack, "burger" for 🍔 "hamburger", "dinosaur" for 🦕 "sauropod", "sneaker" for 👟
    "running shoe". A table apart, read only when no name or alias matched: tags are loose
    ("happy"), and ranked with the names a "hat" tag on 🎩 made 👒 outrank it."""
    from emojis.db.db import EMOJI_DB

    return {e.emoji.replace("\ufe0f", ""): "; ".join(t.replace("_", " ") for t in e.tags) for e in EMOJI_DB}


@functools.lru_cache(maxsize=1)
def _cjk_names() -> list[tuple[str, str]]:
    """(name, emoji) in Japanese and Chinese, longest first: "サングラス" before "猫"."""
    import emoji

    _index()
    names = {}
    for char, data in emoji.EMOJI_DATA.items():
        if data.get("status") != emoji.STATUS["fully_qualified"] or "skin tone" in data["en"]:
            continue
        for lang in _CJK_LANGUAGES:
            name = data.get(lang, "").strip(":").replace("_", "")
            if name and not name.isascii():
                names.setdefault(name, char)
    return sorted(names.items(), key=lambda item: -len(item[0]))


def _cjk_emoji(text: str) -> list[tuple[int, str]]:
    """(where, emoji) for each Japanese or Chinese emoji name in ``text``, a longer name first
    and none inside another: "サングラスをかけた猫" holds 🕶️ and 🐈."""
    taken = [False] * len(text)
    found = []
    for name, char in _cjk_names():
        at = text.find(name)
        while at >= 0:
            if not any(taken[at:at + len(name)]):
                taken[at:at + len(name)] = [True] * len(name)
                found.append((at, char))
            at = text.find(name, at + 1)
    return sorted(found)


# Unicode letters and digits: "café" is one word, not "caf"; "yo-yo" and "one-piece" are one too
_WORD = re.compile(r"[^\W_]+(?:-[^\W_]+)*")
_STOP = frozenset("a an the of with and in on to for wearing holding having its his her their is are".split())


def _words(text: str) -> list[str]:
    """Lower-case words of ``text`` that can name something: no stop words, and none of one or
    two letters ("de", "un" would match any name that happens to hold them)."""
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) >= 3]


_PEOPLE = frozenset("person people man men woman women".split())
# "a cup of coffee" names coffee, "a pair of glasses" glasses: the thing, not its measure
_MEASURE_OF = re.compile(r"(?i)^\s*(?:an?\s+|the\s+|some\s+)?(?:cup|mug|glass|slice|piece|bowl|plate|bag|box|bottle"
                         r"|bunch|pair|can|jar|stack|pile|bucket|basket|handful|loaf|bar|scoop|tub)s?\s+of\s+(.+)$")


def _thing_words(phrase: str) -> list[str]:
    """``_words`` of the thing ``phrase`` names: past a measure ("a slice of pizza" is pizza)."""
    m = _MEASURE_OF.match(phrase)
    return (m and _words(m.group(1))) or _words(phrase)


def _singular(word: str) -> str:
    return re.sub(r"(?<=[a-z]{3})s$", "", word)  # "cats" is "cat" ("glass" "glas": both sides are cut alike)


def _emoji_in(text: str) -> list[str]:
    import emoji

    return [e["emoji"] for e in emoji.emoji_list(text)]


def find_emoji(phrase: str, *, prefer_face: bool = False, drawable: bool = False) -> tuple[str, str] | None:
    """The emoji whose name best matches ``phrase`` (BM25), as ``(char, name)``; None if no word matches.

    Names carry most of the meaning, aliases some. For the base of a composition a
    "… face" emoji is preferred when one exists: faces take accessories best. With
    ``drawable`` (for a PNG), emoji the colour emoji font draws no picture for are no
    candidates, so the next best one is used, or None: better than an empty drawing.
    """
    font = _font_key() if drawable else None
    given = [e for e in _emoji_in(phrase) if font is None or _draws(font, e)]
    if given:  # "🐱 with 🕶️": the emoji the user typed is the match
        import emoji

        return given[0], emoji.EMOJI_DATA.get(given[0], {}).get("en", ":emoji:").strip(":").replace("_", " ")
    words = _thing_words(phrase)
    if not words:
        return _other_language(phrase, [], font)  # "猫": a name of one character
    query = " OR ".join(f'"{w}"' for w in words)
    rows = _index().execute(
        "SELECT char, name, aliases, bm25(e, 0.0, 4.0, 1.0) AS rank FROM e WHERE e MATCH ? ORDER BY rank LIMIT 25",
        (query,),
    ).fetchall()
    if font is not None:
        rows = [r for r in rows if _draws(font, r[0])]
    if not rows:
        rows = _tagged(query, font)
    if not rows:
        hit = _other_language(phrase, words, font)
        # by its English name, as an English word would be: "Katze" as a base is 🐱, not 🐈
        return (find_emoji(hit[1], prefer_face=True, drawable=drawable) or hit) if hit and prefer_face else hit
    target = " ".join(words)
    targets = {target, re.sub(r"s\b", "", target)}  # "cats" names "cat"
    # English puts the thing last: a "baseball cap" is a cap, a "party hat" a hat; but before
    # "of" past any measure: "a bouquet of flowers" is 💐, not 💮
    of = re.match(r"(?i)(.*?)\s+of\s", phrase) if not _MEASURE_OF.match(phrase) else None
    last = (_words(of.group(1)) or words)[-1] if of else words[-1]
    head = {last, _singular(last)} if len(words) > 1 else set()

    said = set(words) | {_singular(w) for w in words}

    def named(row: tuple[str, str, str, float]) -> set[str]:  # the words of its name and aliases
        return set(_WORD.findall(f"{row[1]} {row[2]}".lower()))

    if head and not any(head & named(r) for r in rows):
        rows += _tagged(" OR ".join(f'"{h}"' for h in head), font)  # "red sneakers": 👟, not 🔴

    def score(row: tuple[str, str, str, float]) -> float:
        char, name, aliases, rank = row
        name = name.lower()
        s = -rank
        if name in targets or any(a.strip() in targets for a in aliases.lower().split(";")):
            s += 5.0
        if head & named(row):
            s += 6.0
        if prefer_face and any(name in (f"{t} face", f"{t}face") for t in targets | head):
            s += 6.0  # "a wizard cat" is 🐱 "cat face" too
        if set(_WORD.findall(name)) - {"face"} <= said:
            s += 1.0  # of equal ranks, one that adds nothing unsaid: 🐈 "cat", not 🐈‍⬛ "black cat"
        if not prefer_face and "face" in name and "face" not in target:
            s -= 4.0  # an extra worn or held should be a thing, not another face
        if not prefer_face and _PEOPLE & set(name.split()) and not _PEOPLE & set(words):
            s -= 4.0  # nor a person: a bow worn is 🎀, not 🙇 "person bowing" (alias "bow")
        return s

    char, name, _, _ = max(rows, key=score)
    return char, name


def _tagged(query: str, font: tuple[str, int, int] | None) -> list[tuple[str, str, str, float]]:
    """Rows as ``find_emoji`` ranks them, from the gemoji tags: for a word no name or alias has."""
    import emoji

    found = _index().execute("SELECT char, tags, bm25(t) AS rank FROM t WHERE t MATCH ? ORDER BY rank LIMIT 25",
                             (query,)).fetchall()
    return [(c, emoji.EMOJI_DATA[c]["en"].strip(":").replace("_", " "), tags, rank) for c, tags, rank in found
            if c in emoji.EMOJI_DATA and (font is None or _draws(font, c))]


def _other_language(phrase: str, words: list[str], font: tuple[str, int, int] | None) -> tuple[str, str] | None:
    """``find_emoji`` in the other languages: a word that begins a name ("katze" of "katzengesicht"),
    the name that is the word itself first, then the shortest; else a Japanese or Chinese name in it."""
    import emoji

    asked = [w for w in words if w not in _FOREIGN_STOP and len(w) >= 4 or not w.isascii()]
    rows = []
    if asked:
        query = " OR ".join(f'"{w}"*' for w in asked)
        rows = _index().execute("SELECT char, others FROM o WHERE o MATCH ? LIMIT 200", (query,)).fetchall()
    def order(row: tuple[str, str]) -> tuple[int, int]:  # "gafas de sol" is 🕶️ before "gafas" 👓
        mine = {w for w in words if w not in _FOREIGN_STOP}
        best = max(row[1].lower().split(";"), key=lambda n: (len(mine & set(n.split())), -len(n)))
        return -len(mine & set(best.split())), len(best)

    chars = [c for c, _ in sorted(rows, key=order)]
    chars += [c for _, c in _cjk_emoji(phrase)]
    for char in chars:
        if font is None or _draws(font, char):
            return char, emoji.EMOJI_DATA[char]["en"].strip(":").replace("_", " ")
    return None


# "eine", "avec": words of other languages too common to name anything
_FOREIGN_STOP = frozenset("""eine einen einem einer nicht oder sein seine ihre ihrem unter über mein meine
avec dans pour sans sous une elle elles cette leur leurs mais como para pero entre sobre sus una unos unas
della delle degli nella sulla come anche dentro uma para pelo pela seus suas""".split())


# ----------------------------------------------------------------- drawing

# Centre (as a fraction of the canvas) and size (fraction of the base glyph) per place.
_LAYOUT: dict[str, tuple[float, float, float]] = {
    "base": (0.5, 0.52, 1.0), "eyes": (0.5, 0.47, 0.62), "head": (0.5, 0.2, 0.5),
    "hand": (0.78, 0.78, 0.42), "beside": (0.8, 0.2, 0.38),
}


def font_path() -> Path:
    """``TETHER_EMOJI_FONT``, else the platform's colour emoji font."""
    configured = os.environ.get("TETHER_EMOJI_FONT")
    candidates = [configured] if configured else list(FONT_PATHS)
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    where = configured or ", ".join(FONT_PATHS)
    raise EmojiFontUnavailableError(f"no colour emoji font at {where}; install Debian's fonts-noto-color-emoji "
                                    "or set TETHER_EMOJI_FONT (the SVG works without it)")


def _font_key() -> tuple[str, int, int]:
    """The emoji font to draw with, as a cache key: a replaced or edited file is a new font."""
    path = font_path()
    st = path.stat()
    return str(path), st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=2)
def _load_font(path: str, mtime_ns: int, nbytes: int):  # -> PIL.ImageFont.FreeTypeFont
    from PIL import ImageFont

    try:
        return ImageFont.truetype(path, _FONT_SIZE)
    except OSError as exc:
        raise EmojiFontUnavailableError(f"cannot load the emoji font {path}: {exc}") from None


_DRAW_LOCK = threading.Lock()  # the cached font is one FreeType face; the gateway may draw from two threads


def _tile(font: tuple[str, int, int], char: str):  # -> PIL.Image.Image | None
    """``char`` drawn alone and cropped to its ink; None where the font has no one picture for it:
    nothing at all (an emoji newer than the font), or a ZWJ sequence it lacks, drawn as its parts
    side by side (the tile is four glyphs wide so that shows)."""
    from PIL import Image, ImageDraw

    face = _load_font(*font)
    tile = Image.new("RGBA", (_FONT_SIZE * 4, _FONT_SIZE * 2), (0, 0, 0, 0))
    with _DRAW_LOCK:
        ImageDraw.Draw(tile).text((_FONT_SIZE * 2, _FONT_SIZE), char, font=face, embedded_color=True, anchor="mm")
    box = tile.getbbox()
    if box is None or box[2] - box[0] > _FONT_SIZE * 1.6:  # one emoji is at most ~1.2 wide
        return None
    return tile.crop(box)


@functools.lru_cache(maxsize=4096)
def _draws(font: tuple[str, int, int], char: str) -> bool:
    """Does the font draw ``char``? Asked per candidate (under a millisecond), so no run pays for all 1,900."""
    return _tile(font, char) is not None


def render_png(glyphs: list[Glyph], background: str, size: int = 256) -> bytes:
    """The glyphs layered on the background disc. A glyph the font cannot draw is an error, never a
    gap: a picture missing its base (or a part) must not be saved as if it were the emoji."""
    from PIL import Image, ImageDraw

    if not 32 <= size <= 1024:
        raise InputError(f"size must be 32..1024 pixels, got {size}")
    font = _font_key()
    canvas = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    if background != "none":
        margin = size // 32
        ImageDraw.Draw(canvas).ellipse((margin, margin, size - margin, size - margin), fill=(*BACKGROUNDS[background], 255))
    base_px = int(size * 0.6)
    for g in glyphs:
        cx, cy, scale = _LAYOUT[g.place]
        tile = _tile(font, g.char)
        if tile is None:
            raise EmojiFontUnavailableError(f"the emoji font {font[0]} has no picture for {g.char} ({g.name}); "
                                            "the SVG leaves it to the viewer's font")
        side = max(1, int(base_px * scale))
        ratio = side / max(tile.size)
        tile = tile.resize((max(1, int(tile.width * ratio)), max(1, int(tile.height * ratio))), Image.LANCZOS)
        canvas.alpha_composite(tile, (int(cx * size - tile.width / 2), int(cy * size - tile.height / 2)))
    out = io.BytesIO()
    canvas.save(out, format="PNG")
    return out.getvalue()


def render_svg(glyphs: list[Glyph], background: str, size: int = 256) -> str:
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 {size} {size}">']
    if background != "none":
        r, g, b = BACKGROUNDS[background]
        parts.append(f'<circle cx="{size / 2}" cy="{size / 2}" r="{size * 15 / 32}" fill="rgb({r},{g},{b})"/>')
    for glyph in glyphs:
        cx, cy, scale = _LAYOUT[glyph.place]
        parts.append(f'<text x="{cx * size:.1f}" y="{cy * size:.1f}" font-size="{size * 0.6 * scale * 0.85:.1f}" '
                     f'text-anchor="middle" dominant-baseline="central">{escape(glyph.char)}</text>')
    parts.append("</svg>")
    return "".join(parts)


# ----------------------------------------------------------------- the feature

def _stems(text: str) -> set[str]:
    return {_singular(w) for w in _words(text)}


_EYES = _stems("glasses sunglasses goggles monocle eyeglasses spectacles")
_HEAD = _stems("hat cap crown helmet halo bow tiara beret bonnet headphones")


def _grounded(phrase: str, description: str) -> bool:
    """Does ``phrase`` name something the description mentions? Small models copy their examples."""
    return bool(_stems(phrase) & _stems(description))


def _place(thing: str, suggested: str) -> str:
    """Wearables go where they are worn, whatever the model said; other things are held or beside."""
    hit = find_emoji(thing)
    if hit is not None:  # "🕶️" and "Sonnenbrille" are worn where "sunglasses" is
        thing = f"{thing} {hit[1]}"
    stems = _stems(thing) if " and " not in thing.lower() else set()  # 🏹 "bow and arrow" is no 🎀
    if stems & _EYES:
        return "eyes"
    if stems & _HEAD:
        return "head"
    return suggested if suggested in ("hand", "beside") else "hand"


def _plan(description: str, model: str, drawable: bool = False) -> tuple[_Plan | None, bool]:
    for attempt in range(2):
        session = Session(instructions=prompts.EMOJI_DESIGNER, model=model)
        sampling = Sampling.greedy(120) if attempt == 0 else Sampling.random(0.7, seed=5, max_tokens=120)
        try:
            plan = session.respond(prompts.EMOJI.format(description=description), _Plan, sampling=sampling).content
        except InvalidOutputError:
            continue
        if _grounded(plan.base, description) and find_emoji(plan.base, prefer_face=True, drawable=drawable):
            extras = [_Extra(thing=e.thing, place=_place(e.thing, e.place))  # type: ignore[arg-type]
                      for e in plan.extras if _grounded(e.thing, description)]
            return plan.model_copy(update={"extras": extras}), False
    return None, True


# Where an English description passes from one thing to the next: "a cat wearing a top hat".
_JOINS = frozenset("""with and in on at by under over behind beside near inside into onto from
while who that which is are has have wearing holding having carrying""".split())
# words ending in -ing that name things, not what a thing does
_ING_NOUNS = frozenset("""ring king wing string spring sling swing thing ceiling building pudding wedding painting
clothing stocking earring evening morning icing dumpling""".split())


_DETERMINERS = frozenset("a an the some my your his her its our their this that".split())


@functools.lru_cache(maxsize=1)
def _pair_names() -> frozenset[frozenset[str]]:
    """The two things of an emoji named "X and Y" (🏹 "bow and arrow", 🍴 "fork and knife")."""
    names = (n.lower().split(" and ") for (n,) in _index().execute("SELECT name FROM e"))
    return frozenset(frozenset(n) for n in names if len(n) == 2 and all(" " not in w for w in n))


def _phrases(description: str) -> list[str]:
    """The description cut where it passes to another thing (a joining word, a verb in -ing):
    "a frog playing a trumpet" is "a frog", "a trumpet"; "a bow and arrow" stays one, an emoji's name."""
    out: list[list[str]] = [[]]
    tokens = re.findall(_WORD.pattern + r"|[^\w\s]", description)  # words, and each mark on its own
    for i, w in enumerate(tokens):
        low = w.lower()
        if (low == "and" and out[-1] and i + 1 < len(tokens)
                and {_singular(out[-1][-1].lower()), _singular(tokens[i + 1].lower())} in _pair_names()):
            out[-1].append(w)
            continue
        # after a thing, an -ing word says what it does; after "a" it describes ("a magnifying glass")
        doing = (low.endswith("ing") and len(low) >= 6 and low not in _ING_NOUNS and out[-1]
                 and out[-1][-1].lower() not in _DETERMINERS)
        if low in _JOINS or not w[0].isalnum() or doing:
            out.append([])
        else:
            out[-1].append(w)
    return [" ".join(p) for p in out if p]


def _names_in_english(word: str) -> bool:
    db = _index()
    return any(db.execute(f"SELECT 1 FROM {table} WHERE {table} MATCH ? LIMIT 1", (f'"{word}"',)).fetchone()
               for table in ("e", "t"))


def _things(description: str) -> list[str]:
    """What the description names, in order: a phrase whose last word names an emoji in English
    is one thing ("a baseball cap" is 🧢, not ⚾ and 🧢), any other is word by word ("eine Katze
    mit Sonnenbrille"), and a Japanese or Chinese run of words by the emoji names in it."""
    things: list[str] = []
    for phrase in _phrases(description):
        words = _thing_words(phrase)
        if len(words) > 1 and phrase.isascii() and _names_in_english(words[-1]):
            things.append(phrase)
            continue
        for w in words:
            things += ([c for _, c in _cjk_emoji(w)] if not w.isascii() else []) or [w]
    return things


def _last_30(phrase: str) -> str:
    """``phrase`` within a plan's 30 characters, its last words kept (they name the thing)."""
    while len(phrase) > 30 and " " in phrase:
        phrase = phrase.split(" ", 1)[1]
    return phrase[-30:]


def _covered(description: str, drawable: bool = False) -> bool:
    """Does the description join two or three things ("a fox wearing goggles") that each name an
    emoji? Then those are the glyphs: on 180 such descriptions the 0.5B's own choice was right
    less often (60-73% exact against 80-95%, benchmarks/emoji_plans.py): it dropped a thing
    worn, or made the thing held the base. One thing ("an astronaut taco") stays the model's to
    read: its 🧑‍🚀 holding 🌮 says more than the words' 🌮."""
    things = _things(description) if not _emoji_in(description) else []
    return 2 <= len(things) <= 3 and all(find_emoji(t, drawable=drawable) is not None for t in things)


def _words_plan(description: str, drawable: bool = False) -> _Plan:
    """Fallback: the things the description names, the first that names an emoji as the base."""
    words = _words(description)
    things = _things(description)
    hits = [w for w in _emoji_in(description) + things if find_emoji(w) is not None]
    hits.sort(key=lambda w: _place(w, "beside") in ("eyes", "head"))  # a thing worn is no base: the cat is
    if drawable:  # what the font draws leads; the rest stay, to be reported unmatched
        hits.sort(key=lambda w: find_emoji(w, drawable=True) is None)
    base = _last_30(hits[0]) if hits else description[:30]
    extras = [_Extra(thing=_last_30(w), place=_place(w, "hand")) for w in hits[1:3]]  # type: ignore[arg-type]
    name = " ".join(words[:4])[:40]
    return _Plan(name=name if len(name) >= 2 else "emoji", base=base[:30],
                 extras=extras, background="yellow")


def _free_place(place: str, taken: set[str]) -> str | None:
    """``place``, or where a thing held or beside goes when it is taken: a cat "with gloves and a
    kite" keeps both (the second thing in the other of hand and beside), where one was dropped.
    A second thing for the eyes or the head has nowhere to go."""
    if place not in taken:
        return place
    if place in ("hand", "beside"):
        other = "beside" if place == "hand" else "hand"
        return other if other not in taken else None
    return None


def create_emoji(description: str, *, model: str | None = DEFAULT_MODEL, size: int = 256,
                 png: bool = True) -> EmojiResult:
    """Make a new emoji from ``description``. With ``png``, also draw it (needs a colour emoji font).
    ``model=None`` plans from the description's own words, with no model (instant, and the
    baseline ``benchmarks/emoji_plans.py`` measures the model's plan against)."""
    check_text(description, "description")
    if isinstance(size, bool) or not isinstance(size, int) or not 32 <= size <= 1024:
        raise InputError(f"size must be a whole number of pixels from 32 to 1024, not {size!r}")  # before the model runs
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise InputError(f"description is {len(description)} characters; an emoji takes at most {MAX_DESCRIPTION_CHARS}")
    start = time.perf_counter()
    description = " ".join(description.split())
    if png:
        _load_font(*_font_key())  # no font, or a broken one: say so before the model runs
    plan, fallback = _plan(description, model, drawable=png) if model is not None else (None, True)
    glyphs_from = "model"
    if plan is None:
        plan, glyphs_from = _words_plan(description, drawable=png), "words"
    elif _covered(description, drawable=png):  # the description's own things; the model's name and colour
        words = _words_plan(description, drawable=png)
        plan, glyphs_from = plan.model_copy(update={"base": words.base, "extras": words.extras}), "words"
    glyphs: list[Glyph] = []
    unmatched: list[str] = []
    base = find_emoji(plan.base, prefer_face=True, drawable=png)
    if base is None:
        unmatched.append(plan.base)
        base = ("🙂", "slightly smiling face")
    glyphs.append(Glyph(char=base[0], name=base[1], phrase=plan.base, place="base"))
    used = {base[0]}
    for extra in plan.extras:
        hit = find_emoji(extra.thing, drawable=png)
        if hit is None:
            unmatched.append(extra.thing)
        elif hit[0] not in used and (place := _free_place(extra.place, {g.place for g in glyphs})):
            used.add(hit[0])
            glyphs.append(Glyph(char=hit[0], name=hit[1], phrase=extra.thing, place=place))
    drawn = base64.b64encode(render_png(glyphs, plan.background, size)).decode() if png else None
    return EmojiResult(description=description, name=plan.name.strip(), glyphs=glyphs, background=plan.background,
                       svg=render_svg(glyphs, plan.background, size), png_base64=drawn, fallback=fallback,
                       glyphs_from=glyphs_from, unmatched=unmatched, model=model or "",
                       duration_s=time.perf_counter() - start)
