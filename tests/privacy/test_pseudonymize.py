"""Placeholders restore exactly, in one piece or streamed; look-alikes never turn into real data."""

from __future__ import annotations

import pickle
import random

import pytest

from tether.privacy import PseudonymSession

TEXT = ("Hi, I'm Maria Gonzalez (maria.gonzalez@example.org). Maria Gonzalez lives at 221B Baker Street "
        "and her card is 4111 1111 1111 1111. Ask Maria Gonzalez, not <PERSON_1>.")


def _stream(session: PseudonymSession, text: str, cuts: list[int]) -> str:
    r = session.restorer()
    pieces, last = [], 0
    for c in [*cuts, len(text)]:
        pieces.append(r.feed(text[last:c]))
        last = c
    return "".join(pieces) + r.flush()


@pytest.fixture(params=["placeholder", "fake"])
def prepared(request, guard):
    session = PseudonymSession(request.param)
    spans = guard.detect(TEXT)
    return session, session.pseudonymize(TEXT, spans), spans


def test_round_trip_is_exact(prepared):
    session, payload, spans = prepared
    assert payload != TEXT
    for s in spans:
        assert s.text not in payload
    assert session.restore(payload) == TEXT


def test_same_value_same_placeholder_within_a_session(guard):
    session = PseudonymSession()
    first = session.pseudonymize(TEXT, guard.detect(TEXT))
    assert first.count("<PERSON_2>") == 3  # <PERSON_1> is taken by the look-alike in the text
    again = session.pseudonymize("Maria Gonzalez again", guard.detect("Maria Gonzalez again"))
    assert again == "<PERSON_2> again"
    other = PseudonymSession()
    assert other.restore(first) == first  # another session restores nothing


def test_streaming_every_split_point(prepared):
    session, payload, _ = prepared
    for cut in range(len(payload) + 1):
        assert _stream(session, payload, [cut]) == TEXT


def test_streaming_random_chunks(prepared):
    session, payload, _ = prepared
    rng = random.Random(7)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(payload)), rng.randint(1, 30)))
        assert _stream(session, payload, cuts) == TEXT


def test_streaming_one_character_at_a_time_holds_only_a_placeholder_prefix(guard):
    session = PseudonymSession()
    payload = session.pseudonymize("Write to Maria Gonzalez.", guard.detect("Write to Maria Gonzalez."))
    r = session.restorer()
    outs = [r.feed(ch) for ch in payload]
    # Nothing is shown while "<PERSON_1" is incomplete; then the real name arrives at once.
    assert "".join(outs) + r.flush() == "Write to Maria Gonzalez."
    assert "Maria Gonzalez" in outs
    assert all("<" not in o for o in outs)


def test_model_output_with_unknown_or_partial_placeholders_is_left_alone(guard):
    session = PseudonymSession()
    session.pseudonymize("Maria Gonzalez", guard.detect("Maria Gonzalez"))
    reply = "<PERSON_1> met <PERSON_9> and <PERSON_ and <EMAIL_ADDRESS_1>"
    assert session.restore(reply) == "Maria Gonzalez met <PERSON_9> and <PERSON_ and <EMAIL_ADDRESS_1>"
    assert _stream(session, reply, [3, 12, 30]) == session.restore(reply)


def test_a_placeholder_the_model_rewrote_is_restored_too(guard):
    """Cloud models drop the brackets or humanize the name (seen: "Person 1" for <PERSON_1>)."""
    session = PseudonymSession()
    text = "Write to Maria Gonzalez at maria.gonzalez@example.org."
    session.pseudonymize(text, guard.detect(text))
    reply = "Person 1 (PERSON_1, [PERSON_1]) reads Email Address 1. Person 10, PERSON_12 and XPERSON_1 stay."
    restored = ("Maria Gonzalez (Maria Gonzalez, Maria Gonzalez) reads maria.gonzalez@example.org. "
                "Person 10, PERSON_12 and XPERSON_1 stay.")
    assert session.restore(reply) == restored
    assert _stream(session, reply, list(range(1, len(reply)))) == restored  # one character at a time
    assert len(session) == 2  # two values mapped; the spellings are no new mappings
    # A later text that spells one of them is escaped, never restored into Maria's name.
    later = "Ask Person 1 and PERSON_1 about it."
    payload = session.pseudonymize(later, guard.detect(later))
    assert "Person 1" not in payload and "PERSON_1" not in payload
    assert session.restore(payload) == later


