"""Emoji creation: the lookup, the drawing, the feature on real models, and the CLI."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from tether.errors import EmojiFontUnavailableError, InputError
from tether.features import genmoji
from tether.features.genmoji import Glyph, create_emoji, find_emoji

TINY, SMALL = "smollm2-135m", "qwen2.5-0.5b"
HAS_FONT = any(os.path.isfile(p) for p in genmoji.FONT_PATHS)
needs_font = pytest.mark.skipif(not HAS_FONT, reason="install Debian's fonts-noto-color-emoji (make test does)")


@pytest.mark.parametrize("phrase, face, char", [
    ("cat", True, "🐱"),  # a base prefers the face
    ("cats", True, "🐱"),
    ("cat", False, "🐈"),
    ("sunglasses", False, "🕶️"),
    ("hat", False, "🎩"),  # an extra is a thing, not a "cowboy hat face"
    ("pizza", False, "🍕"),
    ("heart", False, "❤️"),  # exact alias beats "anatomical heart"
    ("crown", False, "👑"),
])
def test_find_emoji(phrase, face, char):
    assert find_emoji(phrase, prefer_face=face)[0] == char


@pytest.mark.parametrize("phrase, char", [
    ("a baseball cap", "🧢"),  # the last word names the thing: a cap, not ⚾
    ("a party hat", "🎉"),  # Unicode has none: 🎉's cone on a head, not 🎩 or the face 🥳
    ("a sun hat", "👒"),  # "woman's hat", not 🎩
    ("a pumpkin", "🎃"),  # "jack-o-lantern": no name or tag says pumpkin
    ("a squirrel", "🐿️"),  # "chipmunk"
    ("a nut", "🥜"),  # food, not 🔩 "nut and bolt"
    ("a bow and arrow", "🏹"),  # one emoji's name, not ⬇️ and 🎀
    ("a knife and fork", "🍴"),  # "fork and knife", either way round
    ("a bouquet of flowers", "💐"),  # before "of" is the thing, past a measure: not 💮 "white flower"
    ("a map of the world", "🗺️"),
    ("a cup of tea", "🍵"),  # not 🧋 "bubble tea"
    ("a fishing rod", "🎣"),  # "fishing pole"; not 🐟 for the one word a name has
    ("a yo-yo", "🪀"),  # a hyphened word is one word: "yo" alone is too short to match anything
    ("a one-piece swimsuit", "🩱"),
    ("a blouse", "👚"),  # not 🥼, which French calls "blouse"
    ("mittens", "🧤"),
    ("a necklace", "📿"),
    ("a ladybug", "🐞"),
    ("a bunny", "🐰"),  # not 👯 "people with bunny ears"
    ("a puppy", "🐶"),  # not 🥺, whose gemoji tag is "puppy eyes"
    ("flip-flops", "🩴"),
    ("a jacket", "🧥"),
    ("a lightbulb", "💡"),
    ("a wizard cat", "🐈"),  # nothing unsaid: not 🐈‍⬛ "black cat", which ranks the same
    ("a bow", "🎀"),  # worn, not 🙇 "person bowing", whose alias is "bow"
    ("a cup of coffee", "☕"),  # past the measure: coffee, not 🥤 "cup with straw"
    ("a slice of pizza", "🍕"),
    ("an ice cream", "🍨"),
    ("a burger", "🍔"),  # no name or alias has it: gemoji's tags do ("hamburger")
    ("red sneakers", "👟"),  # the head from the tags, not 🔴 for the one word a name has
    ("a bowl of noodles", "🍜"),
])
def test_find_emoji_reads_a_phrase_as_the_thing_it_names(phrase, char):
    assert find_emoji(phrase)[0] == char


def test_a_description_is_cut_into_the_things_it_names():
    assert genmoji._phrases("a frog playing a trumpet") == ["a frog", "a trumpet"]
    assert genmoji._phrases("a mouse with a ring and a magnifying glass") == ["a mouse", "a ring", "a magnifying glass"]
    assert genmoji._phrases("a king wearing a ring") == ["a king", "a ring"]  # nouns in -ing stay
    # "X and Y" stays one thing where an emoji bears that name; other pairs are two things
    assert genmoji._phrases("a cat with a bow and arrows") == ["a cat", "a bow and arrows"]
    assert genmoji._phrases("a cat with a bow and a kite") == ["a cat", "a bow", "a kite"]
    assert genmoji._phrases("bread and butter") == ["bread", "butter"]
    assert genmoji._things("a raccoon with a one-piece swimsuit and a compass") == [
        "raccoon", "a one-piece swimsuit", "compass"]  # not 1️⃣ for "one"
    assert genmoji._things("a turtle with a graduation cap and a cup of coffee") == [
        "turtle", "a graduation cap", "coffee"]
    assert genmoji._things("eine Katze mit Sonnenbrille") == ["eine", "katze", "mit", "sonnenbrille"]


def test_the_words_plan_draws_every_thing_named_each_in_its_own_place():
    """Both things held went "beside", and the second was dropped: a shark with a scarf and a kite
    had no kite (benchmarks/emoji_plans.py)."""
    for description, chars in [("a shark with a scarf and a kite", ["🦈", "🧣", "🪁"]),
                               ("a bee with a trophy and a guitar", ["🐝", "🏆", "🎸"]),
                               ("a cat wearing a baseball cap", ["🐱", "🧢"]),
                               ("a penguin with a top hat and a microphone", ["🐧", "🎩", "🎤"]),
                               ("a squirrel eating a nut", ["🐿️", "🥜"]),
                               ("a cat with a bow and arrow", ["🐱", "🏹"])]:  # held, not worn as 🎀 is
        r = create_emoji(description, model=None, png=False)
        assert r.glyphs[0].char == chars[0] and {g.char for g in r.glyphs[1:]} == set(chars[1:]), description
        assert len({g.place for g in r.glyphs}) == len(chars) and r.fallback and not r.unmatched
    long = genmoji._words_plan("a king wearing an enormous shiny golden graduation cap")
    assert all(len(e.thing) <= 30 for e in long.extras) and len(long.base) <= 30


def test_find_emoji_without_a_match():
    assert find_emoji("qwxyzzy") is None
    assert find_emoji("the of a") is None  # only stop words
    assert find_emoji('" OR name:*') == find_emoji("name")  # FTS syntax is read as plain words, never a query


def test_grounding_and_placement():
    assert genmoji._grounded("cats", "a cat in a box")
    assert not genmoji._grounded("dog", "a sloth holding coffee")  # copied from an example, say
    assert genmoji._place("sunglasses", "head") == "eyes"
    assert genmoji._place("party hat", "hand") == "head"
    assert genmoji._place("coffee", "head") == "hand"  # only headwear goes on the head
    assert genmoji._place("balloon", "beside") == "beside"


GLYPHS = [Glyph(char="🐱", name="cat face", phrase="cat", place="base"),
          Glyph(char="🕶️", name="sunglasses", phrase="sunglasses", place="eyes")]


@needs_font
def test_png_layers_the_glyphs_on_the_background():
    from PIL import Image, ImageStat

    img = Image.open(io.BytesIO(genmoji.render_png(GLYPHS, "blue", 200)))
    assert img.size == (200, 200) and img.mode == "RGBA"
    assert img.getpixel((0, 0))[3] == 0  # outside the disc: transparent
    assert img.getpixel((100, 8))[:3] == genmoji.BACKGROUNDS["blue"]  # the disc, above the cat's ears
    def eye_band(image) -> float:  # mean brightness where the cat's eyes are
        return ImageStat.Stat(image.convert("L").crop((66, 86, 134, 102))).mean[0]

    bare = Image.open(io.BytesIO(genmoji.render_png(GLYPHS[:1], "blue", 200)))
    assert eye_band(img) < 100 < eye_band(bare) - 60  # the sunglasses darken the eyes
    clear = Image.open(io.BytesIO(genmoji.render_png(GLYPHS, "none", 200)))
    assert clear.getpixel((100, 8))[3] == 0


def test_svg_is_well_formed_and_carries_the_glyphs():
    root = ET.fromstring(genmoji.render_svg(GLYPHS + [Glyph(char="<&>", name="x", phrase="x", place="hand")], "pink"))
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert texts == ["🐱", "🕶️", "<&>"]
    assert len(list(root.iter("{http://www.w3.org/2000/svg}circle"))) == 1


def test_missing_font_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("TETHER_EMOJI_FONT", str(tmp_path / "nope.ttf"))
    with pytest.raises(EmojiFontUnavailableError, match="nope.ttf"):
        genmoji.render_png(GLYPHS, "blue")
    bad = tmp_path / "bad.ttf"
    bad.write_bytes(b"not a font")
    monkeypatch.setenv("TETHER_EMOJI_FONT", str(bad))
    with pytest.raises(EmojiFontUnavailableError, match="cannot load"):
        genmoji.render_png(GLYPHS, "blue")


@pytest.mark.parametrize("text", ["", "   ", "x" * 301])
def test_bad_descriptions(text):
    with pytest.raises(InputError):
        create_emoji(text, model=TINY)


def test_any_model_output_gives_a_drawable_emoji(tiny):
    """Even the 135M model's plan parses; whatever it names, every glyph comes from the description."""
    r = create_emoji("a frog playing a trumpet", model=TINY, png=False)
    assert r.glyphs and r.glyphs[0].place == "base"
    assert r.text == "".join(g.char for g in r.glyphs)
    for g in r.glyphs:
        assert genmoji._grounded(g.phrase, r.description) or g.char == "🙂"
    assert r.png_base64 is None and r.svg.startswith("<svg")


