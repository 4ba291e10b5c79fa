"""A cascade behind the gateway: a real ``tether serve`` with a router config, and a real
OpenAI-compatible provider on loopback that records what reached it."""

from __future__ import annotations

import json

import httpx
import pytest
from openai import OpenAI

from tests.gateway.conftest import behind_a_provider, start_server, stop_server
from tests.routing.conftest import start_provider, stop_provider
from tether.models.engine import DEFAULT_CONTEXT


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    # cascade_min_logprob 0.0: every device answer counts as unsure, so escalation is certain.
    with behind_a_provider(tmp_path_factory.mktemp("cascade"), {
            "consent": "always", "cascade": ["chat", "notifications", "summarize", "rewrite", "replies", "proofread"],
            "cascade_min_logprob": 0.0, "cascade_escalate_fraction": 0,
            "third_party": {"use_for_cloud": True, "retries": 0}}, "--max-streams", "2") as both:
        yield both


def test_a_plain_call_is_answered_on_the_device_then_escalated(setup):
    server, provider = setup
    provider.reset()
    client = OpenAI(base_url=server.url + "/v1", api_key="local", max_retries=0, timeout=120)
    raw = client.chat.completions.with_raw_response.create(
        model="auto", max_tokens=8, messages=[{"role": "user", "content": "Say hello to Maria Gonzalez."}])
    assert raw.headers["x-tether-rule"] == "cascade" and raw.headers["x-tether-tier"] == "third_party"
    route = raw.parse().model_extra["tether"]
    assert route["escalated"] is True and route["notes"][0].startswith("cascade: device answer escalated")
    sent = provider.captured()
    assert len(sent) == 1
    assert "Maria Gonzalez" not in json.dumps(sent[0]["body"])  # escalation goes through the privacy guard too


def test_a_stream_is_not_cascaded(setup):
    server, provider = setup
    provider.reset()
    with httpx.stream("POST", server.url + "/v1/chat/completions", timeout=120, json={
            "model": "auto", "stream": True, "max_tokens": 8, "messages": [{"role": "user", "content": "Hi"}]}) as r:
        assert r.status_code == 200
        assert r.headers["x-tether-rule"] == "difficulty"  # text once shown cannot be taken back
        body = "".join(r.iter_text())
    assert "data: [DONE]" in body


def test_a_stream_off_the_device_keeps_the_schema_the_finish_reason_and_the_model(setup):
    server, provider = setup
    provider.reset()
    client = OpenAI(base_url=server.url + "/v1", api_key="local", max_retries=0, timeout=120)
    chunks = list(client.chat.completions.create(
        model="third-party", stream=True, max_tokens=3, stream_options={"include_usage": True},
        response_format={"type": "json_object"},
        messages=[{"role": "user", "content": "Please repeat the words one two three four five."}]))
    sent = provider.captured()[0]["body"]
    assert sent["stream"] is True and sent["response_format"]["type"] == "json_schema"  # not dropped
    ends = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in ends] == ["length"]  # as the provider said, not "stop"
    assert ends[0].model == "gpt-test" and ends[0].model_extra["tether"]["tier"] == "third_party"
    # OpenAI's shape: usage null on every chunk, then one chunk with no choices and the usage
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 3
    # the provider's own count (it counts words of every message it got), not a length estimate
    words = sum(len(str(m["content"]).split()) for m in sent["messages"])
    assert chunks[-1].usage.prompt_tokens == words


