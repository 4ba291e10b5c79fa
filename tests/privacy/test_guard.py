"""What leaves the device, per tier: the payload is the exact bytes a tier would receive."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from tether.errors import InputError, MustStayOnDeviceError
from tether.privacy import PrivacyGuard

# Every labelled type the generator writes that the default policy pseudonymizes off the
# device (its label → Tether's type).
from tether.privacy.evaluation import GOLD_TO_OURS as LABELS


def test_device_tier_sees_the_text_unchanged(guard):
    text = "Maria Gonzalez, password: hunter2"
    out = guard.prepare(text, "device", session=guard.session())
    assert out.payload == text and not out.leaves_device and not out.must_stay_on_device


@pytest.mark.parametrize("tier", ["private_cloud", "third_party"])
def test_secrets_keep_the_request_on_the_device(guard, tier):
    out = guard.prepare("Deploy with AKIAIOSFODNN7EXAMPLE for Maria Gonzalez.", tier, session=guard.session())
    assert out.payload is None and out.must_stay_on_device and not out.leaves_device
    assert out.stay_reasons == ["API_KEY"]
    with pytest.raises(MustStayOnDeviceError, match="API_KEY"):
        out.require_payload()


def test_scan_shows_every_tier_and_consent(guard):
    report = guard.scan("Email maria.gonzalez@example.org about the trip.")
    assert [t.tier for t in report.tiers] == ["device", "private_cloud", "third_party"]
    assert report.tier("private_cloud").payload == "Email <EMAIL_ADDRESS_1> about the trip."
    assert report.tier("third_party").payload == "Email <EMAIL_ADDRESS_1> about the trip."
    assert report.tier("third_party").consent_required and not report.tier("private_cloud").consent_required
    assert [(e.entity_type, e.count, e.action) for e in report.tier("third_party").entities] == [
        ("EMAIL_ADDRESS", 1, "pseudonymize")]


def test_unknown_tier(guard):
    with pytest.raises(InputError, match="unknown tier"):
        guard.prepare("hi", "moon", session=guard.session())  # type: ignore[arg-type]


def test_fake_style_payload_reads_naturally_and_restores():
    from tether.privacy import parse_config

    guard = PrivacyGuard(parse_config({"pseudonymize": {"style": "fake"}}))
    session = guard.session()
    text = "Please call Maria Gonzalez at +1 (415) 555-0134."
    payload = guard.prepare(text, "third_party", session=session).require_payload()
    assert "<" not in payload and "Maria Gonzalez" not in payload and "555-0134" not in payload
    assert session.restore(payload) == text


@pytest.mark.parametrize("tier", ["private_cloud", "third_party"])
def test_200_generated_sentences_leave_no_plaintext(guard, make_sentences, tier):
    """200 labelled sentences (presidio-evaluator, seed 2026) from its templates that carry
    contact, card, bank, IP, SSN or birth-date data, the kind of message a user sends.
    Every byte bound for the tier (the payload and the report that goes with it) is captured
    and searched for each labelled value: none may be there, of any type, and no word of a
    person's name either. ``benchmarks/privacy_eval.py`` repeats this on held-out seeds."""
    samples = make_sentences(200, 2026, pii_request_templates=True)
    assert len(samples) == 200
    leaked: dict[str, list[str]] = {}
    totals: Counter[str] = Counter()
    for sample in samples:
        text = sample.full_text
        session = guard.session()
        out = guard.prepare(text, tier, session=session)
        payload = out.require_payload()
        assert out.leaves_device
        sent = payload.encode("utf-8") + out.model_dump_json(exclude={"payload"}).encode("utf-8")
        assert session.restore(payload) == text
        for span in sample.spans:
            etype = LABELS.get(span.entity_type)
            if etype is None:
                continue
            assert guard.config.action(etype, tier) == "pseudonymize"
            value = text[span.start_position:span.end_position]
            totals[etype] += 1
            if value.encode("utf-8") in sent:
                leaked.setdefault(etype, []).append(value)
            if etype == "PERSON":  # "<PERSON_1> Přerost" would still name her
                for word in re.findall(r"[^\W\d_]{3,}", value):
                    if word[0].isupper() and re.search(rf"(?<!\w){re.escape(word)}(?!\w)", payload):
                        leaked.setdefault("PERSON (a word of the name)", []).append(word)
    assert set(totals) == set(LABELS.values()), totals  # every type is exercised
    assert sum(totals.values()) >= 300
    assert not leaked, leaked


def test_overlapping_detections_take_the_strictest_action():
    """Overlapping detections merge into one span typed by the stronger recognizer; the policy
    action is the strictest of all of them, whichever type won the merge."""
    from tether.privacy import parse_config

    guard = PrivacyGuard(parse_config({
        "detection": {"deny_lists": [{"entity": "CODENAME", "terms": ["bluebird"]}]},
        "policy": {"CODENAME": {"private_cloud": "keep_on_device", "third_party": "keep_on_device"},
                   **dict.fromkeys(("STREET_ADDRESS", "LOCATION"), {"private_cloud": "allow", "third_party": "allow"})}}))
    # The codename is inside an email address (the email type wins the merge): it stays here.
    text = "Please write to bluebird@example.com about the launch."
    for tier in ("private_cloud", "third_party"):
        out = guard.prepare(text, tier, session=guard.session())
        assert out.payload is None and out.stay_reasons == ["CODENAME"]
    assert guard.prepare(text, "device", session=guard.session()).payload == text
    # A street (allowed here) named after a person (pseudonymized): the name does not go as it is.
    out = guard.prepare("The parcel went to 42 Anna Schmidt Street.", "third_party", session=guard.session())
    assert "Anna" not in out.require_payload() and "Schmidt" not in out.payload
    assert [(e.entity_type, e.action) for e in out.entities] == [("PERSON", "pseudonymize")]
    # An allowed street alone still goes as it is.
    text = "The parcel went to 1600 Pennsylvania Avenue."
    assert guard.prepare(text, "third_party", session=guard.session()).payload == text
