"""Proofreading keeps the user's wording: rewording undone, corrections kept (real spaCy + ERRANT)."""

from __future__ import annotations

import pytest

from tether.features.wording import keep_wording, review

DRAFT = ("Hi team, i wanted to let you know that the meeting on thursday have been moved to 3pm. "
         "Please bring you're notes from last week.")


def test_a_reworded_phrase_is_undone_and_the_corrections_around_it_kept():
    model = ("Hi team, I wanted to inform you that the meeting on Thursday has been moved to 3 PM. "
             "Please bring your notes from last week.")
    assert keep_wording(DRAFT, model) == ("Hi team, I wanted to let you know that the meeting on Thursday has "
                                          "been moved to 3 PM. Please bring your notes from last week.")


def test_review_says_which_edits_were_not_applied_and_where():
    model = ("Hi team, I wanted to inform you that the meeting on Thursday has been moved to 3 PM. "
             "Please bring your notes from last week.")
    text, undone = review(DRAFT, model)
    assert text == keep_wording(DRAFT, model)
    # one phrase, as a reader sees it: not "let" → "inform" and "know" → ""
    assert [(u.original, u.replacement) for u in undone] == [("let you know", "inform you")]
    assert all(DRAFT[u.start:u.end] == u.original for u in undone)
    assert review(DRAFT, DRAFT) == (DRAFT, [])


@pytest.mark.parametrize("original, model", [
    ("I seen him yesterday.", "I saw him yesterday."),  # an irregular verb: another form, not another word
    ("There going to the libary tomorow.", "They're going to the library tomorrow."),
    ("I has a apple.", "I have an apple."),
    ("We bought bread for the the picnic.", "We bought bread for the picnic."),  # a doubled word
    ("That sounds grate!", "That sounds great!"),
    ("we meet on monday at 10am", "We meet on Monday at 10 am."),
    ("He dont like it, its to cold.", "He doesn't like it, it's too cold."),
    # other languages: an inflection is a near spelling of the old word (the 0.5B's own answers)
    ("und wir hat viel spass gehabt.", "und wir haben viel Spaß gehabt."),
    ("et j'ai acheter des pommes", "et j'ai acheté des pommes"),
])
def test_corrections_pass(original, model):
    assert keep_wording(original, model) == model


@pytest.mark.parametrize("original, model", [
    ("Send it when you get a chance.", "Send it when you get an opportunity."),
    ("I'm having some issues with my email client.", "I'm experiencing slow email client performance."),
    ("Let me know if you need any further details.", "If you need any further details."),
    ("I'll be there and I'll bring my apple pie.", "I'll be there and bring my apple pie."),
    ("I cant come tomorrow.", "I can come tomorrow."),  # a negation dropped flips the meaning
    ("The invoice was paid.", "The invoice was not paid."),
    ("Ayer yo fui a la tienda y compré manzanas.", "Ayer yo compré manzanas."),
])
def test_rewording_and_dropped_phrases_are_undone(original, model):
    assert keep_wording(original, model) == original


def test_a_dropped_sign_off_comes_back_and_paragraphs_stay_apart():
    original = "Hi Emma,\n\ngrate! Let's meet at 8 AM on Saturday. i'll bring some snacks.\n\nCheers,\nMark"
    model = "Hi Emma,\n\nGreat! Let's meet at 8 AM on Saturday. I'll bring some snacks. Cheers, Mark"
    assert keep_wording(original, model) == ("Hi Emma,\n\nGreat! Let's meet at 8 AM on Saturday. I'll bring some "
                                             "snacks.\n\nCheers,\nMark")
    assert keep_wording(original, "Hi Emma,\n\nGreat! Let's meet at 8 AM on Saturday.") == (
        "Hi Emma,\n\nGreat! Let's meet at 8 AM on Saturday. i'll bring some snacks.\n\nCheers,\nMark")


def test_windows_line_endings_and_unchanged_text_come_back_as_they_were():
    original = "Dear Ana,\r\n\r\nThe report is ready.\r\n\r\nBest,\r\nLi"
    assert keep_wording(original, original) == original
    assert keep_wording(original, "Dear Ana,\r\n\r\nThe report is ready now.\r\n\r\nBest,\r\nLi") == original
    assert keep_wording("thanks", "Thanks.") == "Thanks."


def test_a_long_text_keeps_its_corrections_in_every_paragraph():
    """ERRANT aligns one changed stretch at a time (its whole-text alignment is quadratic)."""
    model = ("Hi team, I wanted to inform you that the meeting on Thursday has been moved to 3 PM. "
             "Please bring your notes from last week.\n\n")
    want = ("Hi team, I wanted to let you know that the meeting on Thursday has been moved to 3 PM. "
            "Please bring your notes from last week.\n\n")
    assert keep_wording((DRAFT + "\n\n") * 12, model * 12) == want * 12


def test_the_result_is_made_of_the_two_texts_words_never_of_glued_ones():
    """Seeded junk pairs: every word of the result is a word of the user's text or of the
    model's; an undone line break next to a kept edit once glued "do" and "they" into "dothey"."""
    import random
    import re

    rng = random.Random(7)
    vocab = ("the a an to and of in I you we they dont cant its it's their there your you're meeting "
             "tomorrow, . ! ? \n \n\n 3pm Mr. e.g. 😀 naïve").split(" ")
    words = lambda text: set(re.findall(r"[^\W\d_]+", text))  # noqa: E731
    for _ in range(100):
        a = " ".join(rng.choice(vocab) for _ in range(rng.randint(1, 30)))
        b = " ".join(rng.choice(vocab) for _ in range(rng.randint(1, 30)))
        assert words(keep_wording(a, b)) <= words(a) | words(b), (a, b)


def test_undone_edits_read_as_phrases_but_distant_ones_stay_apart():
    text, undone = review("Send it when you get a chance.", "Send it when you get an opportunity.")
    assert [(u.original, u.replacement) for u in undone] == [("a chance", "an opportunity")]
    original = "I want to buy the big house today."
    text, undone = review(original, "I wish to buy the large house today.")
    assert text == original
    assert [(u.original, u.replacement) for u in undone] == [("want", "wish"), ("big", "large")]
    assert all(original[u.start:u.end] == u.original for u in undone)


@pytest.mark.parametrize("original, model, expected", [
    # the user's British spelling stays; the real fixes beside it are kept
    ("we need them to finalise the plan.", "We need them to finalize the plan.", "We need them to finalise the plan."),
    ("i travelled to the theatre", "I traveled to the theater", "I travelled to the theatre"),
    ("The colour of the centre is grey.", "The color of the center is gray.", "The colour of the centre is grey."),
    ("We will analyse teh catalogue.", "We will analyze the catalog.", "We will analyse the catalogue."),
    # and an American one too
    ("The color is realy nice.", "The colour is really nice.", "The color is really nice."),
])
def test_a_word_moved_between_british_and_american_spelling_is_undone(original, model, expected):
    text, undone = review(original, model)
    assert text == expected
    assert all(u.original.lower() != u.replacement.lower() for u in undone)


@pytest.mark.parametrize("original, model", [
    ("thanks four the help", "Thanks for the help"),  # "four" and "for" are two words, not two spellings
    ("I realy like it", "I really like it"),
    ("it makes no sence", "It makes no sense"),
])
def test_a_real_fix_that_looks_like_another_spelling_is_kept(original, model):
    assert keep_wording(original, model) == model


def test_a_doubled_space_taken_out_beside_an_undone_edit_never_glues_two_words():
    assert keep_wording("the  red chance", "The red opportunity") == "The red chance"
    assert keep_wording("the colour  red", "The color red") == "The colour red"
