"""A third party that breaks ``response_format``, behind the gateway: a real ``tether serve`` whose
router config forbids degraded answers, and the real OpenAI-compatible stand-in on loopback,
scripted to answer what a provider that ignores the schema would."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.gateway.conftest import behind_a_provider

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"], "additionalProperties": False}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    with behind_a_provider(tmp_path_factory.mktemp("schema"), {
            "allow_degraded": False, "cascade": [], "consent": "always", "third_party": {"retries": 0}}) as both:
        yield both


def chat(server, *, stream: bool = False) -> httpx.Response:
    body = {"model": "third-party", "stream": stream, "max_tokens": 64,
            "messages": [{"role": "user", "content": "Describe Ada Lovelace as JSON."}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA}}}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=60) as r:
        r.read()
    return r


def test_a_broken_answer_is_502_invalid_output_when_the_device_may_not_answer(setup):
    server, provider = setup
    provider.faults([{"content": "Sure! Ada Lovelace was 36."}])
    r = chat(server)
    assert r.status_code == 502, r.text
    error = r.json()["error"]
    assert (error["type"], error["code"]) == ("server_error", "invalid_output")
    assert "broke the JSON schema: not JSON" in error["message"]
    assert len(provider.captured()) == 1


def test_a_broken_stream_ends_with_an_in_band_error_after_its_text(setup):
    server, provider = setup
    provider.reset()
    provider.faults([{"content": '{"name": "Ada Lovelace"}'}])
    r = chat(server, stream=True)
    assert r.status_code == 200  # the text came first: the status was sent with it
    events = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: {")]
    text = "".join((e["choices"][0]["delta"].get("content") or "") for e in events if e.get("choices"))
    assert text == '{"name": "Ada Lovelace"}'
    error = events[-1]["error"]
    assert error["code"] == "invalid_output" and "'age' is a required property" in error["message"]
    assert "data: [DONE]" not in r.text


def test_a_device_stream_that_breaks_what_the_grammar_cannot_force_ends_with_an_in_band_error(setup):
    """Two distinct items of the only allowed value cannot exist; the grammar writes ["a", "a"]."""
    server, _ = setup
    impossible = {"type": "array", "items": {"enum": ["a"]}, "minItems": 2, "maxItems": 2, "uniqueItems": True}
    body = {"model": "device", "stream": True, "max_tokens": 16,
            "messages": [{"role": "user", "content": "Write the letter a twice."}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "letters", "schema": impossible}}}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=60) as r:
        r.read()
    assert r.status_code == 200
    events = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: {")]
    text = "".join((e["choices"][0]["delta"].get("content") or "") for e in events if e.get("choices"))
    assert json.loads(text) == ["a", "a"]
    error = events[-1]["error"]
    assert error["code"] == "invalid_output" and "non-unique" in error["message"]
    assert "data: [DONE]" not in r.text
    assert httpx.get(server.url + "/healthz", timeout=10).json()["status"] == "ok"


@pytest.mark.parametrize("model", ["device", "smollm2-135m"])
def test_a_stop_sequence_that_cuts_a_json_answer_returns_the_cut_text(setup, model):
    """The caller's stop sequence may end a JSON answer anywhere: like a ``length`` cut, the text
    comes back as cut (finish "stop"), not as a schema error after a retry. "device" is routed,
    a catalog name runs on the engine directly; both must agree."""
    server, _ = setup
    impossible = {"type": "array", "items": {"enum": ["a"]}, "minItems": 2, "maxItems": 2, "uniqueItems": True}
    for stream in (False, True):
        body = {"model": model, "stream": stream, "max_tokens": 16, "stop": ['"a'],
                "messages": [{"role": "user", "content": "Write the letter a twice."}],
                "response_format": {"type": "json_schema", "json_schema": {"name": "letters", "schema": impossible}}}
        with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=60) as r:
            r.read()
        assert r.status_code == 200, r.text
        if stream:
            events = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: {")]
            assert all("error" not in e for e in events) and "data: [DONE]" in r.text
            text = "".join((e["choices"][0]["delta"].get("content") or "") for e in events if e.get("choices"))
            finish = [e["choices"][0]["finish_reason"] for e in events if e.get("choices")][-1]
        else:
            choice = r.json()["choices"][0]
            text, finish = choice["message"]["content"], choice["finish_reason"]
        assert finish == "stop" and text.strip() == "["


def test_a_routed_answer_to_a_request_with_stop_sequences_is_not_judged(setup):
    """An OpenAI-compatible tier reports a stop string's cut as "stop", like a finished answer,
    so the router cannot tell a cut from a broken answer: it returns what came, as the tier sent it."""
    server, provider = setup
    provider.reset()
    provider.faults([{"content": '{"name": "Ada'}])
    body = {"model": "third-party", "max_tokens": 64, "stop": ['"age'],
            "messages": [{"role": "user", "content": "Describe Ada Lovelace as JSON."}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA}}}
    r = httpx.post(server.url + "/v1/chat/completions", json=body, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == '{"name": "Ada'
    assert provider.captured()[0]["body"]["stop"] == ['"age']
