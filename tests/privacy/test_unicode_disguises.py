"""Text a model reads as plain ASCII but a recognizer did not: mathematical bold letters and digits,
the digits of other scripts, circled digits, small-form "﹫", and letters struck through or buried
under stacked combining marks ("Zalgo"). Each was sent as written before 2026-12-04."""

from __future__ import annotations

import unicodedata

import pytest


def _bold(text: str) -> str:
    def one(c: str) -> str:
        if c.isdigit():
            return chr(0x1D7CE + int(c))
        if c.isalpha():
            return unicodedata.lookup(f"MATHEMATICAL BOLD {'CAPITAL' if c.isupper() else 'SMALL'} {c.upper()}")
        return c
    return "".join(map(one, text))


def _struck(text: str, mark: str = "\u0336") -> str:
    return "".join(c + mark if c != " " else c for c in text)


@pytest.mark.parametrize(("entity", "value"), [
    ("EMAIL_ADDRESS", _bold("john.smith@gmail.com")),
    ("CREDIT_CARD", _bold("4111 1111 1111 1111")),
    ("CREDIT_CARD", "٤١١١ ١١١١ ١١١١ ١١١١"),  # Arabic-Indic digits
    ("CREDIT_CARD", "४१११ ११११ ११११ ११११"),  # Devanagari digits
    ("CREDIT_CARD", _struck("4111 1111 1111 1111")),
    ("PHONE_NUMBER", "①②③-④⑤⑥-⑦⑧⑨⓪"),
    ("EMAIL_ADDRESS", "john\ufe6bgmail\ufe52com"),  # small commercial at, small full stop
    ("US_SSN", _bold("078-05-1120")),
])
def test_a_value_in_characters_that_read_as_ascii_is_found_as_written(guard, entity, value):
    text = f"Contact details: {value} (card, phone, email, SSN)"
    found = [s for s in guard.detect(text) if s.entity_type == entity]
    assert [s.text for s in found] == [value], guard.detect(text)


def test_a_key_in_mathematical_bold_keeps_the_request_on_the_device(guard):
    out = guard.prepare("api key " + _bold("sk-proj-abcdefghijklmnopqrstuvwxyz123456"), "third_party",
                        session=guard.session())
    assert out.payload is None and out.stay_reasons == ["API_KEY"]


@pytest.mark.parametrize("name", [_bold("John Smith"), _struck("John Smith"),
                                  "J\u0334\u0321o\u0335h\u0337n\u0338 S\u0334m\u0337i\u0336t\u0338h\u0335"])
def test_a_name_in_bold_struck_through_or_zalgo_leaves_as_a_placeholder(guard, name):
    text = f"Please write to {name} about the invoice."
    session = guard.session()
    payload = guard.prepare(text, "third_party", session=session).require_payload()
    assert name not in payload and "<PERSON_1>" in payload
    assert session.restore(payload) == text


def test_a_decomposed_accent_still_composes_and_is_not_dropped(guard):
    """Only marks that compose with nothing are read past; "Jürgen" typed decomposed stays "Jürgen"."""
    text = "Mr. Ju\u0308rgen Kowalczyk called."
    [span] = [s for s in guard.detect(text) if s.entity_type == "PERSON"]
    assert span.text == "Ju\u0308rgen Kowalczyk"
