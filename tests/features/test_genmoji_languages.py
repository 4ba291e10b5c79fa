"""Emoji from a description in another language than English: the emoji package's names in
other languages, looked up when no English word matches."""

from __future__ import annotations

import pytest

from tether.features.genmoji import _words_plan, create_emoji, find_emoji

SMALL = "qwen2.5-0.5b"


@pytest.mark.parametrize("phrase, face, char", [
    ("Katze", True, "🐱"),  # by its English name: a base prefers the face
    ("Katze", False, "🐈"),
    ("Sonnenbrille", False, "🕶️"),
    ("gafas de sol", False, "🕶️"),  # the name with most of the words, not "gafas" 👓
    ("un chien avec un chapeau", False, "🐕"),  # "avec" counts for nothing
    ("猫", False, "🐈"),  # a Chinese or Japanese name of one character
    ("サングラス", False, "🕶️"),
    ("Krone", False, "👑"),
    ("cat", True, "🐱"),  # English ranks as before
    ("hat", False, "🎩"),
])
def test_find_emoji_in_other_languages(phrase, face, char):
    assert find_emoji(phrase, prefer_face=face)[0] == char


def test_a_words_plan_in_german_or_japanese_puts_the_glasses_on_the_cat():
    """Both came out as 🙂 with "no emoji for: eine Katze mit Sonnenbrille"."""
    for description in ("eine Katze mit Sonnenbrille", "サングラスをかけた猫", "sunglasses on a dog"):
        plan = _words_plan(description)
        assert find_emoji(plan.base)[1] in ("cat", "dog"), description  # a thing worn is no base
        assert [(find_emoji(e.thing)[0], e.place) for e in plan.extras] == [("🕶️", "eyes")], description


@pytest.mark.quality
def test_a_german_description_makes_its_emoji(small):
    result = create_emoji("eine Katze mit Sonnenbrille", model=SMALL, png=False)
    assert not result.unmatched
    assert [g.char for g in result.glyphs] == ["🐱", "🕶️"]
    assert [g.place for g in result.glyphs] == ["base", "eyes"]
