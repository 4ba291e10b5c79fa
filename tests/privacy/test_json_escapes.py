"""Personal data written with JSON or code escapes, as Python's ``json.dumps`` writes by default:
a model reads "J\\u00fcrgen" as "Jürgen", and before 2026-12-04 it was sent as written."""

from __future__ import annotations

import json

import pytest

RECORD = {"name": "Jürgen Müller", "city": "München", "email": "jürgen@example.de",
          "customer": "Zoë Kowalczyk", "note": "Regards,\nZbigniew Wojcik"}


def test_an_ascii_json_dump_leaves_without_its_values(guard):
    text = "Summarize this record: " + json.dumps(RECORD)  # ensure_ascii: "J\\u00fcrgen M\\u00fcller"
    session = guard.session()
    payload = guard.prepare(text, "third_party", session=session).require_payload()
    for written in (json.dumps(v)[1:-1] for v in RECORD.values()):
        assert written not in payload
    for word in ("rgen", "nchen", "Zo\\u00eb", "Zbigniew", "Wojcik"):
        assert word not in payload
    assert session.restore(payload) == text


@pytest.mark.parametrize(("text", "entity", "value"), [
    ('{"text": "my email is maria\\u0040example.org"}', "EMAIL_ADDRESS", "maria\\u0040example.org"),
    ('{"msg": "Call Ma\\u0301ria Kowalczyk at 555-0134"}', "PERSON", "Ma\\u0301ria Kowalczyk"),
    ('{"body": "Hi,\\nZbigniew Wojcik here"}', "PERSON", "Zbigniew Wojcik"),
    ('{"emoji": "\\ud83d\\ude00 Zbigniew Wojcik"}', "PERSON", "Zbigniew Wojcik"),
])
def test_a_value_written_with_escapes_is_found_as_written(guard, text, entity, value):
    assert value in [s.text for s in guard.detect(text) if s.entity_type == entity], guard.detect(text)


@pytest.mark.parametrize("text", ['{"x": "\\ud800 lone"}', "C:\\\\new\\\\table", "a \\u0000 b", "\\\\u00fc"])
def test_odd_escapes_neither_fail_nor_move_offsets(guard, text):
    for s in guard.detect(text):
        assert text[s.start:s.end] == s.text


@pytest.mark.parametrize(("text", "value"), [
    ("see /people/Zbigniew%20Wojcik now", "Zbigniew%20Wojcik"),
    ("Download https://example.com/uploads/Maria%20Gonzalez%20CV.pdf", "Maria%20Gonzalez"),
])
def test_a_percent_encoded_name_is_found_whole(guard, text, value):
    """Only "Zbigniew" or "Maria" was found before: "20Wojcik" is no word."""
    assert value in [s.text for s in guard.detect(text) if s.entity_type == "PERSON"], guard.detect(text)


def test_percent_signs_that_encode_nothing_stay_as_they_are(guard):
    assert guard.detect("a 50% raise, 100%AB and %E2%80%8B here") == []