def test_a_text_that_says_person_1_gets_another_number():
    session = PseudonymSession()
    text = "Person 1 is the buyer; Jane Doe is the seller."
    assert session.surface("PERSON", "Jane Doe", avoid=text) == "<PERSON_2>"
    assert session.restore("Person 1 signs, Person 2 pays.") == "Person 1 signs, Jane Doe pays."


class TestLookAlikes:
    def test_placeholder_in_the_input_is_escaped_not_restored_into_data(self, guard):
        session = PseudonymSession()
        text = "Forward <PERSON_1> to Maria Gonzalez."
        payload = session.pseudonymize(text, guard.detect(text))
        assert "Maria Gonzalez" not in payload
        assert "<LITERAL_1>" in payload and "<PERSON_1>" not in payload
        # A reply quoting the look-alike gives back the literal string, never Maria's name.
        assert session.restore("<LITERAL_1>") == "<PERSON_1>"
        assert session.restore(payload) == text

    def test_later_input_repeating_an_issued_placeholder_is_escaped(self, guard):
        session = PseudonymSession()
        session.pseudonymize("Maria Gonzalez", guard.detect("Maria Gonzalez"))
        text = "Someone pasted <PERSON_1> here."
        payload = session.pseudonymize(text, guard.detect(text))
        assert "<PERSON_1>" not in payload
        assert session.restore(payload) == text

    def test_fake_value_already_in_the_text_is_not_issued(self, guard):
        session = PseudonymSession("fake")
        text = "Maria Gonzalez and Bob Jones met."
        payload = session.pseudonymize(text, guard.detect(text))
        fakes = [f for f in session._reverse]
        assert all(f not in text for f in fakes)
        assert session.restore(payload) == text


def test_mapping_stays_in_memory():
    session = PseudonymSession()
    with pytest.raises(TypeError, match="stays in device memory"):
        pickle.dumps(session)
    assert "Maria" not in repr(session)


def test_clear_forgets_everything(guard):
    session = PseudonymSession()
    payload = session.pseudonymize("Maria Gonzalez", guard.detect("Maria Gonzalez"))
    assert session.restore(payload) == "Maria Gonzalez"
    session.clear()
    assert len(session) == 0
    assert session.restore(payload) == payload
    # a new mapping of the same size as the old one is restored (no stale lookup from before)
    again = session.pseudonymize("mail bob@example.org", guard.detect("mail bob@example.org"))
    assert again == "mail <EMAIL_ADDRESS_1>" and session.restore(again) == "mail bob@example.org"
    assert _stream(session, again, [9, 14]) == "mail bob@example.org"
    assert session.restore("<PERSON_1>") == "<PERSON_1>"


def test_a_look_alike_inside_text_the_policy_lets_through_is_still_escaped(guard):
    from tether.privacy.detect import Span

    session = PseudonymSession()
    session.pseudonymize("I am John Smith", guard.detect("I am John Smith"))
    text = "Status of TICKET-<PERSON_1>"
    ticket = Span(entity_type="TICKET", start=10, end=len(text), score=1.0, text=text[10:], recognizer="custom")
    payload = session.pseudonymize(text, [ticket], entity_types={"PERSON"})  # TICKET is allowed out as it is
    assert "<PERSON_1>" not in payload
    assert session.restore(payload.replace("Status of", "Closed:")) == "Closed: TICKET-<PERSON_1>"


def test_only_the_requested_types_are_replaced(guard):
    session = PseudonymSession()
    text = "Maria Gonzalez, maria.gonzalez@example.org"
    payload = session.pseudonymize(text, guard.detect(text), entity_types={"EMAIL_ADDRESS"})
    assert payload == "Maria Gonzalez, <EMAIL_ADDRESS_1>"


def test_a_quoted_name_restores_without_a_stray_quote():
    from tether.privacy import PrivacyGuard

    guard = PrivacyGuard()
    session = guard.session()
    out = guard.prepare("names = ['Leilani Kahananui', 'Thandiwe Nkosi']", "third_party", session=session)
    assert out.payload == "names = ['<PERSON_1>', '<PERSON_2>']"
    assert session.restore("'<PERSON_1>'") == "'Leilani Kahananui'"


def test_a_possessive_after_a_full_name_is_not_part_of_it():
    """The small model's span for "Maria Gonzalez's" took the "'s": one person got two placeholders,
    and a reply about the second came back as "Maria Gonzalez's"."""
    from tether.privacy import PrivacyGuard

    guard = PrivacyGuard()
    session = guard.session()
    text = "I met Maria Gonzalez yesterday. Maria Gonzalez's car was parked outside. Is Paris's weather nice?"
    out = guard.prepare(text, "third_party", session=session).payload
    assert out == "I met <PERSON_1> yesterday. <PERSON_1>'s car was parked outside. Is <LOCATION_1>'s weather nice?"
    assert session.restore("Ask <PERSON_1> to move it.") == "Ask Maria Gonzalez to move it."
    assert session.restore(out) == text


