"""The playground on a gateway whose saved preference is device-only, with a third party configured:
the preference wins over any request, so the page must not ask consent for a tier nothing can reach,
and must say why the request ran on the device. What reached the stand-in provider is captured."""

from __future__ import annotations

import os
import sys

import httpx
import pytest

from tether.cloud.serving import spawn, stop

from tests.gateway.browser.conftest import TINY

NAMED = "Please email Alice Johnson at alice.johnson@example.com about the Berlin contract."


@pytest.fixture(scope="module")
def device_only_gateway(tmp_path_factory):
    from tests.routing.conftest import start_provider, stop_provider

    tmp = tmp_path_factory.mktemp("device-only")
    provider = start_provider(tmp)
    config = tmp / "router.toml"
    config.write_text(f'device_model = "{TINY}"\npreference = "device-only"\nconsent = "ask"\n\n[third_party]\n'
                      f'base_url = "{provider.url}"\nmodel = "gpt-test"\nretries = 0\n')
    env = {**os.environ, "TETHER_LEDGER": str(tmp / "ledger.sqlite"), "TETHER_ROUTER_CONFIG": str(config),
           "TETHER_THREADS": os.environ.get("TETHER_THREADS", "2")}
    try:
        proc, url = spawn([sys.executable, "-m", "tether", "serve", "--host", "127.0.0.1", "--port", "0"],
                          tmp / "serve.log", env=env)
    except BaseException:
        stop_provider(provider)
        raise
    try:
        yield type("Server", (), {"url": url, "provider": provider})()
    finally:
        stop(proc, timeout=15)
        stop_provider(provider)


def test_device_only_asks_nothing_says_why_and_sends_nothing(page, device_only_gateway):
    url, provider = device_only_gateway.url, device_only_gateway.provider
    scan = httpx.post(url + "/v1/privacy/scan", json={"text": "Hi"}, timeout=60).json()
    assert scan["preference"] == "device-only" and scan["tiers_configured"]["third_party"] is False
    posts: list = []
    page.on("request", lambda req: posts.append(req) if req.url.endswith("/v1/chat/completions") else None)
    page.goto(url + "/")
    page.wait_for_selector("#run")
    page.evaluate("""() => {
        const modal = document.getElementById('consent-modal');
        window.dialogShown = !modal.hidden;
        new MutationObserver(() => { if (!modal.hidden) window.dialogShown = true; })
            .observe(modal, {attributes: true});
    }""")
    page.wait_for_function("() => /device-only/.test("
                           "document.querySelector('#target option[value=\"third-party\"]').textContent)", timeout=30_000)
    page.select_option("#feature", "chat")
    page.select_option("#target", "third-party")
    page.fill("#input", NAMED)
    page.wait_for_function("() => /device-only/.test(document.querySelector("
                           "'.tier-card[data-tier=\"third_party\"] .verdict')?.textContent || '')", timeout=60_000)
    page.click("#run")
    page.wait_for_function("() => /Done in|Error|Stopped/.test(document.getElementById('status').textContent)",
                           timeout=240_000)
    status = page.locator("#status").text_content()
    assert page.evaluate("() => window.dialogShown") is False
    assert "device-only" in status and "error" not in status.lower(), status
    assert page.locator("#route-tier").text_content() == "device"
    assert len(posts) == 1 and posts[0].post_data_json["model"] == "auto"
    assert posts[0].headers.get("x-tether-consent") is None
    assert provider.captured() == []
    assert page.js_errors == []
