"""Each routing rule, consent, and each fault, with real tiers.

The device tier is the real engine on smollm2-135m; the third party is a real
OpenAI-compatible server on loopback (``provider``), which also records every
byte that left the device; the private cloud is a real ``CloudClient``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tether.errors import ConsentRequiredError, InputError, TierUnavailableError
from tether.privacy.guard import PrivacyGuard
from tether.routing.config import RouterConfig, ThirdPartyConfig
from tether.routing.difficulty import KINDS, DifficultyModel, featurize
from tether.routing.escalation import (ANSWER_KINDS, SELF_CONSISTENCY, DeviceAnswer, EscalationModel,
                                       answer_features)
from tether.routing.ledger import Ledger
from tether.routing.router import RouteRequest, Router
from tether.routing.state import DeviceState
from tether.routing.tiers import DeviceTier, PrivateCloudTier

TINY = "smollm2-135m"
PII = "Please write a short note to Maria Gonzalez at maria.gonzalez@example.com about lunch."


def math_is_hard() -> DifficultyModel:
    """A real model object with known weights: the cloud gains 0.3 on math prompts, -0.3 elsewhere."""
    dims = featurize("x").shape[0]
    coef = np.zeros(dims, dtype=np.float32)
    coef[8 + KINDS.index("gsm8k")] = 0.6
    return DifficultyModel(coef, -0.3, np.zeros(dims, np.float32), np.ones(dims, np.float32),
                           {"0.00": 1.0, "0.50": 0.0, "1.00": -1.0}, {})


def escalate_math() -> EscalationModel:
    """A real escalation model with known weights: every math answer escalates, nothing else does."""
    answer = DeviceAnswer("x", -0.5, -2.0, "stop", 4, 8)
    dims = answer_features("x", "chat", answer).shape[0]
    coef = np.zeros(dims, dtype=np.float32)
    coef[ANSWER_KINDS.index("gsm8k")] = 0.6
    return EscalationModel(coef, -0.3, np.zeros(dims, np.float32), np.ones(dims, np.float32),
                           {"0.00": 1.0, "0.50": 0.0, "1.00": -1.0}, {})


def make_router(device, *, third=None, cloud=None, ledger=None, guard=None, **config) -> Router:
    """A router whose prompt scorer decides (no cascade) unless ``cascade`` is passed."""
    cfg = RouterConfig(**{"difficulty_threshold": 0.0, "cascade": [], **config})
    return Router(cfg, device=device, third_party=third, private_cloud=cloud, scorer=math_is_hard(),
                  escalation=escalate_math(), state=DeviceState(), ledger=ledger, guard=guard)


class CountingGuard(PrivacyGuard):
    """The real guard, counting how often it scans text for personal data."""

    def __init__(self) -> None:
        super().__init__()
        self.scans = 0

    def _detect(self, text, tier):
        self.scans += 1
        return super()._detect(text, tier)


SECRET = "Deploy with api key sk-proj-AbCdEf1234567890AbCdEf1234567890 please, how many servers?"


def dead_cloud() -> PrivateCloudTier:
    from tether.cloud.client import CloudClient

    return PrivateCloudTier(CloudClient("http://127.0.0.1:9", "http://127.0.0.1:9", log_key=None, connect_timeout=0.5))


# ----------------------------------------------------------------- rules

def test_requested_device(device, third):
    d = make_router(device, third=third).decide(RouteRequest("What is 2+2?", kind="gsm8k", tier="device"))
    assert (d.tier, d.rule) == ("device", "requested")


def test_device_only_preference_wins_over_difficulty(device, third):
    r = make_router(device, third=third, preference="device-only", consent="always",
                    third_party=ThirdPartyConfig(base_url="http://provider.invalid/v1", model="m", use_for_cloud=True))
    d = r.decide(RouteRequest("How many eggs are left?", kind="gsm8k"))
    assert (d.tier, d.rule) == ("device", "preference")


def test_privacy_overrides_everything(device, third, provider):
    r = make_router(device, third=third, consent="always",
                    third_party=ThirdPartyConfig(base_url="http://provider.invalid/v1", model="m", use_for_cloud=True))
    r.state.report(busy=True)  # would otherwise send it away
    d = r.decide(RouteRequest(SECRET, kind="gsm8k"))
    assert (d.tier, d.rule, d.values["wanted"]) == ("device", "privacy", "busy")
    assert "API_KEY" in d.values["entities"] or "SECRET" in d.values["entities"].upper()
    out = r.respond(RouteRequest(SECRET, kind="gsm8k", max_tokens=8))
    assert out.tier == "device"
    assert provider.captured() == []  # nothing left the device


def test_privacy_scans_only_what_would_leave_and_only_once(device, third, provider):
    guard = CountingGuard()
    r = make_router(device, third=third, guard=guard, consent="always",
                    third_party=ThirdPartyConfig(base_url="http://provider.invalid/v1", model="m", use_for_cloud=True))
    easy = r.respond(RouteRequest("Hi there, how are you?", kind="chat", max_tokens=4))
    assert (easy.tier, guard.scans) == ("device", 0)  # staying on the device costs no scan
    hard = r.respond(RouteRequest(PII, kind="gsm8k", max_tokens=16))
    assert (hard.tier, guard.scans) == ("third_party", 1)  # the decision's scan is the one sent
    stream = r.stream(RouteRequest(PII, kind="gsm8k", max_tokens=16))
    assert "".join(stream) and (stream.response.tier, guard.scans) == ("third_party", 2)
    sent = str(provider.captured())
    assert sent.count("<PERSON_1>") >= 2 and "Maria" not in sent and "maria.gonzalez" not in sent


def test_fallback_to_the_private_cloud_reuses_the_scan(device, third, provider):
    provider.faults([500] * 10)
    guard = CountingGuard()
    r = make_router(device, third=third, cloud=dead_cloud(), guard=guard)
    out = r.respond(RouteRequest(PII, tier="third_party", consent=True, max_tokens=8))
    assert out.tier == "device" and out.degraded
    assert [n.split(" failed")[0] for n in out.notes[:2]] == ["third_party", "private_cloud"]
    assert guard.scans == 1


def test_cascade_never_escalates_text_the_policy_keeps_on_the_device(device, third, provider):
    r = make_router(device, third=third, consent="always", cascade=["chat"], cascade_min_logprob=0.0,
                    third_party=ThirdPartyConfig(base_url="http://provider.invalid/v1", model="m", use_for_cloud=True))
    out = r.respond(RouteRequest(SECRET, kind="chat", feature="chat", max_tokens=8))
    assert out.tier == "device" and not out.escalated and not out.degraded
    assert out.notes and "privacy policy keeps this text here" in out.notes[0]
    assert provider.captured() == []


def test_no_cloud_configured(device):
    d = make_router(device).decide(RouteRequest("Solve 17*23.", kind="gsm8k"))
    assert (d.tier, d.rule) == ("device", "no_cloud")


def test_offline_keeps_it_on_the_device(device, third):
    r = make_router(device, third=third, consent="always",
                    third_party=ThirdPartyConfig(base_url="http://provider.invalid/v1", model="m", use_for_cloud=True))
    r.state.report(offline=True)
    d = r.decide(RouteRequest("Solve 17*23.", kind="gsm8k"))
    assert (d.tier, d.rule) == ("device", "offline")
    assert d.values["offline"] is True


def test_prompt_over_the_device_context_goes_to_the_cloud(device, third):
    r = make_router(device, third=third, consent="always",
                    third_party=ThirdPartyConfig(base_url="http://provider.invalid/v1", model="m", use_for_cloud=True))
    d = r.decide(RouteRequest("word " * (device.context_window + 10), kind="chat"))
    assert (d.tier, d.rule) == ("third_party", "context")
    assert d.values["prompt_tokens"] > d.values["room"]


def test_a_long_prompt_in_a_script_of_few_characters_a_token_still_meets_the_context_rule(stub_device, third):
    """Hindi takes about a token a character in Qwen's vocabulary: 6,000 characters do not fit 4,096 tokens,
    though they are under two characters a token of room (a bound that once let such prompts skip counting)."""
    hindi = "नमस्ते, आज मौसम बहुत अच्छा है। क्या हम समुद्र तट पर घूमने चलें? मुझे ताज़ा समुद्री भोजन खाना है। "
    prompt = (hindi * 80)[:6000]
    r = Router(RouterConfig(consent="always", cascade=[], difficulty_threshold=1.0,
                            third_party=ThirdPartyConfig(base_url="http://provider.invalid/v1", model="m",
                                                         use_for_cloud=True)),
               device=stub_device, third_party=third, state=DeviceState())
    d = r.decide(RouteRequest(prompt, kind="writing"))
    assert (d.tier, d.rule) == ("third_party", "context")
    assert d.values["prompt_tokens"] > d.values["room"] == 4096 - 256


def test_a_saved_never_is_named_as_the_reason_not_taken_for_a_refusal(stub_device, third, provider):
    r = make_router(stub_device, third=third, consent="never",
                    third_party=ThirdPartyConfig(base_url="http://provider.invalid/v1", model="m", use_for_cloud=True))
    r.state.report(busy=True)
    d = r.decide(RouteRequest("Say hello.", kind="chat", consent=True))  # the user said yes; the policy wins
    assert (d.tier, d.rule) == ("device", "consent")
    assert d.reason.endswith('the only cloud is a third party and the saved policy (consent = "never") forbids '
                             "tiers that need consent")
    with pytest.raises(ConsentRequiredError, match=r'saved policy \(consent = "never"\)') as err:
        r.decide(RouteRequest("Say hello.", tier="third_party", consent=True))
    assert "refused" not in str(err.value)
    assert provider.captured() == []


def test_a_third_party_kept_from_automatic_requests_is_named_as_the_reason(stub_device, third):
    r = make_router(stub_device, third=third, consent="always",
                    third_party=ThirdPartyConfig(base_url="http://provider.invalid/v1", model="m"))
    r.state.report(busy=True)
    d = r.decide(RouteRequest("Say hello.", kind="chat"))
    assert (d.tier, d.rule) == ("device", "no_cloud")
    assert d.reason == "a third party is configured, but use_for_cloud = false keeps automatic requests from it"


@pytest.mark.parametrize("flag", ["busy", "low_power"])
def test_busy_or_low_power_device_sends_it_away(device, third, flag):
    r = make_router(device, third=third, consent="always",
                    third_party=ThirdPartyConfig(base_url="http://provider.invalid/v1", model="m", use_for_cloud=True))
    r.state.report(**{flag: True})
    d = r.decide(RouteRequest("Say hello.", kind="chat"))
    assert (d.tier, d.rule) == ("third_party", flag)


def test_difficulty_decides_and_explains(device, third):
    r = make_router(device, third=third, consent="always",
                    third_party=ThirdPartyConfig(base_url="http://provider.invalid/v1", model="m", use_for_cloud=True))
    hard = r.decide(RouteRequest("A shop sells 3 apples for $2. How much do 12 cost?", kind="gsm8k"))
    easy = r.decide(RouteRequest("Hi there, how are you?", kind="chat"))
    assert (hard.tier, hard.rule) == ("third_party", "difficulty")
    assert (easy.tier, easy.rule) == ("device", "difficulty")
    assert hard.values["cloud_gain"] == pytest.approx(0.3) and easy.values["cloud_gain"] == pytest.approx(-0.3)
    assert "cloud_gain=0.300" in hard.explain() and "threshold=0.000" in hard.explain()
    assert easy.seconds < 1.0


def test_prefer_quality_doubles_the_cloud_share_of_both_scorers(device, third):
    """At a 25% target the math prompt (cloud gain 0.3) stays below the threshold (0.5); under
    prefer-quality the share doubles to 50%, whose threshold (0.0) sends it away, and the
    cascade's escalation share doubles too."""
    tp = ThirdPartyConfig(base_url="http://provider.invalid/v1", model="m", use_for_cloud=True)
    math = RouteRequest("A shop sells 3 apples for $2. How much do 12 cost?", kind="gsm8k")
    decided = {}
    for preference in ("prefer-device", "prefer-quality"):
        r = make_router(device, third=third, consent="always", third_party=tp, difficulty_threshold=None,
                        target_cloud_fraction=0.25, cascade_escalate_fraction=0.2, preference=preference)
        decided[preference] = (r.decide(math), r.threshold(), r.escalate_fraction())
    (usual, (t_usual, f_usual), e_usual), (quality, (t_quality, f_quality), e_quality) = decided.values()
    assert (f_usual, f_quality) == (0.25, 0.5) and (e_usual, e_quality) == (0.2, 0.4)
    assert t_usual == pytest.approx(0.5) and t_quality == pytest.approx(0.0)
    assert (usual.tier, usual.rule) == ("device", "difficulty")
    assert (quality.tier, quality.rule) == ("third_party", "difficulty")
    assert quality.values["cloud_gain"] == pytest.approx(0.3)


