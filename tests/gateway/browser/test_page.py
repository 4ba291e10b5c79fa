"""The playground in a real browser (Debian's Chromium, driven by Playwright).

Every test drives the real ``tether serve`` on the tiny model: with no cloud configured, or
(``consenting``, for the consent dialog) with the stand-in third-party provider configured.
Screenshots go to tests/gateway/artifacts/.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.gateway.browser.conftest import NAMED, watch_the_dialog

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"  # the page fixture screenshots every test there too


def capture_posts(page, path: str) -> list:
    hits: list = []
    page.on("request", lambda req: hits.append(req) if req.method == "POST" and req.url.endswith(path) else None)
    return hits


def fill(page, feature: str, target: str, text: str) -> None:
    page.select_option("#feature", feature)
    if feature == "chat":  # the features always run on the device (the select is disabled)
        page.select_option("#target", target)
    page.fill("#input", text)


def wait_done(page, timeout: float = 30_000) -> None:
    page.wait_for_function("() => document.getElementById('spinner').hidden && "
                           "!document.getElementById('run').disabled", timeout=timeout)


def run_on_device(page, feature: str, text: str) -> str:
    """Run ``feature`` on ``text`` against the real gateway; it must answer, on the device. Returns the result."""
    fill(page, feature, "auto", text)
    page.click("#run")
    wait_done(page, timeout=240_000)
    result = page.locator("#result").text_content().strip()
    assert result, page.locator("#status").text_content()
    assert page.locator("#route-tier").text_content() == "device"
    return result


def expect_text(locator, timeout: float = 30_000) -> str:
    locator.page.wait_for_function("(el) => el.textContent.trim().length > 0", arg=locator.element_handle(),
                                   timeout=timeout)
    return locator.text_content().strip()




@pytest.fixture
def real(page, gateway):
    chat_posts = capture_posts(page, "/v1/chat/completions")
    page.goto(gateway.url + "/")
    page.wait_for_selector("#run")
    return page, chat_posts


@pytest.fixture
def consenting(page, third_party_gateway):
    """The page on a gateway with a third party configured (the stand-in provider): the one
    where asking for consent means something."""
    third_party_gateway.provider.reset()
    chat_posts = capture_posts(page, "/v1/chat/completions")
    page.goto(third_party_gateway.url + "/")
    page.wait_for_selector("#run")
    return page, chat_posts


def test_allowed_consent_sends_with_the_header(consenting, third_party_gateway):
    page, chat_posts = consenting
    fill(page, "chat", "third-party", NAMED)
    page.click("#run")
    page.locator("#consent-modal").wait_for(state="visible")
    page.click("#consent-allow")
    wait_done(page, timeout=60_000)
    assert len(chat_posts) == 1
    assert chat_posts[0].headers.get("x-tether-consent") == "yes"
    assert chat_posts[0].post_data_json["model"] == "third-party"
    assert "Done" in page.locator("#status").text_content(), page.locator("#status").text_content()
    assert page.locator("#route-tier").text_content() == "third party"
    sent = third_party_gateway.provider.captured()
    assert len(sent) == 1 and "Alice Johnson" not in str(sent[0]["body"])  # what the dialog showed, redacted


def test_rewrite_sends_the_tone(real):
    page, _ = real
    rewrites = capture_posts(page, "/v1/writing/rewrite")
    fill(page, "rewrite", "device", "hey, can u send the report by friday")
    assert page.locator("#tone-field").is_visible() and not page.locator("#form-field").is_visible()
    page.select_option("#tone", "friendly")
    page.click("#run")
    wait_done(page, timeout=120_000)
    assert rewrites[-1].post_data_json == {"text": "hey, can u send the report by friday", "tone": "friendly",
                                           "stream": True}
    assert page.locator("#route-tier").text_content() == "device"
    assert page.locator("#route-rule").text_content() == "no_cloud"  # routed: no cloud is configured


def test_proofread_keeps_the_wording_unless_unticked(real):
    page, _ = real
    posts = capture_posts(page, "/v1/writing/proofread")
    fill(page, "proofread", "device", "i has a apple")
    assert page.locator("#wording-field").is_visible() and page.locator("#keep-wording").is_checked()
    page.click("#run")
    wait_done(page, timeout=120_000)
    page.uncheck("#keep-wording")
    page.click("#run")
    wait_done(page, timeout=120_000)
    assert [p.post_data_json for p in posts[-2:]] == [{"text": "i has a apple", "stream": True},
                                                       {"text": "i has a apple", "keep_wording": False, "stream": True}]
    assert "edit" in page.locator("#result").text_content()


def test_features_run_on_the_device_and_chat_keeps_its_target(real):
    page, _ = real
    page.select_option("#target", "third-party")
    page.select_option("#feature", "proofread")
    assert page.locator("#target").is_disabled() and page.locator("#target").input_value() == "device"
    page.select_option("#feature", "chat")
    assert not page.locator("#target").is_disabled() and page.locator("#target").input_value() == "third-party"


def test_preview_updates_while_typing(real):
    page, _ = real
    page.select_option("#feature", "summarize")
    page.locator("#input").press_sequentially("Call Alice Johnson ", delay=20)
    third = page.locator('.tier-card[data-tier="third_party"] .payload')
    page.wait_for_function("() => /<PERSON_\\d+>/.test(document.querySelector("
                           "'.tier-card[data-tier=\"third_party\"] .payload')?.textContent || '')", timeout=60_000)
    assert "Alice" not in third.text_content()
    page.locator("#input").press_sequentially("at alice.johnson@example.com", delay=10)
    page.wait_for_function("() => /<EMAIL_ADDRESS_\\d+>/.test(document.querySelector("
                           "'.tier-card[data-tier=\"third_party\"] .payload')?.textContent || '')", timeout=60_000)
    assert page.locator(".tier-card").count() == 3


# ------------------------------------------------------------------ against the real gateway (tiny model)


def test_gateway_summary_runs_on_the_device(real):
    page, _ = real
    run_on_device(page, "summarize",
                  "The quarterly review moved to Thursday at 10am. Bring the revised budget, which now includes the "
                  "new hires in support and the delayed laptop order. Marketing will present the launch plan afterwards.")
    page.screenshot(path=str(ARTIFACTS / "gateway-summary.png"), full_page=True)


def test_gateway_rewrite_with_tone(real):
    """The device's draft streams in (shown as a draft) before the checked rewrite replaces it."""
    page, _ = real
    fill(page, "rewrite", "auto", "hey can u send me the report by friday thx")
    page.select_option("#tone", "professional")
    page.evaluate("""() => {
      const result = document.getElementById('result');
      window.__drafts = [];
      new MutationObserver(() => {
        if (result.classList.contains('draft')) window.__drafts.push(result.textContent);
      }).observe(result, {attributes: true, childList: true, characterData: true, subtree: true});
    }""")
    page.click("#run")
    wait_done(page, timeout=240_000)
    final = page.locator("#result").text_content().strip()
    assert final, page.locator("#status").text_content()
    assert page.locator("#route-tier").text_content() == "device"
    drafts = page.evaluate("window.__drafts")
    assert drafts and any(d.strip() for d in drafts), "no draft was shown while the rewrite was written"
    assert "draft" not in (page.locator("#result").get_attribute("class") or "")  # the checked result replaced it


