"""Recall-first detection for the off-device tiers, on the real analyzer (no mocks)."""

from __future__ import annotations

import pytest

from tether.privacy import PrivacyGuard, parse_config


def _payload(guard: PrivacyGuard, text: str, tier: str = "third_party") -> str:
    return guard.prepare(text, tier, session=guard.session()).require_payload()  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "value"), [
    ("Follow up with Mimount Bijster in a couple of months.", "Mimount Bijster"),  # in no name list
    ("Follow up with Đurđa Jovanović in a couple of months.", "Jovanović"),
    ("card number 4111 1111 1111 1111 is lost. I am in HIPPERHOLME for a business trip", "HIPPERHOLME"),
    ("Motoko is from Osaka.", "Motoko"),  # opens the sentence, then "is"
    ("Oluwaseun will bring the contract tomorrow.", "Oluwaseun"),  # then a modal verb
    ("Xiomara and Thaddeus are moving in May.", "Xiomara"),  # then "and"
    ("Oluwaseun joined the call late.", "Oluwaseun"),  # then a past-tense verb
    ("Chise is very reliable.", "Chise"),  # ends like "-ise" English words, on no English stem
    ("Ilulissat bridge is falling down.", "Ilulissat"),  # then a place noun
    ("Csanád had given Csanád his address.", "Csanád"),  # a letter outside ASCII
    ("Hilbrand, can I please speak to your boss?", "Hilbrand"),
    ("Mineko: What a wife.\nSara: Remember me?", "Mineko"),
    ("It's like that since 7/8/1999", "7/8/1999"),  # a birth date without a cue
    ("The parcel went to Fitjabraut 87, Keflavík", "Fitjabraut 87"),
    ("please ask anna nowak about it", "anna nowak"),  # lower case
    ("my name is maria gonzalez", "gonzalez"),
    ("My SSN is 123-45-6789.", "123-45-6789"),  # Presidio rejects it as never issued
    ("ssn 987-65-4320 on the form", "987-65-4320"),
    ('{"ssn":"219099999"}', "219099999"),  # glued to its cue
    ("iban: gb82 west 1234 5698 7654 32", "gb82 west 1234 5698 7654 32"),  # lower case, mod-97 valid
])
def test_off_device_payload_drops_what_the_precise_rules_miss(guard, text, value):
    for tier in ("private_cloud", "third_party"):
        payload = _payload(guard, text, tier)
        assert value not in payload, payload


def test_the_precise_detector_alone_misses_them(guard):
    # The same names and dates, without the recall-first candidates: the reason they exist.
    for text, value in [("Follow up with Mimount Bijster in a couple of months.", "Mimount Bijster"),
                        ("It's like that since 7/8/1999", "7/8/1999")]:
        assert not [s for s in guard.detect(text, tier="device") if value in s.text]
        assert any(value in s.text for s in guard.detect(text))


@pytest.mark.parametrize(("text", "values"), [
    ("Address: Herengracht 1, 1012 AB Amsterdam", ["Herengracht", "1012 AB"]),
    ("Address: Fitjabraut 87, Reykjavik", ["Fitjabraut"]),
    ("Jan de Vries\nHerengracht 1\n1012 AB Amsterdam", ["Vries", "Herengracht", "1012", "Amsterdam"]),
    ("Kari Nordmann\nStorgata 5\n0155 Oslo\nNorway", ["Nordmann", "Storgata", "0155", "Oslo"]),
    ("Max Mustermann\nMusterstraße 12\n10115 Berlin", ["Mustermann", "Musterstraße", "10115", "Berlin"]),
])
def test_a_street_and_number_that_open_a_line_are_a_street_and_the_block_below_goes_with_it(guard, text, values):
    """The sentence-start rule dropped "Herengracht 1" after "Address:" or on a line of its own
    (though "My address is Herengracht 1" was found), and with it the postcode and town lines."""
    payload = _payload(guard, text)
    assert "<STREET_ADDRESS_1>" in payload and not [v for v in values if v in payload], payload
    assert "Aadhaar" in _payload(guard, "Aadhaar 2345 6789 0123")  # a word and numbers: no street
    block = "Francesca Freeman\n\n35116 Rua Arapiraca 1943\n Teixeira de Freitas\n Brazil 35172"
    found = {s.text: s.entity_type for s in guard.detect(block, tier="third_party")}
    assert found.get("Brazil 35172") == "LOCATION", found  # a country's postcode line, not a street


@pytest.mark.parametrize("text", [
    "Summary: Please review the attached report before Monday.\nNote: I'm using Python 3.12 and GitHub Actions.",
    "Hi team, the Q3 budget review is on Tuesday. Can you send me the slides?",
    "Write a short poem about autumn leaves falling in the park.",
    "Can you summarize the attached meeting notes and list the action items for next week?",
    "Translate this paragraph into French for our React app.",
    "Personal Info:\nPhone:\nE-mail:\nWebsite:\nAddress:",
    "The build for version 3.11.12 failed at 06:44:03.566113 on a date in 2999-01-01.",
    "Remember the Energetic Volunteers Club meets on Friday.",  # frequent English, if not in the core list
    "Boarding started late. Hopefully, the flight lands on time.",  # English words on English stems
    "Rebooted the server. Overheated again, sadly.",
])
def test_ordinary_text_goes_out_unchanged(guard, text):
    assert _payload(guard, text) == text


@pytest.mark.parametrize(("text", "kept"), [
    ("Tell Bartholomew the invoice is overdue.", "Tell "),  # spaCy reads "Tell Bartholomew" as one person
    ("Ask Zephyrine Okafor to call me.", "Ask "),
])
def test_an_opening_verb_is_not_part_of_the_name(guard, text, kept):
    """The receiver still reads the request ("Tell <PERSON_1> …"), and the name itself is gone."""
    payload = _payload(guard, text)
    assert payload.startswith(kept + "<PERSON_1>"), payload
    assert "Bartholomew" not in payload and "Zephyrine" not in payload