def test_empty_prompt_and_unknown_tier_are_input_errors():
    with pytest.raises(InputError):
        RouteRequest("   ")
    with pytest.raises(InputError):
        RouteRequest("hi", tier="moon")
    with pytest.raises(InputError, match="feature"):
        RouteRequest("hi", feature="Summarize this: my secret plans")
    for bad in (dict(max_tokens="5"), dict(json_schema={"x": object()}), dict(sampling={"max_tokens": 4})):
        with pytest.raises(InputError):
            RouteRequest("hi", **bad)
    with pytest.raises(InputError, match="must be text"):
        RouteRequest(b"hi")


@pytest.mark.parametrize("consent", ["no", "false", "0", "yes", 1])
def test_consent_is_a_boolean_never_a_truthy_string(consent, device, third, provider):
    with pytest.raises(InputError, match="consent is True, False or None"):
        RouteRequest("If 4 pens cost $6, what do 10 cost?", kind="gsm8k", consent=consent)
    assert provider.captured() == []


# ----------------------------------------------------------------- consent

def test_no_consent_means_no_third_party_call(device, third, provider):
    r = make_router(device, third=third, third_party=ThirdPartyConfig(base_url="http://provider.invalid/v1", model="m", use_for_cloud=True))
    out = r.respond(RouteRequest("If 4 pens cost $6, what do 10 cost?", kind="gsm8k", max_tokens=8))
    assert (out.tier, out.decision.rule) == ("device", "consent")
    assert "consent was not given" in out.decision.reason
    refused = r.respond(RouteRequest("If 4 pens cost $6, what do 10 cost?", kind="gsm8k", max_tokens=8, consent=False))
    assert refused.tier == "device" and "refused" in refused.decision.reason
    with pytest.raises(ConsentRequiredError):
        r.respond(RouteRequest("hello", tier="third_party", consent=False))
    assert provider.captured() == []  # the capture shows no request ever reached the provider