def test_ask_your_files_answers_and_lists_the_files(real):
    page, chat_posts = real
    asks = capture_posts(page, "/v1/ask")
    result = run_on_device(page, "ask", "How much is my gym membership?")
    assert len(asks) == 1 and chat_posts == []
    assert "Looked in:" in result and "[1] Gym membership — " in result and "gym.md" in result
    assert "mail, calendar and files" in page.locator("#input-label").text_content()


def test_gateway_chat_streams(real):
    page, _ = real
    run_on_device(page, "chat", "In one sentence, thank Alice Johnson for hosting us in Lisbon.")
    assert page.locator("#route-rule").text_content() not in ("", "–")  # no cloud configured: the router says why
    assert page.locator("#route-reason").text_content() not in ("", "–")
    page.wait_for_function("() => document.querySelectorAll('.tier-card').length === 3")
    page.screenshot(path=str(ARTIFACTS / "gateway-chat.png"), full_page=True)  # docs/playground.png comes from here


def test_gateway_refused_consent_sends_nothing(consenting, third_party_gateway):
    page, chat_posts = consenting
    fill(page, "chat", "third-party", NAMED)
    page.wait_for_function("() => /<PERSON_\\d+>/.test(document.querySelector("
                           "'.tier-card[data-tier=\"third_party\"] .payload')?.textContent || '')", timeout=60_000)
    page.click("#run")
    page.locator("#consent-modal").wait_for(state="visible")
    shown = expect_text(page.locator("#consent-preview"), timeout=60_000)
    assert re.search(r"<PERSON_\d+>", shown) and "Alice Johnson" not in shown, shown
    page.screenshot(path=str(ARTIFACTS / "gateway-consent.png"))
    page.click("#consent-refuse")
    page.locator("#consent-modal").wait_for(state="hidden")
    assert "nothing was sent" in page.locator("#status").text_content().lower()
    page.wait_for_timeout(500)
    assert chat_posts == [] and third_party_gateway.provider.captured() == []