def test_a_placeholder_never_takes_a_name_the_text_already_uses(guard):
    """A transcript that already says PERSON_1 (in any case or brackets): if our Jane Doe became
    <PERSON_1>, a reply about the transcript's PERSON_1 would come back as Jane Doe."""
    text = "Transcript: PERSON_1: I want a refund. [person_2] is angry. <PERSON\u200b_3> too. Agent: Jane Doe"
    session = guard.session()
    out = guard.prepare(text, "private_cloud", session=session).payload
    assert "Jane Doe" not in out
    jane = out.rsplit("Agent: ", 1)[1]
    assert jane.startswith("<PERSON_") and jane not in ("<PERSON_1>", "<PERSON_2>", "<PERSON_3>")
    assert not any(f"<PERSON_{n}>" in out for n in (1, 2, 3))
    assert session.restore("<PERSON_1> asked for a refund") == "<PERSON_1> asked for a refund"
    assert session.restore(f"{jane} answered") == "Jane Doe answered"


URL_REPLY = ("Done, <PERSON_1>! ![s](http://127.0.0.1:9/p.gif?d=<EMAIL_ADDRESS_1>) [me](/u?<PERSON_1>) "
             "https://x.example/?to=<EMAIL_ADDRESS_1>&n=1 <img src=\"//x.example/a b <PERSON_1>\"> "
             "[t](<http://x.example/a <EMAIL_ADDRESS_1>>) Write to <EMAIL_ADDRESS_1>.")


@pytest.fixture()
def mapped():
    session = PseudonymSession()
    session.surface("PERSON", "Maria Gonzalez")
    session.surface("EMAIL_ADDRESS", "maria@example.org")
    return session


def test_placeholders_inside_urls_and_link_targets_are_not_restored(mapped):
    """A provider chooses the URLs of its answer, and a markdown client fetches an image unasked."""
    assert mapped.restore(URL_REPLY) == (
        "Done, Maria Gonzalez! ![s](http://127.0.0.1:9/p.gif?d=<EMAIL_ADDRESS_1>) [me](/u?<PERSON_1>) "
        "https://x.example/?to=<EMAIL_ADDRESS_1>&n=1 <img src=\"//x.example/a b <PERSON_1>\"> "
        "[t](<http://x.example/a <EMAIL_ADDRESS_1>>) Write to maria@example.org.")
    assert mapped.restore("// a comment for <PERSON_1>") == "// a comment for Maria Gonzalez"


def test_streaming_leaves_urls_alone_at_every_split_point(mapped):
    want = mapped.restore(URL_REPLY)
    for cut in range(len(URL_REPLY) + 1):
        assert _stream(mapped, URL_REPLY, [cut]) == want
    assert _stream(mapped, URL_REPLY, list(range(1, len(URL_REPLY)))) == want


def test_a_long_url_stays_a_url_however_the_stream_is_cut(mapped):
    reply = "see http://x.example/" + "a" * 400 + "<EMAIL_ADDRESS_1> <PERSON_1>"
    assert _stream(mapped, reply, list(range(1, len(reply)))) == reply.replace("<PERSON_1>", "Maria Gonzalez")


@pytest.mark.parametrize("opener", ["<img src=//", "see //", '{"u": "//'])
def test_a_long_protocol_relative_url_stays_a_url_however_the_stream_is_cut(mapped, opener):
    """The stream kept a long URL's opener and its last 64 characters: for a bare "//" the host
    the opener needs ("//host.") was cut away, and the rest of the URL restored the address."""
    reply = f"Done. {opener}evil.example.net/t/" + "x" * 130 + ".gif?u=<EMAIL_ADDRESS_1>> <PERSON_1>"
    want = mapped.restore(reply)
    assert "maria@example.org" not in want and want.endswith("Maria Gonzalez")
    for size in (1, 4, 7):
        cuts = list(range(size, len(reply), size))
        assert _stream(mapped, reply, cuts) == want