def test_consented_third_party_sees_only_pseudonymized_text(device, third, provider):
    r = make_router(device, third=third, third_party=ThirdPartyConfig(base_url="http://provider.invalid/v1", model="m", use_for_cloud=True))
    out = r.respond(RouteRequest(PII, tier="third_party", consent=True, max_tokens=64))
    sent = str(provider.captured())
    assert "Maria" not in sent and "Gonzalez" not in sent and "maria.gonzalez@example.com" not in sent
    assert "<PERSON_1>" in sent and "<EMAIL_ADDRESS_1>" in sent
    assert out.tier == "third_party"
    assert "Maria Gonzalez" in out.text and "maria.gonzalez@example.com" in out.text  # restored on the device


def test_a_private_cloud_that_needs_consent_is_used_only_with_it(device):
    """``tiers.private_cloud.requires_consent`` in the privacy config binds the router, not just the preview."""
    from tether.privacy.policy import PrivacyConfig, TierConfig

    guard = PrivacyGuard(PrivacyConfig(tiers={"private_cloud": TierConfig(requires_consent=True)}))
    r = make_router(device, cloud=dead_cloud(), guard=guard)
    r.state.report(busy=True)
    d = r.decide(RouteRequest("Say hello to the team."))
    assert (d.tier, d.rule, d.values["wanted"]) == ("device", "consent", "busy")
    assert "the private cloud needs consent and consent was not given" in d.reason
    assert r.decide(RouteRequest("Say hello to the team.", consent=True)).tier == "private_cloud"
    with pytest.raises(ConsentRequiredError, match="private_cloud"):
        r.decide(RouteRequest("Say hello.", tier="private_cloud"))
    assert r.decide(RouteRequest("Say hello.", tier="private_cloud", consent=True)).tier == "private_cloud"
    plain = make_router(device, cloud=dead_cloud())  # the default policy: no consent for the private cloud
    plain.state.report(busy=True)
    assert plain.decide(RouteRequest("Say hello to the team.")).tier == "private_cloud"