def test_gateway_recent_decisions_after_runs(real):
    page, _ = real
    run_on_device(page, "chat", "In one sentence, thank Alice Johnson for the report.")  # its own run: not order-bound
    page.wait_for_function("() => document.querySelectorAll('#recent li.decision').length > 0", timeout=20_000)
    text = page.locator("#recent").text_content()
    assert "device" in text
    assert "Alice" not in text and "report" not in text  # metadata only
    fill(page, "summarize", "auto", "Lunch with Sam moved to 1pm at the usual place; bring the slides.")
    page.wait_for_function("() => document.querySelectorAll('.tier-card').length === 3", timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "gateway-playground.png"), full_page=True)


@pytest.mark.parametrize("feature, text", [
    ("notifications", "Messages: Sam: running 10 min late, start without me\n"
                      "Messages: Sam: actually 20, sorry\nCalendar: Dentist tomorrow at 9:30"),
    ("replies", "Are you still up for dinner on Friday at 7?"),
    ("proofread", "Their going to the libary tomorow."),
])
def test_gateway_other_features(real, feature, text):
    page, _ = real
    result = run_on_device(page, feature, text)
    assert not result.startswith("{"), page.locator("#status").text_content()
    assert "error" not in page.locator("#status").text_content().lower()
    if feature == "notifications":
        assert "Messages" in result and "Calendar" in result
    if feature == "replies":
        assert result.count("•") == 3
    if feature == "proofread":  # what the proofread left is named under it
        corrected = result.split("\n\n— ")[0]
        assert ("Their going" in corrected) == ("“Their going” (“their” where" in result), result


@pytest.mark.skipif(not os.path.isfile("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"),
                    reason="install Debian's fonts-noto-color-emoji (make test does)")
def test_gateway_emoji_shows_the_image(real):
    page, _ = real
    run_on_device(page, "emoji", "a dog wearing a crown")
    image = page.locator("#emoji-image")
    image.wait_for(state="visible")
    # the PNG decoded in the page: the data URL is a real image, not just an attribute
    assert page.evaluate("() => document.getElementById('emoji-image').naturalWidth") == 256
    page.screenshot(path=str(ARTIFACTS / "gateway-emoji.png"), full_page=True)


def test_emoji_cuts_a_long_description_by_code_points_not_utf16_units(real):
    """An emoji at the 300th character is 2 UTF-16 units: cutting there must keep it whole (the server
    counts code points), or the request holds a lone surrogate and is refused as invalid Unicode."""
    page, _ = real
    text = "a" * 299 + "\U0001F600" + " and more"
    fill(page, "emoji", "auto", text)
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/v1/emoji")) as sent:
        page.click("#run")
    assert sent.value.post_data_json["description"] == text[:300]  # 299 letters and the whole emoji


