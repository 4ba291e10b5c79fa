"""What a gateway client gets when the private cloud fails: a real ``tether serve`` with a router
config that forbids degraded answers, in front of a real transparency log and relay (``tether``
subprocesses) and one stand-in node with real keys that answers 413 to an envelope over ``LIMIT``
bytes and hangs on anything smaller. The config's ``deadline`` ends the hang."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.cloud.conftest import log_and_relay
from tests.cloud.standins import stand_in
from tests.gateway.conftest import start_server, stop_server

TOKEN = "gateway-cloud-admin"
LIMIT = 16_000  # the node's body limit, in sealed bytes
BIG = "hello " * 5_000  # 30,000 bytes: under the gateway's 1 MB limit, over the node's
DEADLINE = 1.5


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("gateway-cloud")
    with log_and_relay(root, TOKEN) as (log, relay, key):
        node, server = stand_in(log.url, "stand-in", "hang", limit=LIMIT), None
        try:
            config = root / "router.toml"  # TOML, as the docs write it
            config.write_text(f'allow_degraded = false\ncascade = []\n\n[private_cloud]\nrelay_url = "{relay.url}"\n'
                              f'log_key = "{key}"\ndeadline = {DEADLINE}\nstate_path = "{root / "state.json"}"\n')
            server = start_server(root, router_config=config)
            yield server, node
        finally:
            if server is not None:
                stop_server(server)
            node.stop()


def chat(server, prompt: str, *, stream: bool = False) -> httpx.Response:
    body = {"model": "private-cloud", "max_tokens": 8, "stream": stream, "messages": [{"role": "user", "content": prompt}]}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=60) as r:
        r.read()
    return r


def test_a_request_too_large_for_the_cloud_is_413_plain_and_streamed(setup):
    server, node = setup
    for stream in (False, True):
        r = chat(server, BIG, stream=stream)
        assert r.status_code == 413, r.text  # a stream fails before its first text: a status, not an event
        error = r.json()["error"]
        assert (error["type"], error["code"]) == ("invalid_request_error", "request_too_large")
        assert "too large" in error["message"] and f"{LIMIT:,}" in error["message"]
    assert node.served.count("too_large") == 2  # the node's own 413, passed on by the relay


def test_a_cloud_that_hangs_past_the_config_s_deadline_is_504(setup):
    server, node = setup
    for stream in (False, True):
        start = time.monotonic()
        r = chat(server, "Say hello.", stream=stream)
        took = time.monotonic() - start
        assert r.status_code == 504, r.text
        error = r.json()["error"]
        assert (error["type"], error["code"]) == ("server_error", "tier_timeout")
        assert f"{DEADLINE:g} s deadline" in error["message"]
        assert DEADLINE * 0.9 < took < DEADLINE + 5, took  # the config's deadline, not the client's 150 s
    assert "hang" in node.served


def test_a_tier_nobody_configured_is_a_404_the_openai_client_does_not_retry(setup):
    """No retry can help until the config changes: 404 ``tier_not_configured``, which OpenAI's SDKs
    do not retry (they retry a 503 twice, with backoff, in vain)."""
    from openai import NotFoundError, OpenAI

    server, _ = setup
    r = httpx.post(server.url + "/v1/chat/completions", timeout=60, headers={"X-Tether-Consent": "yes"}, json={
        "model": "third-party", "max_tokens": 8, "messages": [{"role": "user", "content": "Hi"}]})
    assert r.status_code == 404 and r.json()["error"]["code"] == "tier_not_configured", r.text
    assert "no third-party provider is configured" in r.json()["error"]["message"]
    client = OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=2)
    with pytest.raises(NotFoundError):
        client.chat.completions.with_raw_response.create(
            model="third-party", max_tokens=8, messages=[{"role": "user", "content": "Hi"}],
            extra_headers={"X-Tether-Consent": "yes"})