def test_a_name_that_opens_with_a_verb_like_word_stays_whole(guard):
    for text, name in [("Bill Gates will attend.", "Bill Gates"), ("Mark Twain wrote it.", "Mark Twain")]:
        payload = _payload(guard, text)
        assert payload.startswith("<PERSON_1>") and name.split()[0] not in payload, payload


@pytest.mark.parametrize(("text", "value"), [
    ("We moved here from Budapest last year.", "Budapest"),  # a frequent word, but after a place cue
    ("When: 2026-01-01 Where: Amsterdam Country Club.", "Amsterdam"),
    ("I grew up in OSLO.", "OSLO"),  # capitals
    ("Trooz, Belgium 79188", "79188"),  # a country is never an everyday word: its postcode goes too
])
def test_frequent_words_still_count_where_places_are_written(guard, text, value):
    assert value not in _payload(guard, text)


def test_recall_first_can_be_turned_off():
    text = "It's like that since 7/8/1999. Follow up with Mimount Bijster in a couple of months."
    strict = PrivacyGuard(parse_config({"detection": {"recall_first": False}}))
    assert _payload(strict, text) == text
    assert _payload(PrivacyGuard(), text) == ("It's like that since <DATE_OF_BIRTH_1>. "
                                              "Follow up with <PERSON_1> in a couple of months.")


def test_allow_list_exempts_a_candidate():
    text = "Explain the Wireshark output."
    assert _payload(PrivacyGuard(), text) != text
    assert _payload(PrivacyGuard(parse_config({"detection": {"allow_list": ["Wireshark"]}})), text) == text


def test_scan_reports_the_candidates_and_the_device_tier_keeps_the_text(guard):
    text = "It's like that since 7/8/1999"
    report = guard.scan(text)
    assert [(s.entity_type, s.text, s.recognizer) for s in report.entities] == [
        ("DATE_OF_BIRTH", "7/8/1999", "recall_first")]
    assert report.tier("device").payload == text
    assert report.tier("third_party").payload == "It's like that since <DATE_OF_BIRTH_1>"


def test_a_name_in_decomposed_unicode_goes_whole(guard):
    """macOS copies "Jürgen" as J, u, U+0308, r…: the name must not break at its accents."""
    import unicodedata

    text = unicodedata.normalize("NFD", "Jürgen Müller or François Lefèvre will call.")
    payload = _payload(guard, text)
    assert payload == "<PERSON_1> or <PERSON_2> will call.", payload
    session = guard.session()
    out = guard.prepare(text, "third_party", session=session)
    assert session.restore(out.payload) == text  # the original characters come back as written


def test_calendar_labels_and_dates_are_not_taken_for_names_or_places(guard):
    """Excerpts of the user's calendar and notes as ``tether ask`` sends them: the small model read
    "Start:" as a person and "- June 12" as a place, so the private cloud saw "<PERSON_4>: Wednesday
    …" and "<LOCATION_3>: Snorkeling". Labels and dates stay; the names and places still go."""
    event = ("[1] (calendar) Board review\nStart: Wednesday 15 May 2024 12:30\nEnd: Wednesday 15 May 2024 13:30\n"
             "Location: Hanauma Bay\nAttendee: emma.johnson@bluesparrowtech.com\nDescription: Catch up.")
    payload = _payload(guard, event, "private_cloud")
    for label in ("Start:", "End:", "Location:", "Attendee:", "Description:"):
        assert f"\n{label}" in payload, payload
    assert "Hanauma" not in payload and "emma.johnson" not in payload
    plans = "Activities Planned:\n  - June 11: Beach day at Waikiki Beach\n  - June 12: Snorkeling at Hanauma Bay"
    payload = _payload(guard, plans, "private_cloud")
    assert "- June 11: Beach day" in payload and "- June 12: Snorkeling" in payload, payload
    assert "Waikiki" not in payload and "Hanauma" not in payload
    # a speaker's name that opens a line stays a name
    for chat, name in [("Emma: see you at noon", "Emma"), ("Mineko: What a wife.", "Mineko")]:
        assert name not in _payload(guard, chat, "private_cloud")


def test_a_building_in_a_places_name_is_no_person(guard):
    """"Location: Main Conference <PERSON_1>" cost the private cloud the board meeting's place: a
    name list holds "Hall". After an English word that is no name it is part of the place; after a
    title or a first name it is still a surname."""
    payload = _payload(guard, "Board Meeting\nLocation: Main Conference Hall\nStart: 09:00", "private_cloud")
    assert "Location: Main Conference Hall" in payload, payload
    assert "the Community House on Friday" in _payload(guard, "Dinner at the Community House on Friday.")
    for text, name in [("Captain Hall called about the lease.", "Hall"), ("I met Jerry Hall yesterday.", "Hall"),
                       ("Dear Park, thanks for the notes.", "Park")]:
        assert name not in _payload(guard, text, "private_cloud"), text


def test_an_activity_before_with_is_no_person(guard):
    """"Lunch with Sarah" made "Lunch" a person, and every "Lunch" of the excerpts with it."""
    text = "[1] (calendar) Lunch with Sarah\nStart: 12:30\n\n[2] (mail) Re: Lunch Next Week?\nFrom: sarah.baker@gmail.com"
    payload = _payload(guard, text, "private_cloud")
    assert "Lunch with" in payload and "Re: Lunch Next Week?" in payload, payload
    assert "Sarah" not in payload and "sarah.baker" not in payload
    assert "Lunch" not in _payload(guard, "Met Julia Lunch with the team.", "private_cloud")  # a surname stays one
