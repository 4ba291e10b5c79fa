"""The playground on a gateway whose saved policy is consent = "never": no dialog offers a consent
that the gateway would refuse whatever the answer, and nothing is sent."""

from __future__ import annotations

import os
import sys

import httpx
import pytest

from tether.cloud.serving import spawn, stop

from tests.gateway.browser.conftest import TINY


@pytest.fixture(scope="module")
def never_gateway(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("never")
    config = tmp / "router.toml"  # a third party is configured (nothing listens there), and never allowed
    config.write_text(f'device_model = "{TINY}"\nconsent = "never"\n\n[third_party]\n'
                      'base_url = "http://127.0.0.1:9/v1"\nmodel = "gpt-test"\n')
    env = {**os.environ, "TETHER_LEDGER": str(tmp / "ledger.sqlite"), "TETHER_ROUTER_CONFIG": str(config),
           "TETHER_THREADS": os.environ.get("TETHER_THREADS", "2")}
    proc, url = spawn([sys.executable, "-m", "tether", "serve", "--host", "127.0.0.1", "--port", "0"],
                      tmp / "serve.log", env=env)
    try:
        yield url
    finally:
        stop(proc, timeout=15)


def test_a_saved_never_is_told_without_a_consent_dialog(page, never_gateway):
    scan = httpx.post(never_gateway + "/v1/privacy/scan", json={"text": "Hi"}, timeout=60).json()
    assert scan["consent_policy"] == "never"
    posts: list = []
    page.on("request", lambda req: posts.append(req) if req.url.endswith("/v1/chat/completions") else None)
    page.goto(never_gateway + "/")
    page.select_option("#feature", "chat")
    page.select_option("#target", "third-party")
    page.fill("#input", "Please email Alice Johnson about the Berlin contract.")
    page.click("#run")
    page.wait_for_function("() => /never/.test(document.getElementById('status').textContent)", timeout=60_000)
    assert page.locator("#consent-modal").is_hidden()
    assert "nothing was sent" in page.locator("#status").text_content().lower()
    page.wait_for_timeout(500)
    assert posts == [] and page.js_errors == []
