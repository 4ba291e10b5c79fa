"""``tether serve`` end to end: a real server process, the official ``openai`` client, raw httpx for the edges."""

from __future__ import annotations

import json
import re
import threading
import time

import httpx
import pytest
from openai import OpenAI

from tests.gateway.conftest import MAX_STREAMS
from tether.models.engine import DEFAULT_CONTEXT

TINY = "smollm2-135m"


@pytest.fixture(scope="module")
def client(server):
    return OpenAI(base_url=server.url + "/v1", api_key="local", max_retries=0, timeout=120)


def chat(server, body, *, headers=None, timeout=120, **kwargs) -> httpx.Response:
    return httpx.post(server.url + "/v1/chat/completions", json=body, headers=headers, timeout=timeout, **kwargs)


def health(server) -> dict:
    return httpx.get(server.url + "/healthz", timeout=30).json()


def still_serves(server) -> None:
    r = chat(server, {"model": "device", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2})
    assert r.status_code == 200, r.text
    assert health(server)["status"] == "ok"


def error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    return r.json()["error"]


# ------------------------------------------------------------- OpenAI client


def test_plain_call(client):
    raw = client.chat.completions.with_raw_response.create(
        model="auto", max_tokens=8, user="plain-1",
        messages=[{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Name a color."}])
    assert raw.headers["x-tether-tier"] == "device"
    assert raw.headers["x-tether-rule"] == "no_cloud"
    resp = raw.parse()
    assert resp.choices[0].message.content.strip()
    assert resp.usage.completion_tokens >= 1 and resp.usage.prompt_tokens > 0
    route = resp.model_extra["tether"]
    assert route["tier"] == "device" and route["rule"] == "no_cloud" and route["user"] == "plain-1"
    assert set(route) >= {"tier", "rule", "reason", "values", "degraded", "notes"}


def test_streamed_call(client):
    chunks = list(client.chat.completions.create(model=TINY, max_tokens=12, stream=True,
                                                 stream_options={"include_usage": True},
                                                 messages=[{"role": "user", "content": "Count to five."}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert chunks[0].model_extra["tether"]["tier"] == "device"
    assert chunks[0].model_extra["tether"]["rule"] == "requested"
    assert chunks[-1].model_extra["tether"]["tier"] == "device"  # the last chunk says where it ran too
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens >= 1
    assert chunks[-1].choices == [] and all(c.usage is None for c in chunks[:-1])  # OpenAI's usage chunk
    plain = list(client.chat.completions.create(model=TINY, max_tokens=4, stream=True,
                                                messages=[{"role": "user", "content": "Count to five."}]))
    assert all(c.choices and "usage" not in c.model_fields_set for c in plain)  # not asked for: no usage at all


def test_stream_options_need_a_stream(server):
    r = chat(server, {"model": "device", "stream_options": {"include_usage": True},
                      "messages": [{"role": "user", "content": "Hi"}]})
    assert error(r, 400)["param"] == "stream_options"


def test_json_schema_call(client):
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"], "additionalProperties": False}
    resp = client.chat.completions.create(
        model="device", max_tokens=120, temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema}},
        messages=[{"role": "user", "content": "Invent a person: name and age, as JSON."}])
    out = json.loads(resp.choices[0].message.content)
    assert set(out) == {"name", "age"} and isinstance(out["name"], str) and isinstance(out["age"], int)


def test_logprobs(client):
    resp = client.chat.completions.create(model="device", max_tokens=3, logprobs=True, top_logprobs=2,
                                          messages=[{"role": "user", "content": "Hi"}])
    content = resp.choices[0].logprobs.content
    assert content and all(len(t.top_logprobs) == 2 and t.logprob <= 0 for t in content)


def test_logprob_bytes_join_characters_split_across_tokens(client):
    """The grammar forces three cats; each emoji is several byte-level tokens, so a token's own
    text is U+FFFD, and only its bytes rebuild the answer."""
    schema = {"enum": ["🐱🐱🐱"]}
    resp = client.chat.completions.create(
        model="device", max_tokens=24, logprobs=True, messages=[{"role": "user", "content": "Cats?"}],
        response_format={"type": "json_schema", "json_schema": {"name": "cats", "schema": schema}})
    text = resp.choices[0].message.content
    entries = resp.choices[0].logprobs.content
    assert json.loads(text) == "🐱🐱🐱"
    assert any("\ufffd" in t.token for t in entries)  # the split is real
    assert bytes(b for t in entries for b in t.bytes).decode("utf-8") == text


@pytest.mark.parametrize("schema", [{"enum": []}, {"anyOf": []},
                                    {"type": "object", "properties": {"x": {"enum": []}}, "required": ["x"]}])
def test_a_schema_that_allows_nothing_is_a_400_not_a_crash(server, schema):
    """llama.cpp cannot parse the grammar of such a schema; sampling with it used to kill the process."""
    r = chat(server, {"model": "device", "max_tokens": 2, "messages": [{"role": "user", "content": "Hi"}],
                      "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}})
    message = error(r, 400)["message"]
    assert "allows no value" in message or "invalid JSON schema" in message  # {"anyOf": []} fails the meta-schema
    tool = {"type": "function", "function": {"name": "f", "parameters": schema}}
    r = chat(server, {"model": "device", "max_tokens": 2, "messages": [{"role": "user", "content": "Hi"}],
                      "tools": [tool], "tool_choice": "required"})
    assert r.status_code == 400, r.text
    still_serves(server)


def test_what_the_grammar_cannot_force_is_checked_after_and_an_invalid_schema_is_a_400(server):
    """Two distinct items of the only allowed value cannot exist: the grammar writes ["a", "a"],
    the check after catches it, a retry cannot do better, and the caller gets an error, not it."""
    impossible = {"type": "array", "items": {"enum": ["a"]}, "minItems": 2, "maxItems": 2, "uniqueItems": True}
    r = chat(server, {"model": "device", "max_tokens": 16, "messages": [{"role": "user", "content": "Two letters."}],
                      "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": impossible}}})
    err = error(r, 502)
    assert err["code"] == "invalid_output" and "non-unique" in err["message"]
    r = chat(server, {"model": "device", "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}],
                      "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "strnig"}}}})
    assert "invalid JSON schema" in error(r, 400)["message"]
    still_serves(server)


def test_null_means_the_default_as_in_openais_api(client):
    resp = client.chat.completions.create(
        model="device", max_tokens=2, temperature=None, top_p=None, n=None, stream=None, logprobs=None,
        top_logprobs=None, seed=None, stop=None, messages=[{"role": "user", "content": "Hi"}])
    assert resp.choices[0].finish_reason in ("stop", "length") and resp.choices[0].logprobs is None


def test_without_max_tokens_a_long_prompt_may_use_the_rest_of_the_window(server):
    """No budget asked: the prompt is not refused for the default cap it leaves too little room for."""
    window = DEFAULT_CONTEXT
    words = "word " * int(window * 0.85)
    r = chat(server, {"model": "device", "messages": [{"role": "user", "content": words}]})
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["total_tokens"] <= window
    r = chat(server, {"model": "device", "max_tokens": 1024, "messages": [{"role": "user", "content": words}]})
    assert error(r, 400)["param"] == "messages"  # a budget that was asked for still counts


WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                   "additionalProperties": False}}}


def test_tool_call_round_trip_with_the_openai_client(client):
    """The device model picks the call; the client runs it and sends the result back; the answer uses it."""
    messages = [{"role": "user", "content": "What's the weather in Paris?"}]
    raw = client.chat.completions.with_raw_response.create(
        model="auto", max_tokens=30, messages=messages, tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}})
    assert (raw.headers["x-tether-tier"], raw.headers["x-tether-rule"]) == ("device", "tools")
    resp = raw.parse()
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather" and call.id.startswith("call_")
    args = json.loads(call.function.arguments)
    assert set(args) == {"city"} and isinstance(args["city"], str)  # the client's schema held
    assert resp.usage.completion_tokens >= 1

    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 31 degrees."}]
    final = client.chat.completions.create(model="auto", max_tokens=30, messages=messages, tools=[WEATHER_TOOL],
                                           tool_choice="none")
    assert final.choices[0].finish_reason in {"stop", "length"} and final.choices[0].message.content.strip()
    assert final.model_extra["tether"]["rule"] == "tools"  # tool results are personal context: kept local


@pytest.mark.parametrize("stream", [False, True])
def test_max_tokens_bounds_the_tool_decision_too(client, stream):
    """A decision cut by max_tokens is no call: the answer ends with "length", as OpenAI's does."""
    for choice, budget in (("required", 1), ("auto", 2)):
        kwargs = dict(model="device", max_tokens=budget, tools=[WEATHER_TOOL], tool_choice=choice,
                      messages=[{"role": "user", "content": "What's the weather in Paris?"}])
        if stream:
            chunks = list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kwargs))
            finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
            assert finish == ["length"] and not any(c.choices and c.choices[0].delta.tool_calls for c in chunks)
            assert chunks[-1].usage.completion_tokens <= budget
        else:
            resp = client.chat.completions.create(**kwargs)
            assert resp.choices[0].finish_reason == "length" and not resp.choices[0].message.tool_calls
            assert resp.usage.completion_tokens <= budget


