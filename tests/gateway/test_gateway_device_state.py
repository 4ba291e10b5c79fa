"""An app behind a real ``tether serve`` reports the device's state over HTTP, and the next
routing decision follows it; the third party is a real OpenAI-compatible server on loopback
that records what reached it."""

from __future__ import annotations

import httpx
import pytest

from tests.gateway.conftest import behind_a_provider

DEFAULT = {"offline": False, "low_power": False, "busy": False, "memory_available_mb": None, "memory_reported": False}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    with behind_a_provider(tmp_path_factory.mktemp("device-state"), {
            "consent": "always", "cascade": [], "third_party": {"retries": 0, "use_for_cloud": True}}) as both:
        yield both


def report(server, body) -> httpx.Response:
    return httpx.post(server.url + "/v1/device/state", json=body, timeout=30)


def chat(server) -> httpx.Headers:
    r = httpx.post(server.url + "/v1/chat/completions", timeout=120,
                   json={"model": "auto", "max_tokens": 6, "messages": [{"role": "user", "content": "Say hello."}]})
    assert r.status_code == 200, r.text
    assert r.json()["tether"]["tier"] == r.headers["x-tether-tier"]
    return r.headers


def test_a_reported_state_decides_the_next_request_and_is_read_back(setup):
    server, provider = setup
    provider.reset()
    assert httpx.get(server.url + "/v1/device/state", timeout=30).json() == DEFAULT
    assert chat(server)["x-tether-tier"] == "device" and not provider.captured()

    r = report(server, {"busy": True})
    assert r.status_code == 200 and r.json() == {**DEFAULT, "busy": True}
    headers = chat(server)
    assert (headers["x-tether-tier"], headers["x-tether-rule"]) == ("third_party", "busy")
    assert len(provider.captured()) == 1

    assert report(server, {"offline": True}).json() == {**DEFAULT, "busy": True, "offline": True}  # busy is kept
    headers = chat(server)
    assert (headers["x-tether-tier"], headers["x-tether-rule"]) == ("device", "offline")
    assert len(provider.captured()) == 1  # offline: nothing left the device

    assert report(server, {"offline": False, "busy": False}).json() == DEFAULT
    assert chat(server)["x-tether-tier"] == "device" and len(provider.captured()) == 1


def test_a_memory_report_is_kept_until_handed_back_to_the_os(setup):
    server, _ = setup
    assert report(server, {"memory_available_mb": 512}).json() == {**DEFAULT, "memory_available_mb": 512.0,
                                                                    "memory_reported": True}
    assert report(server, {"low_power": False}).json()["memory_available_mb"] == 512.0
    assert report(server, {"memory_available_mb": -1}).json() == DEFAULT


@pytest.mark.parametrize("body", [{"busy": "false"}, {"busy": 1}, {"low_power": None, "offline": "yes"},
                                  {"memory_available_mb": -5}, {"memory_available_mb": True}, {"asleep": True},
                                  ["busy"]])
def test_a_bad_report_is_a_400_and_changes_nothing(setup, body):
    """A "false" string must not read as true (a device in low-power mode sends its requests away)."""
    server, _ = setup
    assert report(server, {"low_power": True}).status_code == 200
    r = report(server, body)
    assert r.status_code == 400 and r.json()["error"]["message"]
    after = httpx.get(server.url + "/v1/device/state", timeout=30).json()
    assert after == {**DEFAULT, "low_power": True}
    assert report(server, {"low_power": False}).json() == DEFAULT


def test_a_body_that_is_not_json_is_a_400(setup):
    server, _ = setup
    r = httpx.post(server.url + "/v1/device/state", content=b"{busy: true", timeout=30,
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"]
    assert httpx.get(server.url + "/v1/device/state", timeout=30).json() == DEFAULT