def test_an_untagged_word_problem_is_cascaded_as_math(tmp_path):
    """The gateway's requests carry no kind: the router tells the word problem from chat and, for
    math, weighs a second sampled device answer whenever it could change the decision."""
    provider = start_provider(tmp_path)
    config = tmp_path / "router.json"
    config.write_text(json.dumps({
        "consent": "always", "cascade": ["chat"], "cascade_escalate_fraction": 0.35, "cascade_samples": 1,
        "third_party": {"base_url": provider.url, "model": "gpt-test", "use_for_cloud": True, "retries": 0}}))
    server = start_server(tmp_path, router_config=config)
    try:
        client = OpenAI(base_url=server.url + "/v1", api_key="local", max_retries=0, timeout=120)
        out = client.chat.completions.create(model="auto", max_tokens=16, messages=[
            {"role": "user", "content": "Sam has 3 boxes with 12 pens in each. How many pens does he have?"}])
        route = out.model_extra["tether"]
        values = route["values"]
        assert route["rule"] == "cascade" and values["kind"] == "gsm8k (inferred)"
        assert "escalation_score" in values and values["samples"] in (0, 1)
        if values["samples"] == 1:
            assert values["samples_disagree"] in (0.0, 1.0)
        else:
            assert values["samples_skipped"] == "no sample could change the decision"
        assert route["escalated"] == (route["tier"] == "third_party") and len(provider.captured()) == route["escalated"]
        chat = client.chat.completions.create(model="auto", max_tokens=8,
                                              messages=[{"role": "user", "content": "Hi, how are you?"}])
        values = chat.model_extra["tether"]["values"]
        assert values["kind"] == "chat (inferred)" and "samples" not in values
    finally:
        stop_server(server)
        stop_provider(provider)


def test_a_third_party_stream_arrives_whole_and_its_system_message_is_guarded(setup):
    server, provider = setup
    provider.reset()
    with httpx.stream("POST", server.url + "/v1/chat/completions", timeout=120, headers={"X-Tether-Consent": "yes"},
                      json={"model": "third-party", "stream": True, "max_tokens": 16, "messages": [
                          {"role": "system", "content": "The user is Maria Gonzalez, SSN 536-22-8741."},
                          {"role": "user", "content": "Say hello to me."}]}) as r:
        assert r.status_code == 200 and r.headers["x-tether-tier"] == "third_party"
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks).strip()
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["tether"]["tier"] == "third_party"
    sent = json.dumps(provider.captured())
    assert "Maria" not in sent and "536-22-8741" not in sent and "<PERSON_1>" in sent


def test_a_routed_call_keeps_the_callers_sampling_and_reports_a_cut_answer(setup):
    server, provider = setup
    provider.reset()
    r = httpx.post(server.url + "/v1/chat/completions", timeout=120, headers={"X-Tether-Consent": "yes"}, json={
        "model": "third-party", "max_tokens": 3, "temperature": 0.5, "seed": 7, "stop": "END",
        "messages": [{"role": "user", "content": "Please repeat these seven words back to me."}]})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["finish_reason"] == "length"  # the provider cut it at max_tokens
    sent = provider.captured()[0]["body"]
    assert (sent["max_tokens"], sent["temperature"], sent["seed"], sent["stop"]) == (3, 0.5, 7, ["END"])


