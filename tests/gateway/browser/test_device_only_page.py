"""The playground on a gateway whose saved preference is device-only, with a third party configured:
the preference wins over any request, so the page must not ask consent for a tier nothing can reach,
and must say why the request ran on the device. What reached the stand-in provider is captured."""

from __future__ import annotations

import httpx
import pytest

from tests.gateway.browser.conftest import NAMED, serving_with_provider, watch_the_dialog


@pytest.fixture(scope="module")
def device_only_gateway(tmp_path_factory):
    with serving_with_provider(tmp_path_factory.mktemp("device-only"),
                               'preference = "device-only"\nconsent = "ask"\n') as s:
        yield s


def test_device_only_asks_nothing_says_why_and_sends_nothing(page, device_only_gateway):
    url, provider = device_only_gateway.url, device_only_gateway.provider
    scan = httpx.post(url + "/v1/privacy/scan", json={"text": "Hi"}, timeout=60).json()
    assert scan["preference"] == "device-only" and scan["tiers_configured"]["third_party"] is False
    posts: list = []
    page.on("request", lambda req: posts.append(req) if req.url.endswith("/v1/chat/completions") else None)
    page.goto(url + "/")
    page.wait_for_selector("#run")
    watch_the_dialog(page)
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