@pytest.mark.quality
@needs_font
def test_cat_wearing_sunglasses(small):
    r = create_emoji("a cat wearing sunglasses", model=SMALL)
    places = {g.place: g.char for g in r.glyphs}
    assert places["base"] in {"🐱", "🐈"} and places.get("eyes") == "🕶️", r.glyphs
    assert not r.fallback and r.png.startswith(b"\x89PNG")


@pytest.mark.quality
def test_held_things_and_headwear(small):
    sloth = create_emoji("a sleepy sloth holding coffee", model=SMALL, png=False)
    assert {g.place: g.char for g in sloth.glyphs} == {"base": "🦥", "hand": "☕"}, sloth.glyphs
    pizza = create_emoji("a happy pizza with a crown", model=SMALL, png=False)
    assert {g.place: g.char for g in pizza.glyphs} == {"base": "🍕", "head": "👑"}, pizza.glyphs


def test_things_joined_in_the_description_are_the_glyphs_and_one_thing_is_the_models(small):
    """The 0.5B drew "a fox wearing goggles" as 🦊 alone; its name and colour are kept."""
    fox = create_emoji("a fox wearing goggles", model=SMALL, png=False)
    assert [(g.char, g.place) for g in fox.glyphs] == [("🦊", "base"), ("🥽", "eyes")]
    assert (fox.glyphs_from, fox.fallback) == ("words", False)
    taco = create_emoji("an astronaut taco", model=SMALL, png=False)
    assert taco.glyphs_from == "model" and "🌮" in taco.text