def test_a_page_rebound_to_the_gateway_gets_nothing(browser, gateway):
    """DNS rebinding in a real browser: evil.example resolves to 127.0.0.1, so its scripts are same-origin
    with the gateway's port. The gateway refuses the foreign Host: no playground, no answers, no decisions."""
    from tests.gateway.browser.conftest import CHROMIUM, CHROMIUM_ARGS

    port = gateway.url.rsplit(":", 1)[1]
    rebinding = browser.browser_type.launch(executable_path=CHROMIUM, headless=True,
                                            args=[*CHROMIUM_ARGS, "--host-resolver-rules=MAP evil.example 127.0.0.1"])
    try:
        page = rebinding.new_page()
        response = page.goto(f"http://evil.example:{port}/")
        assert response.status == 403 and "host_not_allowed" in page.content()
        result = page.evaluate("""async () => {
            const chat = await fetch('/v1/chat/completions', {method: 'POST',
                headers: {'Content-Type': 'application/json', 'X-Tether-Consent': 'yes'},
                body: JSON.stringify({model: 'device', max_tokens: 2, messages: [{role: 'user', content: 'Hi'}]})});
            const recent = await fetch('/v1/route/recent');
            return [chat.status, recent.status, await recent.text()];
        }""")
        assert result[:2] == [403, 403] and "host_not_allowed" in result[2]
    finally:
        rebinding.close()


def test_a_second_run_while_one_is_under_way_is_ignored(real):
    page, chat_posts = real
    fill(page, "chat", "device", "Write two sentences about the sea.")
    page.focus("#input")
    page.keyboard.press("Control+Enter")
    page.keyboard.press("Control+Enter")
    page.click("#run", force=True)  # disabled while running: nothing happens
    wait_done(page, timeout=120_000)
    page.wait_for_timeout(500)
    assert len(chat_posts) == 1
    assert page.locator("#stop").is_hidden() and "Done" in page.locator("#status").text_content()


def test_the_consent_dialog_keeps_focus_and_names_the_tier(consenting):
    page, chat_posts = consenting
    fill(page, "chat", "third-party", NAMED)
    page.click("#run")
    page.locator("#consent-modal").wait_for(state="visible")
    assert page.locator("#consent-title").text_content() == "Send to a third party?"
    for _ in range(4):
        page.keyboard.press("Tab")
        assert page.evaluate("() => document.getElementById('consent-modal').contains(document.activeElement)")
    page.keyboard.press("Control+Enter")  # cannot start a run behind the dialog
    page.click("#consent-refuse")
    page.locator("#consent-modal").wait_for(state="hidden")
    assert page.evaluate("() => document.querySelector('main').inert") is False
    page.wait_for_timeout(500)
    assert chat_posts == []
    assert page.locator("#route-escalated").count() == 1


# ------------------------------------------------------------------ no third party configured


def test_with_no_third_party_the_page_asks_nothing_and_runs_where_it_can(real):
    """No third party is configured: choosing it shows no consent dialog (an Allow could only end in
    a 404); the page says so plainly and the request runs where the router can put it."""
    page, chat_posts = real
    watch_the_dialog(page)
    fill(page, "chat", "third-party", NAMED)
    page.click("#run")
    page.wait_for_function("() => /Done in|Error|Refused|Stopped/.test(document.getElementById('status').textContent) "
                           "|| !document.getElementById('consent-modal').hidden", timeout=240_000)
    wait_done(page, timeout=240_000)
    status = page.locator("#status").text_content()
    assert page.evaluate("() => window.dialogShown") is False
    assert "no third-party model is configured" in status.lower() and "error" not in status.lower(), status
    assert len(chat_posts) == 1
    assert chat_posts[0].post_data_json["model"] == "auto" and chat_posts[0].headers.get("x-tether-consent") is None
    assert page.locator("#route-tier").text_content() == "device"
    assert page.locator("#result").text_content().strip(), status
    # the choice itself says so, before anyone picks it
    assert "not configured" in page.locator('#target option[value="third-party"]').text_content()
    assert page.js_errors == []


def test_with_no_cloud_the_preview_says_no_tier_off_the_device_is_configured(real):
    page, _ = real
    fill(page, "summarize", "auto", "Call Alice Johnson about the Berlin contract.")
    for tier, words in (("third_party", "no third party is configured"),
                        ("private_cloud", "no private cloud is configured")):
        verdict = page.locator(f'.tier-card[data-tier="{tier}"] .verdict')
        page.wait_for_function("([sel, words]) => (document.querySelector(sel)?.textContent || '').includes(words)",
                               arg=[f'.tier-card[data-tier="{tier}"] .verdict', words], timeout=60_000)
        assert "needs consent" not in verdict.text_content()
