"""A model that lower-cases or capitalises a placeholder ("<person_1>", "Person_1", "PERSON 1")
still gets the original back; before 2026-12-04 the raw placeholder reached the user."""

from __future__ import annotations

from tether.privacy.pseudonymize import PseudonymSession

TEXT = "Write to Maria Gonzalez at maria.gonzalez@example.org."


def _mapped(guard) -> PseudonymSession:
    session = PseudonymSession()
    session.pseudonymize(TEXT, guard.detect(TEXT))
    return session


def _stream(session: PseudonymSession, text: str, cuts: list[int]) -> str:
    r = session.restorer()
    bounds = [0, *cuts, len(text)]
    return "".join(r.feed(text[a:b]) for a, b in zip(bounds, bounds[1:])) + r.flush()


def test_a_placeholder_in_another_case_is_restored(guard):
    session = _mapped(guard)
    reply = "dear <person_1>, write to <Email_Address_1>; PERSON 1 and person_1 and Person_1 agree."
    restored = ("dear Maria Gonzalez, write to maria.gonzalez@example.org; Maria Gonzalez and Maria Gonzalez "
                "and Maria Gonzalez agree.")
    assert session.restore(reply) == restored
    assert _stream(session, reply, list(range(1, len(reply)))) == restored  # one character at a time
    assert _stream(session, reply, [5, 9, 30, 31, 60]) == restored


def test_only_issued_placeholders_and_whole_words_in_any_case(guard):
    session = _mapped(guard)
    reply = "<person_2>, person 10, xperson_1 and <PERſON_1> stay."
    assert session.restore(reply) == reply
    assert _stream(session, reply, list(range(1, len(reply)))) == reply


def test_a_later_text_that_spells_an_issued_placeholder_in_lower_case_is_escaped(guard):
    session = _mapped(guard)
    later = "Ask <person_1> and person 1 about it."
    payload = session.pseudonymize(later, guard.detect(later))
    assert "person_1" not in payload.lower() and "person 1" not in payload.lower()
    assert session.restore(payload) == later