def test_a_prompt_only_a_consented_cloud_could_take_asks_for_consent(device, third, provider):
    """The device cannot answer it at all, so the router asks rather than fail there."""
    r = make_router(device, third=third, third_party=ThirdPartyConfig(base_url="http://provider.invalid/v1", model="m", use_for_cloud=True))
    huge = "Summarize: " + "the quarterly numbers went up again " * 1500
    with pytest.raises(ConsentRequiredError, match="does not fit the device model's context"):
        r.decide(RouteRequest(huge, max_tokens=16))
    refused = r.decide(RouteRequest(huge, max_tokens=16, consent=False))  # asked and refused: the device tries
    assert (refused.tier, refused.rule, refused.values["wanted"]) == ("device", "consent", "context")
    assert r.decide(RouteRequest(huge, max_tokens=16, consent=True)).tier == "third_party"
    assert provider.captured() == []


def test_device_only_wins_over_a_requested_cloud_tier(device, third, provider):
    r = make_router(device, third=third, cloud=dead_cloud(), preference="device-only")
    for tier in ("private_cloud", "third_party"):
        d = r.decide(RouteRequest("Say hello.", tier=tier, consent=True))
        assert (d.tier, d.rule, d.values) == ("device", "preference", {"requested": tier})
    assert provider.captured() == []


def test_a_saved_never_cannot_be_overridden_per_request(device, third, provider):
    r = make_router(device, third=third, consent="never",
                    third_party=ThirdPartyConfig(base_url="http://provider.invalid/v1", model="m", use_for_cloud=True))
    with pytest.raises(ConsentRequiredError):
        r.respond(RouteRequest("Say hi.", tier="third_party", consent=True, max_tokens=4))
    out = r.respond(RouteRequest("If 4 pens cost $6, what do 10 cost?", kind="gsm8k", max_tokens=8, consent=True))
    assert (out.tier, out.decision.rule) == ("device", "consent")
    assert provider.captured() == []


def test_instructions_pass_the_privacy_guard_too(device, third, provider):
    """A system message is text that leaves the device like the prompt: pseudonymized with the same
    session, and a secret in it keeps the whole request here."""
    r = make_router(device, third=third, third_party=ThirdPartyConfig(base_url="http://provider.invalid/v1", model="m", use_for_cloud=True))
    out = r.respond(RouteRequest("Write a short hello to Maria Gonzalez.", tier="third_party", consent=True,
                                 max_tokens=16, instructions="The user is Maria Gonzalez, SSN 536-22-8741."))
    sent = json.dumps(provider.captured())
    assert out.tier == "third_party"
    assert "Maria" not in sent and "536-22-8741" not in sent
    system = provider.captured()[0]["body"]["messages"][0]
    assert system["role"] == "system" and "<PERSON_1>" in system["content"]  # one session: the same placeholder
    provider.reset()
    asked = r.respond(RouteRequest("Write a hello.", tier="third_party", consent=True, max_tokens=4,
                                   instructions="The user's password: hunter2"))
    assert (asked.tier, asked.decision.rule) == ("device", "privacy") and "PASSWORD" in asked.decision.values["entities"]
    kept = r.respond(RouteRequest("If 4 pens cost $6, what do 10 cost?", kind="gsm8k", consent=True, max_tokens=8,
                                  instructions="The user's password: hunter2"))
    assert (kept.tier, kept.decision.rule) == ("device", "privacy")
    assert provider.captured() == []


