"""Writing tools at their limits, on the real 135M model: long inputs and unusable answers."""

from __future__ import annotations

import re

import pytest

from tether.errors import InputError
from tether.features import writing
from tether.models.engine import load

TINY = "smollm2-135m"
ARTICLE = " ".join(f"On day {i} the team reviewed report {i} and agreed to ship version {i} next week."
                   for i in range(1, 100))


def test_a_list_or_table_of_a_long_text_fits_the_window_instead_of_failing():
    """A list condenses its text: it must not reserve 1.4x a 2,250-token input and overflow 4,096."""
    assert load(TINY).count_tokens(ARTICLE) > 2000
    result = writing.summarize(ARTICLE, "list", model=TINY)
    assert result.items and result.form == "list"


def test_key_points_say_when_they_fall_back_to_the_texts_own_sentences():
    result = writing.summarize(ARTICLE, "key_points", model=TINY)
    sentences = re.split(r"(?<=[.!?])\s+", ARTICLE)
    if result.fallback:
        assert result.items == sentences[:writing.MAX_FALLBACK_ITEMS]
    else:  # the model's own items: no number the text lacks
        assert all(set(re.findall(r"\d+", item)) <= set(re.findall(r"\d+", ARTICLE)) for item in result.items)
    assert len(result.items) < len(sentences)


def test_a_long_document_is_proofread_a_few_paragraphs_at_a_time(monkeypatch):
    """2,000 words overflow one call (1.4× answer budget); by pieces they do not, and every edit
    still points at the right span of the whole text."""
    paragraphs = [f"Paragraph {i}. " + " ".join(f"On day {j} the team reviewd report {j} and shiped it." for j in range(12))
                  for i in range(14)]
    doc = "\n\n".join(paragraphs)
    engine = load(TINY)
    assert engine.count_tokens(doc) > 2300
    pieces = writing._pieces(doc, lambda t: engine.count_tokens(t) <= writing.PROOFREAD_PIECE_TOKENS)
    assert "".join(pieces) == doc and len(pieces) >= 4  # at the real size: whole paragraphs, joined back exactly
    assert all(engine.count_tokens(p) <= writing.PROOFREAD_PIECE_TOKENS for p in pieces)
    assert writing.PROOFREAD_PIECE_TOKENS * 2.4 + 300 < engine.context_window  # a piece and its answer fit
    # The same path end to end, on pieces made small (generating 2,300 tokens took 4 minutes in CI).
    monkeypatch.setattr(writing, "PROOFREAD_PIECE_TOKENS", 40)
    short = "\n\n".join(p[:p.index("1 the")] + "1 the team reviewd report 1." for p in paragraphs[:3])
    steps = []
    result = writing.proofread(short, model=TINY, progress=lambda done, total: steps.append((done, total)))
    assert steps == [(1, 3), (2, 3), (3, 3)]
    assert result.original == short
    assert writing.apply_edits(short, result.edits) == result.corrected
    assert all(short[e.start:e.end] == e.original for e in result.edits)
    first = short.split("\n\n")[0]
    assert any(e.start > len(first) for e in result.edits)  # the later pieces' edits are placed in the whole text


def test_a_text_too_long_for_one_call_is_summarized_from_its_parts():
    """4,500 tokens overflow a 4,096 window; the parts' summaries are summarized instead."""
    long_text = ARTICLE + "\n\n" + ARTICLE.replace("team", "board")
    assert load(TINY).count_tokens(long_text) > load(TINY).context_window
    steps = []
    result = writing.summarize(long_text, "summary", model=TINY, progress=lambda done, total: steps.append((done, total)))
    assert result.parts == 2 and result.text
    assert steps == [(1, 3), (2, 3), (3, 3)]  # each part, then the summary of their summaries
    assert set(re.findall(r"\d+", result.text)) <= set(re.findall(r"\d+", long_text))


def test_a_long_text_is_rewritten_a_few_paragraphs_at_a_time(monkeypatch):
    monkeypatch.setattr(writing, "REWRITE_PIECE_TOKENS", 30)  # one paragraph is 19
    paragraphs = [f"Hey, the order {n} ships on day {n + 3}, tell the team please." for n in (11, 22, 33)]
    doc = "\n\n".join(paragraphs)
    steps = []
    result = writing.rewrite(doc, "professional", model=TINY, progress=lambda done, total: steps.append(done))
    assert result.parts == 3 and steps == [1, 2, 3]
    for n in ("11", "14", "22", "25", "33", "36"):  # every number is kept, or listed as dropped
        assert n in result.text or n in result.missing_numbers
    assert result.text.count("\n\n") >= 2  # the paragraphs stay paragraphs


def test_a_rewrite_cut_at_its_budget_ends_at_a_whole_line_and_lists_the_numbers_it_lost(monkeypatch):
    """A rewrite that runs past its budget on both tries (forced here with a 40-token budget, since
    which inputs make smollm2-135m loop changed with the engine's block-wise prompt reading) ends at
    its last whole line, and the numbers it lists as made up or lost are those of the text shown."""
    from tether.features._common import numbers_in

    monkeypatch.setattr(writing, "REWRITE_FACTOR", 0.0)
    monkeypatch.setattr(writing, "REWRITE_FLOOR", 40)
    text = "Maria Gonzalez booked table 14 for 6 people at 19:30 on 5 December; the deposit is 60 euros."
    result = writing.rewrite(text, "professional", model=TINY)
    assert result.cut and result.text and not result.text.endswith(":")
    assert "60" in result.missing_numbers
    assert set(result.added_numbers) == numbers_in(result.text, words=False) - numbers_in(text)
    assert set(result.missing_numbers) == numbers_in(text, words=False) - numbers_in(result.text)


def test_texts_past_the_parts_limit_are_refused_with_the_reason(monkeypatch):
    monkeypatch.setattr(writing, "SUMMARY_PIECE_TOKENS", 100)
    monkeypatch.setattr(writing, "MAX_SUMMARY_PIECES", 3)
    with pytest.raises(InputError, match="too long to summarize"):
        writing.summarize(ARTICLE, "summary", model=TINY)
    monkeypatch.setattr(writing, "REWRITE_PIECE_TOKENS", 100)
    monkeypatch.setattr(writing, "MAX_REWRITE_PIECES", 3)
    with pytest.raises(InputError, match="too long to rewrite"):
        writing.rewrite(ARTICLE, "concise", model=TINY)
