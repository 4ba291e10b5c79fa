"""Structured output off the device: an answer that breaks the request's JSON schema is its tier failing.

The third party is the real OpenAI-compatible stand-in on loopback (``provider``), scripted to
answer a fixed text, as a provider that ignores ``response_format`` would; the device is the real
engine on smollm2-135m, whose grammar forces the schema's shape.
"""

from __future__ import annotations

import json

import pytest

from tether.errors import InvalidOutputError, InvalidTierOutputError, TierUnavailableError
from tether.models.json_schema import violation
from tether.routing.config import RouterConfig
from tether.routing.ledger import Ledger
from tether.routing.router import RouteRequest, Router
from tether.routing.state import DeviceState
from tether.routing.third_party import ThirdPartyTier

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"], "additionalProperties": False}
PROMPT = "Describe Ada Lovelace as JSON."
CARD = 'Write a birthday card for Maria "Mimi" Gonzalez, please.'  # the guard hides the whole name, quotes and all


@pytest.fixture()
def third(provider):
    provider.reset()
    tier = ThirdPartyTier(provider.url, "gpt-test", "sk-test-key-not-real", retries=0)
    yield tier
    tier.close()


def router(device, third, ledger=None, **config) -> Router:
    return Router(RouterConfig(**{"cascade": [], **config}), device=device, third_party=third, state=DeviceState(),
                  ledger=ledger)


def ask(prompt: str = PROMPT, **kwargs) -> RouteRequest:
    return RouteRequest(prompt, tier="third_party", consent=True, json_schema=SCHEMA, max_tokens=48, **kwargs)


@pytest.mark.parametrize("answer, problem", [
    ("Sure! Ada Lovelace was 36.", "not JSON ("),
    ('{"name": "Ada Lovelace"}', "'age' is a required property"),
])
def test_an_answer_that_breaks_the_schema_falls_back_to_the_device(device, third, provider, tmp_path, answer, problem):
    provider.faults([{"content": answer}])
    ledger = Ledger(tmp_path / "ledger.sqlite")
    out = router(device, third, ledger).respond(ask())
    assert (out.tier, out.degraded) == ("device", True)
    assert violation(SCHEMA, out.text) is None  # the device's grammar holds it to the schema
    assert out.notes[0].startswith("third_party failed: its answer broke the JSON schema: ") and problem in out.notes[0]
    assert out.notes[-1] == "answered on the device instead (degraded)"
    assert len(provider.captured()) == 1  # the provider was paid once and not asked again
    [entry] = ledger.entries()
    assert entry.tier == "device" and entry.degraded
    assert entry.cost_usd > 0  # the device is free: this is the third party's rejected answer


def test_without_degraded_answers_a_broken_answer_is_an_invalid_output_error(device, third, provider):
    provider.faults([{"content": '{"name": "Ada Lovelace", "age": "old"}'}])
    with pytest.raises(InvalidTierOutputError, match="broke the JSON schema: age: 'old' is not of type 'integer'") as e:
        router(device, third, allow_degraded=False).respond(ask())
    assert isinstance(e.value, TierUnavailableError) and e.value.tier == "third_party" and e.value.status is None
    assert len(provider.captured()) == 1


def test_a_conforming_answer_passes_with_a_quoted_name_restored_as_valid_json(device, third, provider):
    r = router(device, third)
    answer = '{"name": "<PERSON_1>", "age": 30}'
    want = json.dumps({"name": 'Maria "Mimi" Gonzalez', "age": 30})
    provider.faults([{"content": answer}, {"content": answer}])
    out = r.respond(ask(CARD))
    assert (out.tier, out.degraded, out.notes, out.text) == ("third_party", False, [], want)
    stream = r.stream(ask(CARD))
    assert "".join(stream) == want  # restored into the JSON string, escaped, though split across deltas
    assert (stream.response.tier, stream.response.notes) == ("third_party", [])
    sent = json.dumps(provider.captured())
    assert "Mimi" not in sent and "Gonzalez" not in sent


def test_a_json_answer_restores_a_backslash_and_a_quote_as_valid_json():
    from tether.privacy.pseudonymize import PseudonymSession
    from tether.routing.router import Prepared

    session = PseudonymSession()
    session.surface("PERSON", 'Dara \\ "Ó" Briain')
    restored = Prepared("third_party", [], session, None, json_schema=SCHEMA).restore('{"name": "<PERSON_1>", "age": 3}')
    assert violation(SCHEMA, restored) is None and json.loads(restored)["name"] == 'Dara \\ "Ó" Briain'


def test_a_truncated_answer_is_not_judged(device, third, provider):
    provider.faults([{"content": '{"name": "Ada', "finish_reason": "length"}])
    out = router(device, third).respond(ask())
    assert (out.tier, out.finish_reason, out.text) == ("third_party", "length", '{"name": "Ada')