def test_schema_stops_and_instructions_leave_only_as_the_guard_allows(device, third, provider):
    """Everything of a request that reaches a tier passes the guard: a JSON schema's values, stop
    sequences; and a name found in one text is hidden in the others ("Chise" after "Chise Tanaka")."""
    from tether.models.engine import Sampling

    r = make_router(device, third=third, third_party=ThirdPartyConfig(base_url="http://provider.invalid/v1", model="m", use_for_cloud=True))
    schema = {"type": "object", "properties": {"who": {"type": "string", "examples": ["Maria Gonzalez"],
                                                       "description": "e.g. maria.gonzalez@example.com"}}}
    provider.faults([{"content": '{"who": "someone"}'}])  # an answer that keeps to the schema
    out = r.respond(RouteRequest("Chise is very reliable, right?", tier="third_party", consent=True,
                                 instructions="You are helping Chise Tanaka.", json_schema=schema,
                                 sampling=Sampling.greedy(16, stop=("Maria Gonzalez",))))
    assert out.tier == "third_party"
    body = provider.captured()[0]["body"]
    sent = json.dumps(body)
    for value in ("Chise", "Tanaka", "Maria", "Gonzalez", "maria.gonzalez@example.com"):
        assert value not in sent, value
    assert len(body["stop"]) == 1 and body["stop"][0].startswith("<PERSON_")
    props = body["response_format"]["json_schema"]["schema"]["properties"]["who"]
    assert props["examples"][0].startswith("<PERSON_") and "<EMAIL_ADDRESS_" in props["description"]
    provider.reset()
    secret = {"type": "object", "properties": {"key": {"type": "string", "const": "sk-proj-abcdefghijklmnopqrstuvwxyz123456"}}}
    kept = r.respond(RouteRequest("make a config", tier="third_party", consent=True, json_schema=secret, max_tokens=8))
    assert (kept.tier, kept.decision.rule) == ("device", "privacy") and provider.captured() == []


def test_the_prompt_s_own_person_1_never_comes_back_as_the_system_prompt_s_person(device, third, provider):
    """The prompt and the system prompt were pseudonymized one at a time, each checked only
    against itself: the system prompt's Maria became <PERSON_1> though the prompt's transcript
    has its own "Person 1", and a reply about that speaker came back as Maria Gonzalez. And a first
    name in the prompt did not link to the full name in the system prompt: two people, not one."""
    r = make_router(device, third=third, third_party=ThirdPartyConfig(base_url="http://provider.invalid/v1", model="m", use_for_cloud=True))
    provider.faults([{"content": "Person 1 promised to send the signed contract on Friday."}])
    out = r.respond(RouteRequest("Call notes:\nPerson 1: I'll send the signed contract on Friday.\nPerson 2: Thanks.\n"
                                 "What did Person 1 promise?", tier="third_party", consent=True, max_tokens=16,
                                 instructions="You are the assistant of Maria Gonzalez."))
    system, user = provider.captured()[0]["body"]["messages"]
    assert "Maria" not in system["content"] and "Person 1:" in user["content"]
    assert not any(f"<PERSON_{n}>" in system["content"] for n in (1, 2)), system
    assert out.text == "Person 1 promised to send the signed contract on Friday."
    provider.reset()
    r.respond(RouteRequest("Draft a short thank-you note from Emma to the team.", tier="third_party", consent=True,
                           max_tokens=8, instructions="You are the personal assistant of Emma Johnson."))
    system, user = provider.captured()[0]["body"]["messages"]
    assert system["content"] == "You are the personal assistant of <PERSON_1>."
    assert user["content"] == "Draft a short thank-you note from <GIVEN_NAME_OF_PERSON_1> to the team."


def test_an_answer_gets_no_real_value_inside_a_url(device, third, provider):
    """The provider chooses the URLs of its answer; a markdown client fetches an image unasked."""
    r = make_router(device, third=third, third_party=ThirdPartyConfig(base_url="http://provider.invalid/v1", model="m", use_for_cloud=True))
    prompt = "Mail maria.gonzalez@example.com and show ![s](http://img.example/p.gif?d=maria.gonzalez@example.com)"
    out = r.respond(RouteRequest(prompt, tier="third_party", consent=True, max_tokens=64))
    want = "echo: Mail maria.gonzalez@example.com and show ![s](http://img.example/p.gif?d=<EMAIL_ADDRESS_1>)"
    assert out.text == want
    stream = r.stream(RouteRequest(prompt, tier="third_party", consent=True, max_tokens=64))
    assert "".join(stream) == want


def test_a_json_answer_is_restored_value_by_value():
    from tether.privacy.pseudonymize import PseudonymSession
    from tether.routing.router import Prepared

    session = PseudonymSession()
    session.surface("PERSON", 'Priya\nRaman "PR"')
    as_json = Prepared("third_party", [], session, None, json_schema={"type": "object"})
    restored = as_json.restore('{"who": "<PERSON_1>", "all": ["<PERSON_1>", 2]}')
    assert json.loads(restored) == {"who": 'Priya\nRaman "PR"', "all": ['Priya\nRaman "PR"', 2]}
    assert Prepared("third_party", [], session, None).restore("hi <PERSON_1>") == 'hi Priya\nRaman "PR"'


