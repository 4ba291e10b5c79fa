"""Routed chats behind a real ``tether serve`` and a real OpenAI-compatible provider on loopback that
fails on demand: what the headers, the SSE events and the ledger say when a tier fails."""

from __future__ import annotations

import json
import sqlite3

import httpx
import pytest
from starlette.testclient import TestClient

from tests.gateway.conftest import behind_a_provider


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    with behind_a_provider(tmp_path_factory.mktemp("routed-stream"),
                           {"consent": "ask", "cascade": [], "third_party": {"retries": 0}}) as both:
        yield both


def stream(server, **body) -> tuple[httpx.Headers, list[dict]]:
    with httpx.stream("POST", server.url + "/v1/chat/completions", timeout=120, headers={"X-Tether-Consent": "yes"},
                      json={"model": "third-party", "stream": True, "max_tokens": 6,
                            "messages": [{"role": "user", "content": "Say hello to me."}], **body}) as r:
        assert r.status_code == 200, r.read()
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    return r.headers, [json.loads(e) for e in events if e != "[DONE]"]


def last_row(server) -> tuple[str, str, int]:
    with sqlite3.connect(server.log.parent / "ledger.sqlite") as db:
        return db.execute("SELECT tier, reason, degraded FROM entries ORDER BY rowid DESC LIMIT 1").fetchone()


def test_a_stream_whose_tier_failed_before_its_first_text_is_named_by_the_tier_that_sent_it(setup):
    """The first text is read before the headers go: by then the third party has failed and the
    device answers, so the headers and the first chunk say so, not the tier that sent nothing."""
    server, provider = setup
    provider.reset()
    provider.faults(["cut_early"])
    headers, chunks = stream(server)
    assert headers["x-tether-tier"] == "device" and headers["x-tether-rule"] == "requested"
    first, last = chunks[0]["tether"], chunks[-1]["tether"]
    assert (first["tier"], first["degraded"]) == ("device", True)
    assert (last["tier"], last["degraded"]) == ("device", True)
    assert last["notes"][0].startswith("third_party failed: ")
    assert all(c["model"] != "third_party" for c in chunks)
    assert last_row(server) == ("device", "requested", 1)


def test_a_stream_cut_after_its_first_text_ends_in_an_error_event_and_a_cut_row(setup):
    server, provider = setup
    provider.reset()
    provider.faults(["cut"])
    headers, chunks = stream(server)
    assert headers["x-tether-tier"] == "third_party"
    assert chunks[0]["tether"]["tier"] == "third_party" and chunks[1]["choices"][0]["delta"]["content"]
    assert chunks[-1]["error"]["code"] == "tier_unavailable"
    assert last_row(server) == ("third_party", "requested.cut", 0)


def test_a_saved_never_is_named_as_the_reason_a_third_party_is_refused():
    from tether.gateway import create_app
    from tether.routing import Router
    from tether.routing.config import RouterConfig

    config = RouterConfig.model_validate({"device_model": "smollm2-135m", "consent": "never",
                                          "third_party": {"base_url": "http://127.0.0.1:9/v1", "model": "m"}})
    app = create_app(Router.from_config(config, ledger=None), prewarm=False)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        r = client.post("/v1/chat/completions", headers={"X-Tether-Consent": "yes"},
                        json={"model": "third-party", "messages": [{"role": "user", "content": "Hi"}]})
    assert r.status_code == 403
    error = r.json()["error"]
    assert error["code"] == "consent_required" and 'consent = "never"' in error["message"]


def test_the_scan_and_healthz_say_a_third_party_is_configured(setup):
    server, _ = setup
    configured = {"device": True, "private_cloud": False, "third_party": True}
    r = httpx.post(server.url + "/v1/privacy/scan", json={"text": "Hi"}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["tiers_configured"] == configured and r.json()["consent_policy"] == "ask"
    assert httpx.get(server.url + "/healthz", timeout=30).json()["tiers_configured"] == configured


def test_under_device_only_the_scan_and_healthz_say_no_cloud_tier_is_reachable():
    """device-only wins over any request, so a configured third party is off: a page that asked
    consent for it would ask about something that cannot happen."""
    from tether.gateway import create_app
    from tether.routing import Router
    from tether.routing.config import RouterConfig

    def served(preference: str) -> tuple[dict, dict]:
        config = RouterConfig.model_validate({"device_model": "smollm2-135m", "preference": preference,
                                              "third_party": {"base_url": "http://127.0.0.1:9/v1", "model": "m"}})
        app = create_app(Router.from_config(config, ledger=None), prewarm=False)
        with TestClient(app, base_url="http://127.0.0.1") as client:
            return client.post("/v1/privacy/scan", json={"text": "Hi"}).json(), client.get("/healthz").json()

    off = {"device": True, "private_cloud": False, "third_party": False}
    for body in served("device-only"):
        assert body["tiers_configured"] == off and body["preference"] == "device-only"
    for body in served("prefer-quality"):
        assert body["tiers_configured"]["third_party"] is True and body["preference"] == "prefer-quality"