def test_a_stream_that_breaks_the_schema_ends_with_an_error_after_its_text(device, third, provider, tmp_path):
    provider.faults([{"content": '{"name": "Ada Lovelace"}'}])
    ledger = Ledger(tmp_path / "ledger.sqlite")
    stream = router(device, third, ledger).stream(ask())
    deltas = []
    with pytest.raises(InvalidTierOutputError, match="'age' is a required property"):
        for delta in stream:
            deltas.append(delta)
    assert "".join(deltas) == '{"name": "Ada Lovelace"}' and len(deltas) > 1  # sent; it cannot be taken back
    assert stream.response.tier == "third_party" and not stream.response.degraded
    assert "broke the JSON schema" in stream.response.notes[-1] and "already sent" in stream.response.notes[-1]
    [entry] = ledger.entries()  # the tier answered and was paid
    assert entry.tier == "third_party"
    assert len(provider.captured()) == 1


def test_an_invalid_schema_is_an_input_error():
    from tether.errors import InputError

    with pytest.raises(InputError, match="invalid JSON schema"):
        RouteRequest("hi", json_schema={"type": "strnig"})
    assert violation({"type": "number"}, "NaN").startswith("not JSON")  # Python reads it; JSON has no NaN


# What llama.cpp's grammar cannot force is checked on the device's answers too. Two distinct
# items of the only allowed value cannot exist: the grammar writes ["a", "a"] every time.
IMPOSSIBLE = {"type": "array", "items": {"enum": ["a"]}, "minItems": 2, "maxItems": 2, "uniqueItems": True}
# Number bounds have no grammar form either; asked for 7, the device writes {"n": 7}.
BOUNDED = {"type": "object", "properties": {"n": {"type": "number", "minimum": 1000, "maximum": 2000}},
           "required": ["n"]}
TWICE = "Write the letter a twice."


def on_device(schema: dict, prompt: str = TWICE) -> RouteRequest:
    return RouteRequest(prompt, tier="device", json_schema=schema, max_tokens=16)


def test_a_device_answer_that_breaks_what_the_grammar_cannot_force_is_retried_then_an_error(device, third, tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    with pytest.raises(InvalidOutputError, match="also on a retry: .*non-unique") as caught:
        router(device, third, ledger).respond(on_device(IMPOSSIBLE))
    assert json.loads(caught.value.output) == ["a", "a"]  # what it wrote, for a caller who wants to see
    [entry] = ledger.entries()  # no answer was given, but the device worked twice for it
    assert (entry.tier, entry.reason) == ("device", "requested.failed") and entry.completion_tokens > 0


def test_a_device_stream_that_breaks_the_schema_ends_with_an_error_after_its_text(device, third, tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    stream = router(device, third, ledger).stream(on_device(IMPOSSIBLE))
    deltas = []
    with pytest.raises(InvalidOutputError, match="streamed answer broke the JSON schema: .*non-unique"):
        for delta in stream:
            deltas.append(delta)
    assert json.loads("".join(deltas)) == ["a", "a"]
    assert stream.response.tier == "device" and "already sent" in stream.response.notes[-1]
    [entry] = ledger.entries()
    assert entry.tier == "device"


def cascading(device, third, **config) -> Router:
    """Cascade on chat; only a broken schema escalates (no logprob floor, no learned escalation)."""
    from tether.routing.config import ThirdPartyConfig

    cloud = ThirdPartyConfig(base_url="http://provider.invalid/v1", model="m", use_for_cloud=True)
    return router(device, third, consent="always", cascade=["chat"], cascade_min_logprob=None,
                  cascade_escalate_fraction=0.0, third_party=cloud, **config)


def test_the_cascade_escalates_a_device_answer_that_breaks_the_schema(device, third, provider):
    provider.faults([{"content": '{"n": 1500}'}])
    r = cascading(device, third)
    req = RouteRequest("Write the number 7 as JSON.", kind="chat", feature="chat", json_schema=BOUNDED, max_tokens=16)
    assert r.decide(req).rule == "cascade"
    out = r.respond(req)
    assert (out.tier, out.escalated, out.text) == ("third_party", True, '{"n": 1500}')
    assert "output broke the JSON schema: n: 7 is less than the minimum of 1000" in out.notes[0]
    assert len(provider.captured()) == 1


def test_the_cascade_keeps_a_device_answer_that_holds_to_the_schema(device, third, provider):
    r = cascading(device, third)
    out = r.respond(RouteRequest(TWICE, kind="chat", feature="chat", json_schema=SCHEMA, max_tokens=48))
    assert (out.tier, out.escalated) == ("device", False)
    assert violation(SCHEMA, out.text) is None
    assert provider.captured() == []