# ----------------------------------------------------------------- faults

def test_provider_429_then_success_retries_with_backoff(device, third, provider):
    provider.faults([429, 429], retry_after=0.01)
    r = make_router(device, third=third)
    out = r.respond(RouteRequest("hello there", tier="third_party", consent=True, max_tokens=8))
    assert out.tier == "third_party" and not out.degraded
    assert third.last_attempts == 3


def test_provider_500_falls_back_to_the_device_and_says_so(device, third, provider):
    provider.faults([500] * 10)
    r = make_router(device, third=third)
    out = r.respond(RouteRequest("hello there", tier="third_party", consent=True, max_tokens=8))
    assert out.tier == "device" and out.degraded
    assert any("third_party failed" in n and "500" in n for n in out.notes)
    assert out.text.strip()


def test_unreachable_private_cloud_degrades_to_the_device(device):
    r = make_router(device, cloud=dead_cloud())
    r.state.report(busy=True)
    out = r.respond(RouteRequest("Say hello.", kind="chat", max_tokens=8))
    assert out.decision.tier == "private_cloud" and out.tier == "device" and out.degraded
    assert any("private_cloud failed" in n for n in out.notes)


def test_policy_can_forbid_the_degraded_answer(device):
    r = make_router(device, cloud=dead_cloud(), allow_degraded=False)
    r.state.report(busy=True)
    with pytest.raises(TierUnavailableError, match="forbids"):
        r.respond(RouteRequest("Say hello.", kind="chat", max_tokens=8))


# ----------------------------------------------------------------- cascade and ledger