def test_concurrent_streams_that_fall_back_to_the_device_all_finish(setup):
    """Each routed stream has its own thread: device fallbacks (which hold the model while suspended)
    must neither trip over one another nor be left holding it when the client leaves."""
    import threading

    server, provider = setup
    provider.reset()
    provider.faults([500] * 8)  # the provider fails every attempt (retries 0): each stream falls back
    results: list[str] = []

    def one(i: int) -> None:
        with httpx.stream("POST", server.url + "/v1/chat/completions", timeout=120, headers={"X-Tether-Consent": "yes"},
                          json={"model": "third-party", "stream": True, "max_tokens": 6,
                                "messages": [{"role": "user", "content": f"Say hello number {i}."}]}) as r:
            results.append("".join(r.iter_text()))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 2
    for body in results:
        assert '"error"' not in body and "data: [DONE]" in body, body[-400:]
        assert '"degraded": true' in body
    provider.faults([])
    with httpx.stream("POST", server.url + "/v1/chat/completions", timeout=120, json={  # the model was released
            "model": "device", "stream": True, "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]}) as r:
        assert r.status_code == 200 and "data: [DONE]" in "".join(r.iter_text())


def test_without_degrading_a_failed_stream_is_an_http_error_and_a_prompt_that_fits_is_not_refused(tmp_path):
    """A stream that fails before its first text gets the status a plain request gets (a client
    can retry it); a long prompt with no max_tokens is not sent away for a budget nobody asked for."""
    provider = start_provider(tmp_path)
    config = tmp_path / "router.json"
    config.write_text(json.dumps({
        "consent": "ask", "allow_degraded": False, "cascade": [],
        "third_party": {"base_url": provider.url, "model": "gpt-test", "retries": 0}}))
    server = start_server(tmp_path, router_config=config)
    try:
        provider.faults([500] * 4)
        with httpx.stream("POST", server.url + "/v1/chat/completions", timeout=120,
                          headers={"X-Tether-Consent": "yes"},
                          json={"model": "third-party", "stream": True, "max_tokens": 8,
                                "messages": [{"role": "user", "content": "Hi"}]}) as r:
            r.read()
        assert r.status_code == 503 and r.json()["error"]["code"] == "tier_unavailable"
        provider.faults([])
        words = "word " * int(DEFAULT_CONTEXT * 0.85)  # fits the window, not beside a 1,024-token default budget
        r = httpx.post(server.url + "/v1/chat/completions", timeout=300,
                       json={"model": "auto", "messages": [{"role": "user", "content": words}]})
        assert r.status_code == 200, r.text
        assert r.json()["tether"]["tier"] == "device" and r.json()["tether"]["rule"] != "context"
        assert provider.captured() == [] or all(c["body"].get("stream") for c in provider.captured())
    finally:
        stop_server(server)
        stop_provider(provider)


def test_a_notification_stack_that_fails_the_check_is_written_off_the_device(setup):
    """Through the gateway's router: the device's summary drops the stack's booking number and
    amount, so the stack goes, pseudonymized, to the cloud; its answer comes back restored."""
    from tests.routing.test_feature_routing import CLOUD_SUMMARY, DINNER

    server, provider = setup
    provider.reset()
    provider.faults([{"content": CLOUD_SUMMARY}])
    r = httpx.post(server.url + "/v1/notifications/summarize", timeout=120,
                   json={"notifications": [json.loads(n.model_dump_json()) for n in DINNER]})
    assert r.status_code == 200, r.text
    (stack,) = r.json()["stacks"]
    assert (stack["tier"], stack["extractive"]) == ("third_party", False)
    assert stack["summary"].startswith("Alice Chen confirms dinner at 7:30")
    assert (r.headers["x-tether-tier"], r.headers["x-tether-rule"]) == ("third_party", "cascade")
    assert r.json()["tether"]["escalated"] is True
    sent = json.dumps([c["body"] for c in provider.captured()])
    assert "<PERSON_1>" in sent and "Alice" not in sent


def test_a_table_the_device_cannot_make_is_written_off_the_device(setup):
    from tests.routing.test_feature_routing import CLOUD_TABLE, ROOMS

    server, provider = setup
    provider.reset()
    provider.faults([{"content": CLOUD_TABLE}])
    r = httpx.post(server.url + "/v1/writing/summarize", timeout=120, json={"text": ROOMS, "form": "table"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["tier"] == "third_party" and body["table"][1] == ["Maria Gonzalez", "paid the rent on Monday"]
    assert (r.headers["x-tether-tier"], r.headers["x-tether-rule"]) == ("third_party", "cascade")
    assert body["tether"]["escalated"] is True
    assert "Maria" not in json.dumps([c["body"] for c in provider.captured()])


def test_a_rewrite_the_device_cannot_finish_is_written_off_the_device(setup):
    from tests.routing.test_feature_routing import BOOKING, CLOUD_REWRITE

    server, provider = setup
    provider.reset()
    provider.faults([{"content": CLOUD_REWRITE}])
    r = httpx.post(server.url + "/v1/writing/rewrite", timeout=120, json={"text": BOOKING, "tone": "professional"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["tier"] == "third_party" and body["text"].startswith("Dear colleagues, Maria Gonzalez has booked")
    assert (body["missing_numbers"], body["added_numbers"], body["cut"]) == ([], [], False)
    assert (r.headers["x-tether-tier"], r.headers["x-tether-rule"]) == ("third_party", "cascade")
    assert body["tether"]["escalated"] is True
    assert body["tether"]["values"]["feature"] == "rewrite"  # what the rule weighed, as chat's block has it
    assert "Maria" not in json.dumps([c["body"] for c in provider.captured()])


def test_a_proofread_that_leaves_an_error_is_corrected_off_the_device(setup):
    from tests.routing.test_feature_routing import CLOUD_PROOFREAD, TRAIL

    server, provider = setup
    provider.reset()
    provider.faults([{"content": CLOUD_PROOFREAD}])
    r = httpx.post(server.url + "/v1/writing/proofread", timeout=120, json={"text": TRAIL})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["tier"] == "third_party" and body["corrected"] == TRAIL.replace("tralihead", "trailhead")
    assert body["flagged"] == [] and [(e["original"], e["replacement"]) for e in body["edits"]] == [
        ("tralihead", "trailhead")]
    assert (r.headers["x-tether-tier"], r.headers["x-tether-rule"]) == ("third_party", "cascade")
    assert body["tether"]["escalated"] is True
    assert "Maria" not in json.dumps([c["body"] for c in provider.captured()])


def test_replies_the_device_cannot_write_are_written_off_the_device(setup):
    from tests.routing.test_feature_routing import CLOUD_REPLIES, LATE

    server, provider = setup
    provider.reset()
    provider.faults([{"content": json.dumps(CLOUD_REPLIES)}])
    r = httpx.post(server.url + "/v1/replies", timeout=120, json={"message": LATE})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["tier"] == "third_party" and body["replies"][0] == "No worries, tell Maria Gonzalez to take her time!"
    assert (r.headers["x-tether-tier"], r.headers["x-tether-rule"]) == ("third_party", "cascade")
    assert body["tether"]["escalated"] is True
    assert "Maria" not in json.dumps([c["body"] for c in provider.captured()])


def test_a_stack_waiting_on_the_cloud_does_not_hold_the_device_model(setup):
    """While a stack's escalation waits on a slow provider, a device feature on the same model
    is answered: the wait holds no generation lock (only generating does)."""
    import threading

    from tests.routing.test_feature_routing import CLOUD_SUMMARY, DINNER

    server, provider = setup
    provider.reset()
    provider.faults([{"content": CLOUD_SUMMARY}], delay=20.0)
    done: dict[str, httpx.Response] = {}

    def summarize() -> None:
        done["digest"] = httpx.post(server.url + "/v1/notifications/summarize", timeout=120,
                                    json={"notifications": [json.loads(n.model_dump_json()) for n in DINNER]})

    waiting = threading.Thread(target=summarize)
    waiting.start()
    try:
        for _ in range(1200):  # the escalation reaches the provider once the device's part is done
            if provider.captured():
                break
            waiting.join(0.1)
        assert provider.captured(), "the stack never reached the provider"
        # a text with nothing left to fix: its proofread stays on the device, which is what is timed
        r = httpx.post(server.url + "/v1/writing/proofread", timeout=120, json={"text": "Thanks for the update."})
        assert r.status_code == 200, r.text
        assert r.json()["tier"] == "device"
        assert waiting.is_alive(), "the device feature waited for the cloud call to end"
    finally:
        waiting.join(120)
    assert done["digest"].status_code == 200, done["digest"].text
    assert done["digest"].json()["stacks"][0]["tier"] == "third_party"


def _feature_call(name: str) -> tuple[str, dict]:
    from tests.routing.test_feature_routing import BOOKING, DINNER, LATE, TRAIL

    return {"rewrite": ("/v1/writing/rewrite", {"text": BOOKING, "tone": "professional"}),
            "proofread": ("/v1/writing/proofread", {"text": TRAIL}),
            "replies": ("/v1/replies", {"message": LATE}),
            "notifications": ("/v1/notifications/summarize",
                              {"notifications": [json.loads(n.model_dump_json()) for n in DINNER]})}[name]


@pytest.mark.parametrize("name", ["rewrite", "proofread", "replies", "notifications"])  # (summarize: its table
# is ROOMS, which the device cannot write, so a failed escalation leaves no answer: a 502)
def test_a_feature_whose_escalation_failed_lists_the_routers_notes(setup, name):
    """As chat does, a routed feature's route block carries the router's notes as a list (each
    note whole, though one holds a "; "), and says the answer is degraded; ``reason`` keeps the
    one-line text it always had."""
    server, provider = setup
    provider.reset()
    provider.faults([500] * 8)  # retries = 0: the third party fails every escalation
    path, body = _feature_call(name)
    r = httpx.post(server.url + path, timeout=180, json=body)
    assert r.status_code == 200, r.text
    route = r.json()["tether"]
    assert provider.captured(), "the device answer was never escalated"
    assert route["tier"] == "device" and route["degraded"] is True, route
    notes = route["notes"]
    assert isinstance(notes, list) and all(isinstance(n, str) for n in notes), notes
    failed = [n for n in notes if n.startswith("cascade: escalation failed (")]
    assert len(failed) == 1 and failed[0].endswith("; device answer kept"), notes
    assert any(n.startswith("third_party failed: ") and "500" in n for n in notes), notes
    assert "answered on the device instead (degraded)" in notes
    assert len(notes) == len(set(notes))
    if name != "notifications":  # a digest's reason counts its stacks; each stack's route has the text
        assert failed[0] in route["reason"]  # reason keeps the notes in its text, as before
        assert route["values"]["feature"] == name
    else:
        assert failed[0] in r.json()["stacks"][0]["route"]
        stacks = r.json()["stacks"]
        assert route["values"] == {"stacks": len(stacks), "off_device": sum(s["tier"] != "device" for s in stacks)}


def test_openapi_documents_the_route_block_and_its_notes(setup):
    server, _ = setup
    doc = httpx.get(server.url + "/openapi.json", timeout=30).json()
    route = doc["components"]["schemas"]["Route"]
    assert route["properties"]["notes"] == {"type": "array", "items": {"type": "string"},
                                            "description": route["properties"]["notes"]["description"]}
    assert {"tier", "rule", "reason", "values", "degraded", "escalated", "notes"} <= set(route["required"])
    for path in ("/v1/chat/completions", "/v1/writing/rewrite", "/v1/writing/summarize", "/v1/writing/proofread",
                 "/v1/replies", "/v1/notifications/summarize", "/v1/emoji", "/v1/privacy/scan"):
        ok = doc["paths"][path]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok["properties"]["tether"] == {"$ref": "#/components/schemas/Route"}, path
    scan = doc["paths"]["/v1/privacy/scan"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert scan["properties"]["tiers_configured"] == {"$ref": "#/components/schemas/TiersConfigured"}
    configured = doc["components"]["schemas"]["TiersConfigured"]
    assert set(configured["required"]) == set(configured["properties"]) == {"device", "private_cloud", "third_party"}
    assert scan["properties"]["consent_policy"]["enum"] == ["ask", "always", "never"]


def test_a_stack_whose_cloud_failed_without_degrading_is_named_in_the_digests_notes(tmp_path):
    """allow_degraded = false: a stack whose escalation fails keeps its own words (no model's answer),
    and the digest is still made; the route block's notes say which stack and why, as they do for
    every other thing the router reported."""
    from tests.routing.test_feature_routing import DINNER

    provider = start_provider(tmp_path)
    config = tmp_path / "router.json"
    config.write_text(json.dumps({
        "consent": "always", "allow_degraded": False, "cascade": ["notifications"], "cascade_min_logprob": 0.0,
        "cascade_escalate_fraction": 0,
        "third_party": {"base_url": provider.url, "model": "gpt-test", "use_for_cloud": True, "retries": 0}}))
    server = start_server(tmp_path, router_config=config)
    try:
        provider.faults([500] * 8)
        r = httpx.post(server.url + "/v1/notifications/summarize", timeout=180,
                       json={"notifications": [json.loads(n.model_dump_json()) for n in DINNER]})
        assert r.status_code == 200, r.text
        assert provider.captured(), "the stack was never escalated"
        stack = r.json()["stacks"][0]
        assert stack["tier"] == "device" and stack["extractive"] is True, stack
        notes = r.json()["tether"]["notes"]
        assert any(stack["route"] in n and "500" in n for n in notes), (notes, stack["route"])
    finally:
        stop_server(server)
        stop_provider(provider)
