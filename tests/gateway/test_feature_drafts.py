"""A feature asked for with ``"stream": true`` sends the device's drafts as they are written,
then the checked result, as server-sent events from a real ``tether serve`` (the tiny model)."""

from __future__ import annotations

import json
import time

import httpx

REWRITE = {"text": "hey can u send me the report by friday thx", "tone": "professional"}


def events(server, path: str, body: dict) -> tuple[httpx.Response, list]:
    with httpx.stream("POST", server.url + path, json={**body, "stream": True}, timeout=180) as r:
        lines = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    return r, [json.loads(x) if x != "[DONE]" else x for x in lines]


def test_a_streamed_rewrite_shows_its_drafts_then_the_same_result_as_unstreamed(server):
    r, got = events(server, "/v1/writing/rewrite", REWRITE)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert got[0] == {"draft_reset": True} and got[-1] == "[DONE]"
    drafts = [e["draft"] for e in got[1:-2] if "draft" in e]
    assert drafts and all(set(e) <= {"draft", "draft_reset"} for e in got[1:-2])
    result = got[-2]
    plain = httpx.post(server.url + "/v1/writing/rewrite", json=REWRITE, timeout=180).json()
    assert {k: v for k, v in result.items() if k != "duration_s"} == \
        {k: v for k, v in plain.items() if k != "duration_s"}  # greedy: the same checked answer
    assert result["tether"]["tier"] == "device"
    last_draft = "".join(drafts[-1:])  # the result comes from the device's drafts, tidied by the feature
    assert last_draft.strip() and result["text"].split()[0] in "".join(drafts)


def test_a_guided_feature_streams_no_json_drafts(server):
    """Smart replies are written as JSON under a grammar: no draft is sent, only the result."""
    _, got = events(server, "/v1/replies", {"message": "Lunch tomorrow at noon?"})
    assert got[-1] == "[DONE]" and len(got[-2]["replies"]) == 3
    assert not [e for e in got[:-2] if "draft" in e]


def test_a_bad_streamed_request_is_a_plain_400_and_a_failure_is_an_error_event(server):
    r = httpx.post(server.url + "/v1/writing/rewrite", json={**REWRITE, "tone": "grumpy", "stream": True}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["param"] == "tone"
    r, got = events(server, "/v1/writing/summarize", {"text": "word " * 60_000})  # past the model's window
    assert r.status_code == 200 and got[-1] == "[DONE]"
    assert got[-2]["error"]["code"] in ("context_length_exceeded", "invalid_request"), got[-2]


def test_a_client_that_leaves_mid_draft_stops_the_generation(server):
    before = httpx.get(server.url + "/healthz", timeout=30).json()["cancelled"]
    text = "Please rewrite this long note. " + "The committee met and discussed the budget at length. " * 40
    with httpx.stream("POST", server.url + "/v1/writing/rewrite", json={"text": text, "stream": True},
                      timeout=180) as r:
        for line in r.iter_lines():
            if '"draft"' in line:
                break  # the first draft text: leave
    for _ in range(100):
        if httpx.get(server.url + "/healthz", timeout=30).json()["cancelled"] > before:
            break
        time.sleep(0.1)
    assert httpx.get(server.url + "/healthz", timeout=30).json()["cancelled"] > before
    ok = httpx.post(server.url + "/v1/writing/proofread", json={"text": "i has a apple"}, timeout=180)
    assert ok.status_code == 200  # the model is free again
