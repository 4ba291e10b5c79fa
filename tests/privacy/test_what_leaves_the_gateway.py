"""What actually leaves the device through ``POST /v1/chat/completions``: a real ``tether serve`` and a
real OpenAI-compatible provider on loopback that records every request body. The personal data hides
in the system message, an earlier turn's content parts and the last message, written the ways that
defeated the recognizers before 2026-12-04 (mathematical bold, Arabic-Indic digits, strike-through,
another script's "my name is", a national ID named in Spanish, a small-form "﹫")."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from tests.gateway.conftest import behind_a_provider

NAME = "𝐌𝐚𝐫𝐢𝐚 𝐆𝐨𝐧𝐳𝐚𝐥𝐞𝐳"  # mathematical bold
CARD = "٤١١١ ١١١١ ١١١١ ١١١١"  # Arabic-Indic digits
STRUCK = "".join(c + "\u0336" for c in "Kowalczyk")
VALUES = [NAME, CARD, STRUCK, "王小明", "12345678Z", "john\ufe6bgmail\ufe52com"]
MESSAGES = [
    {"role": "system", "content": f"The user is {NAME}."},
    {"role": "user", "content": [{"type": "text", "text": f"My card is {CARD}."},
                                 {"type": "text", "text": "我叫王小明。"}]},
    {"role": "assistant", "content": "Noted."},
    {"role": "user", "content": f"Mi DNI es 12345678Z. Mail john\ufe6bgmail\ufe52com or Mr {STRUCK}. Repeat it."},
]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    with behind_a_provider(tmp_path_factory.mktemp("leaves"), {
            "consent": "always", "third_party": {"use_for_cloud": True, "retries": 0}}) as both:
        yield both


def _chat(server, **extra) -> dict:
    r = httpx.post(server.url + "/v1/chat/completions", timeout=120,
                   json={"model": "third-party", "max_tokens": 64, "messages": MESSAGES, **extra})
    assert r.status_code == 200, r.text
    assert r.headers["x-tether-tier"] == "third_party"
    return r.json()


def test_nothing_of_it_reaches_the_provider_and_the_echo_comes_back_whole(setup):
    server, provider = setup
    provider.reset()
    answer = _chat(server)["choices"][0]["message"]["content"]
    [sent] = provider.captured()
    body = json.dumps(sent["body"], ensure_ascii=False)
    assert [v for v in VALUES if v in body] == []
    assert "<PERSON_" in body and "<CREDIT_CARD_1>" in body and "<ID_NUMBER_1>" in body
    # the provider echoes the last message it got (the transcript), restored on the device
    for value in ("12345678Z", STRUCK, "john\ufe6bgmail\ufe52com"):
        assert value in answer


def test_an_answer_with_its_placeholders_in_lower_case_is_restored(setup):
    server, provider = setup
    provider.reset()
    _chat(server)
    body = json.dumps(provider.captured()[0]["body"], ensure_ascii=False)
    placeholders = sorted(set(re.findall(r"<[A-Z_]+_\d+>", body)))
    provider.reset()
    provider.faults([{"content": " ".join(p.lower() for p in placeholders)}])
    answer = _chat(server)["choices"][0]["message"]["content"]
    assert "<" not in answer and "12345678Z" in answer and CARD in answer