def test_cascade_escalates_an_unsure_device_answer_and_the_ledger_records_it(device, third, provider, tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    r = make_router(device, third=third, ledger=ledger, consent="always", cascade=["chat"], cascade_min_logprob=0.0,
                    third_party=ThirdPartyConfig(base_url="http://provider.invalid/v1", model="m", use_for_cloud=True))
    out = r.respond(RouteRequest("Hi there, how are you?", kind="chat", feature="chat", max_tokens=8))
    assert out.escalated and out.tier == "third_party"
    assert out.notes and out.notes[0].startswith("cascade: device answer escalated (mean logprob")
    calm = make_router(device, third=third, ledger=ledger, consent="always", cascade=["chat"],
                       cascade_escalate_fraction=0,
                       third_party=ThirdPartyConfig(base_url="http://provider.invalid/v1", model="m", use_for_cloud=True))
    kept = calm.respond(RouteRequest("Hi there, how are you?", kind="chat", feature="chat", max_tokens=8))
    assert not kept.escalated and kept.tier == "device"
    rows = ledger.entries()
    assert [(e.tier, e.escalated) for e in rows] == [("device", False), ("third_party", True)]
    assert rows[1].cost_usd > 0 and rows[0].cost_usd == 0
    # the escalated entry prices the device's discarded answer as device work, the rest as third party
    spent, prices = out.device_tokens, r.config.prices
    assert 0 < spent < rows[1].prompt_tokens + rows[1].completion_tokens
    answered = rows[1].prompt_tokens + rows[1].completion_tokens - spent
    assert rows[1].cost_usd == pytest.approx(prices.cost("third_party", answered))
    assert rows[1].energy_j == pytest.approx(prices.energy("third_party", answered) + prices.energy("device", spent))
    stats = ledger.stats()
    assert stats.requests == 2 and stats.device_share == 0.5 and stats.escalated == 1
    raw = (tmp_path / "ledger.sqlite").read_bytes()
    wal = tmp_path / "ledger.sqlite-wal"
    raw += wal.read_bytes() if wal.exists() else b""
    assert b"how are you" not in raw and b"echo" not in raw  # never content


def test_a_failed_escalation_keeps_the_device_answer_without_generating_it_again(device, tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    calls = []

    class CountingDevice(DeviceTier):
        def complete(self, *args, **kwargs):
            calls.append(1)
            return super().complete(*args, **kwargs)

    counting = CountingDevice(TINY)
    r = make_router(counting, cloud=dead_cloud(), ledger=ledger, cascade=["chat"], cascade_min_logprob=0.0)
    out = r.respond(RouteRequest("Hi there, how are you?", kind="chat", feature="chat", max_tokens=8))
    assert out.tier == "device" and out.degraded and not out.escalated
    assert len(calls) == 1  # answered once; the failed escalation did not run the device again
    assert any("escalation failed" in n for n in out.notes)
    row = ledger.entries()[0]
    assert (row.tier, row.escalated, row.degraded) == ("device", False, True)
    assert row.completion_tokens == out.completion_tokens <= 8


def test_learned_escalation_scores_the_device_answer_by_its_kind(device, third, provider):
    r = make_router(device, third=third, consent="always", cascade=["route"], cascade_escalate_fraction=0.5,
                    third_party=ThirdPartyConfig(base_url="http://provider.invalid/v1", model="m", use_for_cloud=True))
    math = r.respond(RouteRequest("Tom has 3 apples and buys 4 more. How many?", kind="gsm8k", feature="route",
                                  max_tokens=8))
    assert math.decision.rule == "cascade" and math.decision.values["escalate_fraction"] == 0.5
    assert math.escalated and math.tier == "third_party"
    assert "escalation score 0.300 > 0.000, calibrated to escalate 50%" in math.notes[0]
    assert math.decision.values["escalation_score"] == pytest.approx(0.3)
    assert math.prompt_tokens > 0 and len(provider.captured()) == 1  # the device's tokens are counted too
    chat = r.respond(RouteRequest("Hi there, how are you?", kind="chat", feature="route", max_tokens=8))
    assert chat.tier == "device" and not chat.escalated and len(provider.captured()) == 1
    other = r.decide(RouteRequest("Tom has 3 apples and buys 4 more. How many?", kind="gsm8k", feature="chat"))
    assert (other.tier, other.rule) == ("third_party", "difficulty")  # not a cascade feature: the prompt scorer decides
    streamed = r.stream(RouteRequest("Tom has 3 apples and buys 4 more. How many?", kind="gsm8k", feature="route"))
    assert streamed.decision.rule == "difficulty"  # a stream cannot take back what it showed, so no cascade


def self_consistent_math_is_fine() -> EscalationModel:
    """Known weights: a math answer scores 0.6 × the share of samples that disagree with it
    (0 to 0.6, so a sample can decide at thresholds in that range); text answers -0.3."""
    model = escalate_math()
    model.coef[ANSWER_KINDS.index("gsm8k")] = 0.3
    model.coef[SELF_CONSISTENCY] = 0.6
    return model


def test_a_math_cascade_samples_the_device_again_and_counts_those_tokens(device, third, provider, tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    cfg = RouterConfig(difficulty_threshold=0.0, consent="always", cascade=["route"], cascade_samples=2,
                       cascade_escalate_fraction=0.5,
                       third_party=ThirdPartyConfig(base_url="http://provider.invalid/v1", model="m", use_for_cloud=True))
    r = Router(cfg, device=device, third_party=third, scorer=math_is_hard(), escalation=self_consistent_math_is_fine(),
               state=DeviceState(), ledger=ledger)
    ask = RouteRequest("Tom has 3 apples and buys 4 more. How many apples does he have?", kind="gsm8k",
                       feature="route", max_tokens=12)
    out = r.respond(ask)
    values = out.decision.values
    assert values["samples"] == 2 and values["samples_disagree"] in (0.0, 0.5, 1.0)
    assert values["escalation_score"] == pytest.approx(0.6 * values["samples_disagree"], abs=1e-6)
    assert out.escalated == (values["escalation_score"] > values["escalation_threshold"])
    assert len(provider.captured()) == int(out.escalated) and out.tier == ("third_party" if out.escalated else "device")
    if out.escalated:  # the device's prompt, answer and samples: device work the cloud's answer replaced
        from tether.models.engine import Message

        generated = out.device_tokens - device.count_tokens([Message("user", ask.prompt)])
        assert 12 < generated <= 3 * 12  # more than one answer: the samples count
    else:  # usage counts the samples too, beyond the answer
        assert 0 < out.device_tokens <= 2 * 12 and 0 < out.completion_tokens - out.device_tokens <= 12
    again = r.respond(ask)
    assert again.decision.values["samples_disagree"] == values["samples_disagree"]  # seeded by the prompt
    assert again.device_tokens == out.device_tokens
    provider.reset()
    chat = r.respond(RouteRequest("Hi there, how are you?", kind="chat", feature="route", max_tokens=8))
    assert "samples" not in chat.decision.values and chat.device_tokens == 0  # only math answers are compared
    rows = ledger.entries()
    device_rows = [row for row in rows if row.tier == "device"]
    assert device_rows and all(row.energy_j == pytest.approx(cfg.prices.energy("device", row.prompt_tokens
                                                                               + row.completion_tokens))
                               for row in device_rows)
    # At a 5% escalation threshold (0.9) no sample can lift a math answer (at most 0.6) over it: none is drawn.
    r.config = cfg.model_copy(update={"cascade_escalate_fraction": 0.05})
    sure = r.respond(ask)
    assert sure.decision.values["samples"] == 0 and "could change" in sure.decision.values["samples_skipped"]
    assert sure.device_tokens == 0 and not sure.escalated
    r.config = cfg.model_copy(update={"cascade_samples": 0})
    off = r.respond(ask)
    assert "samples" not in off.decision.values
    # No cloud can take the answer (consent refused): a sample could change nothing, so none is drawn.
    r.config = cfg.model_copy(update={"consent": "never"})
    provider.reset()
    refused = r.respond(ask)
    assert refused.decision.values["samples"] == 0 and refused.device_tokens == 0 and not refused.escalated
    assert 'the saved policy (consent = "never") forbids' in refused.decision.values["samples_skipped"]
    assert provider.captured() == []


def test_cascade_without_consent_keeps_the_unsure_answer_and_says_why(device, third, provider):
    r = make_router(device, third=third, consent="never", cascade=["chat"], cascade_min_logprob=0.0,
                    third_party=ThirdPartyConfig(base_url="http://provider.invalid/v1", model="m", use_for_cloud=True))
    out = r.respond(RouteRequest("Hi there, how are you?", kind="chat", feature="chat", max_tokens=8))
    assert (out.tier, out.decision.rule, out.escalated) == ("device", "cascade", False)
    assert ('but the only cloud is a third party and the saved policy (consent = "never") forbids tiers that '
            "need consent") in out.notes[0]
    assert provider.captured() == []


def test_device_state_memory_is_reported_kept_and_reset():
    s = DeviceState()
    assert s.snapshot().memory_available_mb is None and s.snapshot().available_memory_mb() > 0  # the OS's figure
    s.report(memory_available_mb=512)
    s.report(busy=True)
    assert s.snapshot().available_memory_mb() == 512 and s.snapshot().as_dict()["memory_available_mb"] == 512
    s.report(memory_available_mb=-1)
    assert s.snapshot().memory_available_mb is None and "memory_available_mb" not in s.snapshot().as_dict()
    for bad in (-5, float("nan"), "lots"):
        with pytest.raises(InputError, match="memory_available_mb"):
            s.report(memory_available_mb=bad)
    assert s.snapshot().busy  # a bad report changed nothing


@pytest.mark.parametrize("flag", ["offline", "low_power", "busy"])
def test_device_flags_are_booleans_never_a_truthy_string(flag):
    """``report(low_power="false")`` read as low power (and sent requests away); as the request's consent,
    a state flag is True, False or (report: unchanged) None."""
    s = DeviceState()
    for bad in ("false", "no", 0, 1, "True"):
        with pytest.raises(InputError, match=flag):
            s.report(**{flag: bad})
        with pytest.raises(InputError, match=flag):
            DeviceState(**{flag: bad})
    assert s.snapshot() == DeviceState().snapshot()  # a bad report changed nothing
    assert getattr(s.report(**{flag: True}), flag) is True and getattr(s.report(**{flag: None}), flag) is True


def test_a_loaded_device_model_needs_no_more_memory(device, third):
    r = make_router(device, third=third, consent="always",
                    third_party=ThirdPartyConfig(base_url="http://provider.invalid/v1", model="m", use_for_cloud=True))
    assert device.engine and device.memory_needed_mb() == 0  # KV cache and buffers were allocated at load
    r.state.report(memory_available_mb=1)
    assert r.decide(RouteRequest("Hi there", kind="chat")).rule == "difficulty"


def test_an_untagged_word_problem_is_scored_as_math_and_the_decision_says_so(device, third, provider):
    r = make_router(device, third=third, consent="always",
                    third_party=ThirdPartyConfig(base_url="http://provider.invalid/v1", model="m", use_for_cloud=True))
    word_problem = RouteRequest("Sam has 3 boxes with twelve pens each. How many pens does he have?", kind="auto")
    d = r.decide(word_problem)
    assert (d.tier, d.rule, d.values["kind"]) == ("third_party", "difficulty", "gsm8k (inferred)")
    chat = r.decide(RouteRequest("Tell me something nice about autumn.", kind="auto"))
    assert (chat.tier, chat.values["kind"]) == ("device", "chat (inferred)")


def test_by_default_chat_route_and_ask_are_cascaded(device, third, provider):
    """The cascade keeps more quality per cloud call than the prompt scorer (docs/benchmarks.md),
    so the requests people type are answered on the device first; streams cannot be. Notification
    summaries are too: their faithfulness check decides (tests/routing/test_feature_routing.py)."""
    assert RouterConfig().cascade == ["chat", "route", "ask", "notifications", "summarize", "rewrite", "replies",
                                      "proofread"]
    r = Router(RouterConfig(consent="always", third_party=ThirdPartyConfig(base_url="http://provider.invalid/v1", model="m", use_for_cloud=True)),
               device=device, third_party=third, state=DeviceState())
    for feature in ("chat", "route", "ask"):
        d = r.decide(RouteRequest("Sam has 3 boxes with twelve pens each. How many pens?", kind="auto", feature=feature))
        assert (d.tier, d.rule, d.values["kind"]) == ("device", "cascade", "gsm8k (inferred)")
    assert r.decide(RouteRequest("Tom has 3 apples.", feature="chat"), streaming=True).rule == "difficulty"
    assert r.decide(RouteRequest("Shorten this note.", feature="writing")).rule == "difficulty"  # not listed
    assert provider.captured() == []


def test_names_after_escapes_in_a_schema_do_not_leave(device, third, provider):
    """The schema is sent as JSON text; "\\nZbigniew" there must read as a line break and a name."""
    schema = {"type": "object", "description": "Customer:\nZbigniew Wojcik\nnotes:\tKarolina\tNowak-Brzezinska",
              "properties": {"who": {"enum": ["Siobhan\nMurphy"]}}}
    r = make_router(device, third=third,
                    third_party=ThirdPartyConfig(base_url="http://provider.invalid/v1", model="m", use_for_cloud=True))
    r.respond(RouteRequest("Fill in the form.", tier="third_party", consent=True, json_schema=schema, max_tokens=8))
    sent = json.dumps(provider.captured())
    for value in ("Zbigniew", "Wojcik", "Karolina", "Nowak", "Siobhan", "Murphy"):
        assert value not in sent, value