def test_cli_no_model_plans_from_the_words_without_loading_one():
    proc = _tether("emoji", "a shark with a scarf and a kite", "--no-model", "--json",
                   env={"TETHER_CACHE_DIR": "/nonexistent/cache"})  # no model to load
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["glyphs_from"], result["fallback"], result["model"]) == ("words", True, "")
    assert [g["char"] for g in result["glyphs"]][0] == "🦈" and len(result["glyphs"]) == 3


def _tether(*args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tether", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


@needs_font
def test_cli_writes_png_and_json(tmp_path):
    out = tmp_path / "e.png"
    proc = _tether("emoji", "a dog with a crown", "--model", TINY, "-o", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert out.read_bytes().startswith(b"\x89PNG") and result["glyphs"]
    svg = tmp_path / "e.svg"
    proc = _tether("emoji", "a dog with a crown", "--model", TINY, "-o", str(svg))
    assert proc.returncode == 0 and "saved" in proc.stdout
    ET.fromstring(svg.read_text())


@pytest.mark.parametrize("args, env, needle", [
    (["   "], {}, "description is empty"),
    (["a cat", "-o", "cat.gif"], {}, "must end in .png or .svg"),
    (["a cat", "-o", "/nonexistent-dir/cat.svg"], {}, "cannot write"),
    (["a cat", "-o", "cat.png"], {"TETHER_EMOJI_FONT": "/nope.ttf"}, "no colour emoji font"),
])
def test_cli_bad_input_is_one_line(args, env, needle, tmp_path):
    proc = _tether("emoji", *args, "--model", TINY, env=env)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and needle in lines[0], proc.stderr


def test_typed_emoji_are_used_and_short_or_foreign_words_do_not_match_by_accident():
    from tether.features.genmoji import _words_plan, find_emoji

    assert find_emoji("🐱") == ("🐱", "cat face")
    plan = _words_plan("🐱 with 🕶️")
    assert plan.base == "🐱" and [(e.thing, e.place) for e in plan.extras] == [("🕶️", "eyes")]
    assert find_emoji("de") is None  # a two-letter word names nothing
    # Spanish names what it names (gato, gafas), and "con", "sol" match nothing by accident
    plan = _words_plan("un gato con gafas de sol")
    assert find_emoji(plan.base)[0] == "🐈" and [(e.thing, e.place) for e in plan.extras] == [("gafas", "eyes")]