def test_streamed_tool_call(client):
    chunks = list(client.chat.completions.create(
        model="device", max_tokens=30, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Weather in Oslo?"}], tools=[WEATHER_TOOL], tool_choice="required"))
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].id.startswith("call_") and deltas[0].function.name == "get_weather"
    arguments = "".join(d.function.arguments or "" for d in deltas)
    assert set(json.loads(arguments)) == {"city"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens >= 1


def test_bad_tool_requests_are_400s_naming_tools(server):
    base = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
    cases = [
        ({**base, "tools": [WEATHER_TOOL], "model": "private-cloud"}, "device tier only"),
        ({**base, "tools": [WEATHER_TOOL], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
         "not among the tools"),
        ({**base, "tools": [{"type": "function", "function": {"name": "bad name"}}]}, "must match"),
        ({**base, "tools": [{"type": "function", "function": {"name": "x" * 65}}]}, "must match"),
        ({**base, "tools": [WEATHER_TOOL, WEATHER_TOOL]}, "share a name"),
        ({"messages": [{"role": "user", "content": "Hi"}, {"role": "tool", "tool_call_id": "call_x", "content": "1"}]},
         "no assistant message asked for"),
        ({**base, "tool_choice": "required"}, "tool_choice needs tools"),
    ]
    for body, message in cases:
        e = error(chat(server, body), 400)
        assert message in e["message"] and e["param"] == "tools", (body, e)
    # A schema llama.cpp cannot turn into a grammar is the caller's mistake, and nothing is fetched.
    remote = {"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"x": {"$ref": "https://example.com/schema.json"}}}}}
    e = error(chat(server, {**base, "tools": [remote], "tool_choice": "required"}), 400)
    assert "cannot build a grammar" in e["message"] and "remote" in e["message"]
    still_serves(server)


def test_models(client):
    ids = {m.id for m in client.models.list()}
    assert {"auto", "device", "private-cloud", "third-party", TINY, "qwen2.5-0.5b", "qwen2.5-1.5b"} <= ids


# ------------------------------------------------------------- other endpoints


def test_feature_proofread(server):
    r = httpx.post(server.url + "/v1/writing/proofread", json={"text": "I has a apple."}, timeout=120)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["original"] == "I has a apple." and body["corrected"].strip() and body["model"] == TINY
    # routed; with no cloud configured it stays on the device, and what still looks wrong is listed
    assert body["tether"]["tier"] == "device" and body["tether"]["rule"] == "no_cloud"
    assert r.headers["x-tether-rule"] == "no_cloud"
    assert all(body["corrected"][f["start"]:f["end"]] == f["text"] for f in body["flagged"])
    r = httpx.post(server.url + "/v1/writing/proofread", json={"text": "I has a apple.", "keep_wording": False},
                   timeout=120)
    assert r.status_code == 200, r.text
    r = httpx.post(server.url + "/v1/writing/proofread", json={"text": "I has a apple.", "keep_wording": "maybe"},
                   timeout=120)
    assert r.status_code == 400 and "keep_wording" in r.text


def test_feature_bad_field_is_named(server):
    r = httpx.post(server.url + "/v1/writing/rewrite", json={"text": "hello", "tone": "angry"}, timeout=30)
    assert error(r, 400)["param"] == "tone"


def test_feature_emoji(server):
    r = httpx.post(server.url + "/v1/emoji", json={"description": "a cat with a crown", "png": False}, timeout=120)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["glyphs"][0]["place"] == "base" and body["svg"].startswith("<svg") and body["png_base64"] is None
    assert body["tether"]["tier"] == "device"
    assert error(httpx.post(server.url + "/v1/emoji", json={"description": "x" * 301}, timeout=30), 400)["param"] \
        == "description"


def test_privacy_scan(server):
    r = httpx.post(server.url + "/v1/privacy/scan", json={"text": "Mail jane.doe@example.com today."}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert any(e["entity_type"] == "EMAIL_ADDRESS" for e in body["entities"])
    assert {t["tier"] for t in body["tiers"]} == {"device", "private_cloud", "third_party"}
    assert "jane.doe@example.com" not in next(t for t in body["tiers"] if t["tier"] == "third_party")["payload"]


def test_the_scan_and_healthz_say_no_cloud_is_configured(server):
    """The playground asks for consent only for a tier that exists: the scan (which it reads before
    asking) and /healthz (which it reads on load) say which tiers this gateway has."""
    none = {"device": True, "private_cloud": False, "third_party": False}
    r = httpx.post(server.url + "/v1/privacy/scan", json={"text": "Mail jane.doe@example.com today."}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["tiers_configured"] == none
    assert health(server)["tiers_configured"] == none


def test_retrieve_one_model(client):
    assert client.models.retrieve("auto").id == "auto"
    assert client.models.retrieve(TINY).id == TINY
    assert client.models.retrieve("private_cloud").id == "private_cloud"  # chat accepts both spellings
    from openai import NotFoundError

    with pytest.raises(NotFoundError):
        client.models.retrieve("gpt-9")


def test_openapi_covers_every_route(server):
    from tether.gateway.app import create_app

    doc = httpx.get(server.url + "/openapi.json", timeout=30).json()
    assert doc["openapi"].startswith("3.1")
    app = create_app(prewarm=False)
    for route in app.routes:
        for method in (getattr(route, "methods", None) or set()) - {"HEAD"}:  # a Mount (static assets) has none
            path = re.sub(r":\w+}", "}", route.path)  # OpenAPI has no convertors ({model_id:path})
            assert method.lower() in doc["paths"][path], (route.path, method)
    chat_op = doc["paths"]["/v1/chat/completions"]["post"]
    assert "5XX" in chat_op["responses"] and chat_op["parameters"][0]["name"] == "X-Tether-Consent"
    refs = json.dumps(doc).count("#/components/schemas/")
    assert refs and all(k in doc["components"]["schemas"] for k in ("ChatRequest", "ProofreadBody", "Error"))
    proofread = doc["paths"]["/v1/writing/proofread"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert proofread["$ref"].endswith("/ProofreadBody")
    assert "keep_wording" in doc["components"]["schemas"]["ProofreadBody"]["properties"]


def test_route_recent_has_no_content(server):
    secret = "zebra-quasar-7731"
    assert chat(server, {"model": "auto", "max_tokens": 2,
                         "messages": [{"role": "user", "content": f"Repeat {secret}"}]}).status_code == 200
    r = httpx.get(server.url + "/v1/route/recent", timeout=30)
    entries = r.json()["data"]
    assert entries and entries[0]["feature"] == "chat" and entries[0]["tier"] == "device"
    assert len(entries) <= 50
    assert secret not in r.text and "Repeat" not in r.text


def test_health(server):
    h = health(server)
    assert h["status"] == "ok" and h["device_model"] == TINY


# ------------------------------------------------------------- robustness


def test_malformed_json(server):
    r = httpx.post(server.url + "/v1/chat/completions", content=b'{"model": "auto", "messages": [',
                   headers={"content-type": "application/json"}, timeout=30)
    assert error(r, 400)["code"] == "invalid_json"
    still_serves(server)


def test_unknown_paths_and_methods_are_json_errors(server):
    err = error(httpx.post(server.url + "/v1/completions", json={"prompt": "Hi"}, timeout=30), 404)
    assert err == {"message": "POST /v1/completions: Not Found; this gateway does not serve the legacy Completions "
                              "API: use POST /v1/chat/completions", "type": "invalid_request_error",
                   "code": "not_found", "param": None}
    r = httpx.get(server.url + "/v1/chat/completions", timeout=30)
    assert error(r, 405)["code"] == "method_not_allowed" and r.headers["allow"] == "POST"
    still_serves(server)


def test_unpaired_surrogates_and_deep_nesting_are_400s(server):
    body = b'{"model": "device", "messages": [{"role": "user", "content": "hi \\ud800 there"}]}'
    r = httpx.post(server.url + "/v1/chat/completions", content=body, headers={"content-type": "application/json"},
                   timeout=30)
    err = error(r, 400)
    assert err["code"] == "invalid_json" and "unpaired surrogate" in err["message"]
    deep = b"[" * 100_000 + b"]" * 100_000
    r = httpx.post(server.url + "/v1/privacy/scan", content=deep, headers={"content-type": "application/json"},
                   timeout=30)
    assert error(r, 400)["code"] == "invalid_json"
    still_serves(server)


def test_a_body_in_utf16_is_refused_not_read_past_the_surrogate_check(server):
    """json.loads takes UTF-16 bytes; a lone surrogate escaped in it once reached the grammar (a 500)."""
    body = {"model": "device", "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"enum": ["a\ud800"]}}}}
    text = json.dumps(body)  # ASCII, the surrogate as the escape \ud800
    for encoding in ("utf-16", "utf-32"):
        r = httpx.post(server.url + "/v1/chat/completions", content=text.encode(encoding),
                       headers={"content-type": "application/json"}, timeout=30)
        err = error(r, 400)
        assert err["code"] == "invalid_json" and "UTF-8" in err["message"]
    r = httpx.post(server.url + "/v1/chat/completions", content=b"\xef\xbb\xbf" + json.dumps({**body, "response_format": {
        "type": "json_schema", "json_schema": {"name": "x", "schema": {"enum": ["a"]}}}}).encode(),
        headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code == 200, r.text  # a UTF-8 byte-order mark is ignored, as RFC 8259 allows
    still_serves(server)


def test_nesting_past_the_recursion_limit_inside_valid_json_is_a_400(server):
    deep_schema: dict = {"type": "string"}
    for _ in range(150):
        deep_schema = {"type": "array", "items": deep_schema}
    r = chat(server, {"model": "device", "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}],
                      "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": deep_schema}}})
    assert "nested too deeply" in error(r, 400)["message"]
    arguments = '{"x":' + "[" * 2000 + "]" * 2000 + "}"  # valid JSON, past Python's recursion limit
    r = chat(server, {"model": "device", "max_tokens": 2, "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
        {"role": "user", "content": "and?"}]})
    assert "function.arguments must be a JSON object string" in error(r, 400)["message"]
    still_serves(server)


def test_unknown_model(server):
    r = chat(server, {"model": "gpt-17", "messages": [{"role": "user", "content": "Hi"}]})
    err = error(r, 404)
    assert err["code"] == "model_not_found" and err["param"] == "model"
    still_serves(server)


def test_body_over_limit_declared(server):
    big = {"model": "auto", "messages": [{"role": "user", "content": "x" * 1_100_000}]}
    assert error(chat(server, big), 413)["code"] == "request_too_large"
    still_serves(server)


def test_body_over_limit_streamed_without_length(server):
    def body():  # chunked: no Content-Length to trust
        yield b'{"model": "auto", "messages": [{"role": "user", "content": "'
        for _ in range(24):
            yield b"y" * 50_000
        yield b'"}]}'

    r = httpx.post(server.url + "/v1/chat/completions", content=body(),
                   headers={"content-type": "application/json"}, timeout=60)
    assert "content-length" not in r.request.headers
    assert error(r, 413)["code"] == "request_too_large"
    still_serves(server)


def test_wrong_content_type(server):
    r = httpx.post(server.url + "/v1/chat/completions", content=b"model=auto",
                   headers={"content-type": "application/x-www-form-urlencoded"}, timeout=30)
    assert error(r, 415)["code"] == "unsupported_media_type"
    still_serves(server)


@pytest.mark.parametrize("model", ["auto", "device"])
def test_a_request_without_user_text_is_answered_as_openais_is(server, model):
    """A system message alone, or a conversation whose last user message is empty, is a request OpenAI answers."""
    for messages in ([{"role": "system", "content": "Say hello."}],
                     [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Name a color."},
                      {"role": "assistant", "content": "Blue."}, {"role": "user", "content": ""}]):
        r = chat(server, {"model": model, "max_tokens": 8, "messages": messages})
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["finish_reason"] in ("stop", "length")


@pytest.mark.parametrize("body, field", [
    ({"model": "auto", "messages": []}, "messages"),
    ({"model": "auto", "messages": [{"role": "user", "content": "Hi"}], "temperature": 7}, "temperature"),
    ({"model": "auto", "messages": [{"role": "wizard", "content": "Hi"}]}, "messages"),
    ({"model": "auto", "messages": [{"role": "system", "content": " "}, {"role": "user", "content": ""}]}, "messages"),
    ({"model": "auto", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 0}, "max_tokens"),
    ({"model": "auto", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": "4"}, "max_tokens"),
    ({"model": "auto", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": True}, "max_tokens"),
    ({"model": "auto", "messages": [{"role": "user", "content": "Hi"}], "stream": "yes"}, "stream"),
    ({"model": "auto", "messages": [{"role": "user", "content": "Hi"}], "presence_penalty": 9}, "presence_penalty"),
    ({"model": "auto", "messages": [{"role": "user", "content": "Hi"}], "logit_bias": "x"}, "logit_bias"),
    ({"model": "auto", "messages": [{"role": "user", "content": "Hi"}], "top_logprobs": 2}, "top_logprobs"),
    ({"model": "auto", "messages": [{"role": "user", "content": "Hi"}], "stream": True,
      "stream_options": {"include_usage": "no"}}, "stream_options.include_usage"),
    ({"model": "auto", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": "data:,"}}]}]},
     "messages.0.content.1.type"),
    ({"model": "auto", "messages": [{"role": "user", "content": "Hi"}], "tools": [WEATHER_TOOL],
      "tool_choice": {"type": "function", "function": "get_weather"}}, "tool_choice.function"),
    ({"model": "auto", "messages": [{"role": "user", "content": "Hi"}], "tools": [WEATHER_TOOL],
      "tool_choice": {"type": "function", "function": {"name": ["get_weather"]}}}, "tool_choice.function.name"),
])
def test_bad_fields_are_named(server, body, field):
    err = error(chat(server, body), 400)
    assert field in err["message"] and err["param"] and err["param"].startswith(field)
    still_serves(server)


def test_without_max_tokens_a_long_prompt_with_tools_may_use_the_rest_of_the_window(server):
    """The tool decision's own budget shrinks like an answer's: no budget asked is never stricter
    than a small one. The window cut the decision or it was made; either way no 400."""
    words = "word " * int(DEFAULT_CONTEXT * 0.9)  # leaves a few hundred tokens: less than the decision's 512
    # "required" and a short city: the call is the whole answer (an "auto" one may write hundreds of tokens)
    short = {"type": "function", "function": {**WEATHER_TOOL["function"], "parameters": {
        "type": "object", "properties": {"city": {"type": "string", "maxLength": 12}}, "required": ["city"],
        "additionalProperties": False}}}
    for stream in (False, True):
        r = chat(server, {"model": "device", "messages": [{"role": "user", "content": words}], "tools": [short],
                          "tool_choice": "required", "stream": stream})
        assert r.status_code == 200, r.text
    r = chat(server, {"model": "device", "max_tokens": 1024, "tools": [WEATHER_TOOL],
                      "messages": [{"role": "user", "content": words}]})
    assert error(r, 400)["code"] == "context_length_exceeded"  # a budget that was asked for still counts
    still_serves(server)


def test_context_length_exceeded(server):
    r = chat(server, {"model": "device", "max_tokens": 16,
                      "messages": [{"role": "user", "content": "word " * 6000}]})
    assert error(r, 400)["code"] == "context_length_exceeded"
    r = chat(server, {"model": "device", "max_tokens": 16, "stream": True,
                      "messages": [{"role": "user", "content": "word " * 6000}]})
    assert error(r, 400)["code"] == "context_length_exceeded"
    assert health(server)["streams_open"] == 0
    still_serves(server)


def test_a_rebound_host_name_is_refused_before_anything_runs(server):
    """DNS rebinding: a page on evil.example re-pointed at 127.0.0.1 sends Host: evil.example."""
    port = server.url.rsplit(":", 1)[1]
    body = {"model": "device", "max_tokens": 2, "messages": [{"role": "user", "content": "Hi"}]}
    for host in (f"rebind.attacker.example:{port}", "evil.example", "127.0.0.1.evil.example", ""):
        r = chat(server, body, headers={"Host": host, "X-Tether-Consent": "yes"})
        assert error(r, 403)["code"] == "host_not_allowed", host
        assert httpx.get(server.url + "/v1/route/recent", headers={"Host": host}, timeout=30).status_code == 403
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "app.localhost", "[::1]"):
        assert httpx.get(server.url + "/healthz", headers={"Host": host}, timeout=30).status_code == 200, host
    still_serves(server)


def test_browser_requests_from_another_origin_are_refused(server):
    port = server.url.rsplit(":", 1)[1]
    body = {"model": "device", "max_tokens": 2, "messages": [{"role": "user", "content": "Hi"}]}
    for origin in ("http://evil.example", f"http://localhost:{port}", f"https://127.0.0.1:{port}",
                   "http://127.0.0.1:1", "null"):
        assert error(chat(server, body, headers={"Origin": origin}), 403)["code"] == "origin_not_allowed", origin
    preflight = httpx.options(server.url + "/v1/chat/completions", timeout=30, headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 403 and "access-control-allow-origin" not in preflight.headers
    assert chat(server, body, headers={"Origin": server.url}).status_code == 200  # the playground's own calls


def test_consent_header(server):
    body = {"model": "third-party", "messages": [{"role": "user", "content": "Hi"}]}
    assert error(chat(server, body, headers={"X-Tether-Consent": "maybe"}), 400)["param"] == "X-Tether-Consent"
    assert error(chat(server, body, headers={"X-Tether-Consent": "yes"}), 404)["code"] == "tier_not_configured"
    still_serves(server)


def _long_stream(server) -> dict:
    return {"model": "device", "stream": True, "max_tokens": 1000, "temperature": 0,
            "messages": [{"role": "user", "content": "Write a very long story about a lighthouse keeper."}]}


def _wait(pred, timeout=20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_too_many_streams(server):
    assert MAX_STREAMS == 2
    # Streams closed by earlier tests (or the browser tests) are released asynchronously; start from none.
    assert _wait(lambda: health(server)["streams_open"] == 0), health(server)
    waited: list[int] = []
    with httpx.Client(timeout=60) as c, c.stream("POST", server.url + "/v1/chat/completions",
                                                  json=_long_stream(server)) as first:
        assert first.status_code == 200
        # Keep the line iterator alive: a discarded one closes the response when the GC collects it,
        # and the server then (rightly) cancels this stream and frees its slot.
        lines = first.iter_lines()
        next(lines)
        waiting = threading.Thread(
            target=lambda: waited.append(chat(server, _long_stream(server) | {"max_tokens": 4}).status_code))
        waiting.start()
        assert _wait(lambda: health(server)["streams_open"] == 2), health(server)
        r = chat(server, _long_stream(server))
        assert r.status_code == 429, (health(server), r.text[:300])
        assert error(r, 429)["code"] == "rate_limit_exceeded"
    waiting.join(60)
    assert waited == [200]  # the queued stream was admitted and served, not turned away
    assert _wait(lambda: health(server)["streams_open"] == 0)
    still_serves(server)


def test_a_queued_stream_whose_client_leaves_gives_back_its_slot_at_once(server):
    """A stream waiting for the model behind another must not hold its slot (429 for others) or
    generate its first chunk for nobody once its client has given up."""
    assert _wait(lambda: health(server)["streams_open"] == 0), health(server)
    before = health(server)
    with httpx.Client(timeout=60) as c, c.stream("POST", server.url + "/v1/chat/completions",
                                                  json=_long_stream(server)) as first:
        assert first.status_code == 200
        lines = first.iter_lines()
        next(lines)
        with pytest.raises(httpx.ReadTimeout):  # queued behind the first: no headers yet, and it gives up
            chat(server, _long_stream(server), timeout=httpx.Timeout(60, read=1.5))
        assert _wait(lambda: health(server)["streams_open"] == 1, timeout=5), health(server)
        now = health(server)
        assert now["cancelled"] == before["cancelled"] + 1
        next(lines)  # the first stream is still being generated: the slot came back before it ended
    assert _wait(lambda: health(server)["streams_open"] == 0)
    still_serves(server)


def test_disconnect_cancels_generation(server):
    before = health(server)["cancelled"]
    with httpx.Client(timeout=60) as c:
        with c.stream("POST", server.url + "/v1/chat/completions", json=_long_stream(server)) as r:
            assert r.status_code == 200
            lines = r.iter_lines()
            got = [line for line in (next(lines) for _ in range(6)) if line.startswith("data:")]
            assert len(got) >= 2
        # leaving the block closes the connection mid-stream
    assert _wait(lambda: health(server)["cancelled"] == before + 1, timeout=10)
    assert _wait(lambda: health(server)["streams_open"] == 0, timeout=10)
    start = time.monotonic()
    still_serves(server)
    assert time.monotonic() - start < 10  # the 1000-token generation did not keep running


@pytest.mark.parametrize("path, body", [
    ("/v1/chat/completions", {**_long_stream(None), "stream": False}),
    ("/v1/writing/rewrite", {"tone": "friendly", "text": "Write this as a very long, detailed story: " + "the lighthouse "
                             "keeper climbed the stairs and watched the sea. " * 40}),
])
def test_a_client_that_gives_up_on_a_plain_request_cancels_it(server, path, body):
    """Not streamed: nobody reads the answer once the client has gone, so the model must not keep generating."""
    before = health(server)["cancelled"]
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.url + path, json=body, timeout=httpx.Timeout(60, read=1.5))
    assert _wait(lambda: health(server)["cancelled"] == before + 1, timeout=10)
    start = time.monotonic()
    still_serves(server)
    assert time.monotonic() - start < 10  # the long generation did not keep running


def test_a_stream_that_fails_still_sends_what_came_before():
    from concurrent.futures import ThreadPoolExecutor

    from tether.errors import GenerationError
    from tether.gateway.chat import _Stream
    from tether.gateway.core import Gateway
    from tether.routing.router import Router

    def items():
        yield {"n": 1}
        yield {"n": 2}
        raise GenerationError("the engine broke")

    async def finish(last):
        return None

    async def frames():
        stream = _Stream(Gateway(Router()), ThreadPoolExecutor(1), items(), {"n": 0}, threading.Event(), finish)
        return [f async for f in stream.frames()]

    from tests.conftest import run_async

    sent = [json.loads(f[len(b"data: "):]) for f in run_async(frames())]
    assert sent[:3] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert sent[3]["error"]["message"] == "the engine broke" and len(sent) == 4


def test_a_model_that_does_not_fit_in_free_memory_is_a_503_not_a_crash(tmp_path):
    """A client may name any catalog model; one that would not fit is refused before loading (fresh process,
    so nothing is loaded yet; the app reports 1 MiB free through the router's device state)."""
    import subprocess
    import sys

    script = f"""
import json
from starlette.testclient import TestClient
from tether.gateway import create_app
from tether.routing import Router
from tether.routing.config import RouterConfig
from tether.routing.ledger import Ledger
from tether.routing.state import DeviceState

router = Router(RouterConfig(device_model="{TINY}"), state=DeviceState(memory_available_mb=1),
                ledger=Ledger({str(tmp_path / "l.sqlite")!r}))
with TestClient(create_app(router, prewarm=False), base_url="http://127.0.0.1") as client:
    r = client.post("/v1/writing/proofread", json={{"text": "Their here.", "model": "{TINY}"}})
    print(json.dumps([r.status_code, r.json()]))
    r = client.post("/v1/chat/completions", json={{"model": "{TINY}", "messages": [{{"role": "user", "content": "Hi"}}]}})
    print(json.dumps([r.status_code, r.json()]))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    for line in out.stdout.splitlines():
        status, body = json.loads(line)
        assert status == 503 and body["error"]["code"] == "insufficient_memory", body
        assert "MiB to load" in body["error"]["message"]


# ------------------------------------------------------------- sampling fields and edges


def test_a_seeded_request_leaves_later_answers_random(client):
    ask = dict(model="device", max_tokens=8, temperature=1.0, messages=[{"role": "user", "content": "One random word."}])
    client.chat.completions.create(seed=42, **ask)
    assert len({client.chat.completions.create(**ask).choices[0].message.content for _ in range(4)}) >= 2


def test_penalties_logit_bias_and_top_p_zero_reach_the_model(client):
    ask = dict(model="device", max_tokens=12, temperature=0, messages=[{"role": "user", "content": "Say bye bye bye bye."}])
    plain = client.chat.completions.create(**ask).choices[0].message.content
    assert client.chat.completions.create(frequency_penalty=2, presence_penalty=2, **ask).choices[0].message.content != plain
    forced = client.chat.completions.create(logit_bias={"1000": 100}, logprobs=True, **{**ask, "max_tokens": 3})
    assert len({t.token for t in forced.choices[0].logprobs.content}) == 1
    assert forced.model_extra["tether"]["tier"] == "device"
    random_ask = {**ask, "temperature": 1.5}
    assert client.chat.completions.create(top_p=0, **random_ask).choices[0].message.content == plain


def test_a_max_tokens_over_the_cap_says_it_was_cut(server):
    r = chat(server, {"model": "device", "max_tokens": 5000, "messages": [{"role": "user", "content": "Hi"}]})
    assert r.status_code == 200 and "over this gateway's cap" in r.json()["tether"]["notes"][0]


def test_legacy_functions_and_logprobs_off_the_device_are_400s(server):
    msgs = [{"role": "user", "content": "Hi"}]
    err = error(chat(server, {"model": "device", "messages": msgs, "functions": [{"name": "f", "parameters": {}}]}), 400)
    assert err["param"] == "functions" and "send tools" in err["message"]
    err = error(chat(server, {"model": "third-party", "messages": msgs, "logprobs": True}), 400)
    assert err["param"] == "logprobs"
    r = chat(server, {"model": "auto", "messages": msgs, "logprobs": True, "max_tokens": 2})
    assert r.json()["tether"]["rule"] == "logprobs" and r.json()["choices"][0]["logprobs"]["content"]


def test_a_base_url_without_v1_is_told_so(server):
    err = error(httpx.post(server.url + "/chat/completions", json={}, timeout=30), 404)
    assert "did you mean /v1/chat/completions" in err["message"]


# ------------------------------------------------------------- n > 1


def test_n_answers_are_the_seeded_single_answers_in_turn(client):
    ask = dict(model="device", max_tokens=12, temperature=1.2, seed=41,
               messages=[{"role": "user", "content": "Suggest a name for a pet turtle."}])
    several = client.chat.completions.create(n=3, **ask)
    singles = [client.chat.completions.create(**{**ask, "seed": 41 + i}) for i in range(3)]
    assert [c.index for c in several.choices] == [0, 1, 2]
    assert [c.message.content for c in several.choices] == [s.choices[0].message.content for s in singles]
    assert len({c.message.content for c in several.choices}) > 1  # seed + i: not three copies
    assert several.usage.prompt_tokens == singles[0].usage.prompt_tokens  # the prompt counts once
    assert several.usage.completion_tokens == sum(s.usage.completion_tokens for s in singles)


def test_n_streamed_gives_each_choice_in_turn_and_one_usage_chunk(client):
    ask = dict(model="device", max_tokens=10, temperature=1.2, seed=7,
               messages=[{"role": "user", "content": "Name a fruit."}])
    plain = client.chat.completions.create(n=2, **ask)
    chunks = list(client.chat.completions.create(n=2, stream=True, stream_options={"include_usage": True}, **ask))
    order = [c.choices[0].index for c in chunks if c.choices]
    assert order == sorted(order) and set(order) == {0, 1}
    texts = {i: "".join(c.choices[0].delta.content or "" for c in chunks if c.choices and c.choices[0].index == i)
             for i in (0, 1)}
    assert texts == {i: plain.choices[i].message.content for i in (0, 1)}
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finishes) == 2 and len({c.id for c in chunks}) == 1
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == 1 and not chunks[-1].choices
    assert usage[0].completion_tokens == plain.usage.completion_tokens


def test_n_over_one_routes_to_the_device_and_is_bounded(server):
    msgs = [{"role": "user", "content": "Hi"}]
    r = chat(server, {"model": "auto", "messages": msgs, "n": 2, "max_tokens": 2})
    assert r.status_code == 200, r.text
    assert r.json()["tether"]["rule"] == "n" and len(r.json()["choices"]) == 2
    assert error(chat(server, {"model": "private-cloud", "messages": msgs, "n": 2}), 400)["param"] == "n"
    err = error(chat(server, {"model": "device", "messages": msgs, "n": 9}), 400)
    assert err["param"] == "n" and "8" in err["message"]
    err = error(chat(server, {"model": "device", "messages": msgs, "n": 0}), 400)
    assert err["param"] == "n"


# ------------------------------------------------------------- OpenAI details apps rely on


@pytest.mark.parametrize("model", ["auto", "device"])
def test_a_conversation_of_assistant_messages_only_is_answered(server, model):
    """OpenAI answers any non-empty conversation, e.g. one that opens with the app's own greeting."""
    r = chat(server, {"model": model, "max_tokens": 4,
                      "messages": [{"role": "assistant", "content": "Hello! How can I help you today?"}]})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["finish_reason"] in ("stop", "length")


def test_device_answers_carry_a_system_fingerprint_for_seeded_calls(client):
    """The same seed and fingerprint give the same answer; every chunk of a stream carries it."""
    ask = dict(model="device", max_tokens=6, temperature=1.0, seed=5,
               messages=[{"role": "user", "content": "One random word."}])
    one, two = client.chat.completions.create(**ask), client.chat.completions.create(**ask)
    assert one.system_fingerprint and one.system_fingerprint.startswith("fp_")
    assert one.system_fingerprint == two.system_fingerprint
    assert one.choices[0].message.content == two.choices[0].message.content
    chunks = list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **ask))
    assert {c.system_fingerprint for c in chunks} == {one.system_fingerprint}


@pytest.mark.parametrize("extra, param", [
    ({"response_format": {"type": "xml"}}, "response_format"),
    ({"response_format": {"type": "json_schema"}}, "response_format"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "strnig"}}}},
     "response_format"),
    ({"logit_bias": {"1000": 500}}, "logit_bias"),
    ({"logit_bias": {"word": 5}}, "logit_bias"),
])
def test_a_bad_response_format_or_logit_bias_names_its_param(client, extra, param):
    from openai import BadRequestError

    with pytest.raises(BadRequestError) as caught:
        client.chat.completions.create(model="device", max_tokens=2, messages=[{"role": "user", "content": "Hi"}],
                                       extra_body=extra)
    assert caught.value.param == param and caught.value.code == "invalid_request", caught.value.body


@pytest.mark.parametrize("path, api", [("/v1/completions", "Completions"), ("/v1/responses", "Responses"),
                                       ("/completions", "Completions")])  # not "did you mean /v1/completions?"
def test_an_api_this_gateway_does_not_serve_points_to_chat_completions(server, path, api):
    err = error(httpx.post(server.url + path, json={"model": "auto", "prompt": "Hi", "input": "Hi"}, timeout=30), 404)
    assert api in err["message"] and "POST /v1/chat/completions" in err["message"]


def test_a_sum_is_worked_out_exactly_not_by_the_model(server, client):
    """The 0.5B says 17 times 23 is 411: a chat turn that is a sum and nothing else is computed."""
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "What is 17 times 23?"}])
    out = raw.parse()
    assert out.choices[0].message.content == "17 times 23 = 391" and out.choices[0].finish_reason == "stop"
    assert raw.headers["X-Tether-Rule"] == "calculator" and out.model_extra["tether"]["tier"] == "device"
    assert out.usage.completion_tokens == 0
    stream = client.chat.completions.create(model="device", stream=True, stream_options={"include_usage": True},
                                            messages=[{"role": "user", "content": "what's 15% of 80"}])
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "15% of 80 = 12"
    assert chunks[-1].usage.total_tokens == 0 and chunks[0].model_extra["tether"]["rule"] == "calculator"
    for other in (dict(model="auto", messages=[{"role": "user", "content": "What is 2 + 2 in binary?"}], max_tokens=4),
                  dict(model="smollm2-135m", messages=[{"role": "user", "content": "What is 17 times 23?"}], max_tokens=4),
                  dict(model="auto", messages=[{"role": "user", "content": "What is 17 times 23?"}], max_tokens=4,
                       logprobs=True)):
        r = client.chat.completions.with_raw_response.create(**other)
        assert r.headers["X-Tether-Rule"] != "calculator", other  # more than a sum, a model named, logprobs