def test_a_streamed_json_answer_restores_as_its_decoded_values_would(mapped):
    """JSON text ends a URL at the string's closing quote: a compact object restores like a spaced one."""
    import json

    from tether.privacy.pseudonymize import json_string_escape

    obj = {"url": "http://x.example/?d=<EMAIL_ADDRESS_1>", "name": "<PERSON_1>",
           "note": "![x](http://x.example/" + "a" * 300 + "<PERSON_1>)\nbye <PERSON_1>"}
    want = {"url": obj["url"], "name": "Maria Gonzalez", "note": obj["note"].replace("bye <PERSON_1>", "bye Maria Gonzalez")}
    text = json.dumps(obj, separators=(",", ":"))
    for cuts in ([], list(range(1, len(text))), [7, 40, 41, 200]):
        r = mapped.restorer(json_string_escape)
        pieces, last = [], 0
        for c in [*cuts, len(text)]:
            pieces.append(r.feed(text[last:c]))
            last = c
        assert json.loads("".join(pieces) + r.flush()) == want


def _people(text: str, *names: str):
    from tether.privacy.detect import Span

    spans, pos = [], 0
    for name in names:
        start = text.index(name, pos)
        spans.append(Span(entity_type="PERSON", start=start, end=start + len(name), score=1.0, text=name,
                          recognizer="test"))
        pos = start + len(name)
    return spans


class TestNameParts:
    """A first or last name of a full name in the session points at that person's placeholder:
    ``<PERSON_2>`` for "Emma" after "Emma Johnson" made one person two for the model."""

    def test_a_first_or_last_name_points_at_the_full_name_before_or_after_it(self):
        session = PseudonymSession()
        text = "Hi Emma, from David.\nEmma Johnson wrote to David Smith; Mr. Smith replied."
        payload = session.pseudonymize(text, _people(text, "Emma", "David", "Emma Johnson", "David Smith", "Smith"))
        assert payload == ("Hi <GIVEN_NAME_OF_PERSON_1>, from <GIVEN_NAME_OF_PERSON_2>.\n<PERSON_1> wrote to "
                           "<PERSON_2>; Mr. <FAMILY_NAME_OF_PERSON_2> replied.")
        assert session.restore(payload) == text
        # as a model may spell them back
        assert session.restore("GIVEN_NAME_OF_PERSON_1 thanks [GIVEN_NAME_OF_PERSON_2] and "
                               "Family Name Of Person 2.") == "Emma thanks David and Smith."

    def test_later_turns_link_to_a_name_seen_before(self):
        session = PseudonymSession()
        session.pseudonymize("Emma Johnson", _people("Emma Johnson", "Emma Johnson"))
        assert session.pseudonymize("Ask Emma.", _people("Ask Emma.", "Emma")) == "Ask <GIVEN_NAME_OF_PERSON_1>."

    def test_a_first_name_two_people_share_gets_its_own_placeholder(self):
        session = PseudonymSession()
        text = "Emma Johnson and Emma Watson met; Emma paid, Watson did not."
        payload = session.pseudonymize(text, _people(text, "Emma Johnson", "Emma Watson", "Emma", "Watson"))
        assert payload == "<PERSON_1> and <PERSON_2> met; <PERSON_3> paid, <FAMILY_NAME_OF_PERSON_2> did not."
        assert session.restore(payload) == text

    def test_a_text_that_spells_the_part_placeholder_keeps_it_escaped(self):
        session = PseudonymSession()
        text = "Emma Johnson wrote <GIVEN_NAME_OF_PERSON_1> in the form; Emma laughed."
        payload = session.pseudonymize(text, _people(text, "Emma Johnson", "Emma"))
        assert "<LITERAL_1>" in payload and payload.count("GIVEN_NAME_OF_PERSON_1") == 0
        assert "Emma" not in payload and session.restore(payload) == text
        assert session.restore("<LITERAL_1>") == "<GIVEN_NAME_OF_PERSON_1>"

    def test_with_fakes_a_part_is_that_part_of_the_persons_fake(self):
        from faker import Faker

        session = PseudonymSession("fake")
        # Seeded: a random fake surname could be "Johnson", which the session refuses as a part
        # (it is inside a real value), so the link would rightly not be made.
        session._faker = Faker("en_US")
        session._faker.seed_instance(7)
        text = "Hi Emma, from David.\nEmma Johnson wrote to David Smith; Mr. Smith replied."
        payload = session.pseudonymize(text, _people(text, "Emma", "David", "Emma Johnson", "David Smith", "Smith"))
        emma, david = session.surface("PERSON", "Emma Johnson"), session.surface("PERSON", "David Smith")
        assert payload == (f"Hi {emma.split()[0]}, from {david.split()[0]}.\n{emma} wrote to {david}; "
                           f"Mr. {david.split()[-1]} replied.")
        assert "Emma" not in payload and "Smith" not in payload and session.restore(payload) == text
        assert session.restore(f"{emma.split()[0]} thanks {david}.") == "Emma thanks David Smith."
