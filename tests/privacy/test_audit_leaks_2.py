"""Leaks found by the audit of 2026-12-04: a quoted local part, an address in another script, text
reversed by a right-to-left override, a Japanese address with a numbered block (``北1条``). Each
left the device, in whole or in part, before the fix."""

from __future__ import annotations

import pytest

TIERS = ["private_cloud", "third_party"]


def _payload(guard, text: str, tier: str) -> str:
    session = guard.session()
    payload = guard.prepare(text, tier, session=session).require_payload()
    assert session.restore(payload) == text
    return payload


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("address", ['"john.doe"@example.com', '"john doe"@example.com',
                                     '"john\\"doe"@example.org'])
def test_an_email_with_a_quoted_local_part_leaves_as_one_placeholder(guard, tier, address):
    payload = _payload(guard, f"Write to {address} today.", tier)
    assert payload == "Write to <EMAIL_ADDRESS_1> today.", payload


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("address", ["用户@例子.广告", "अजय@डाटा.भारत", "χρήστης@παράδειγμα.ελ", "коля@пример.рф",
                                     "почта@пример.рф", "josé@correo.es", "user@例子.公司", "квіточка@пошта.укр"])
def test_an_internationalised_email_leaves_as_a_placeholder(guard, tier, address):
    payload = _payload(guard, f"Mail {address} now", tier)
    assert payload == "Mail <EMAIL_ADDRESS_1> now", payload


@pytest.mark.parametrize("tier", TIERS)
def test_an_internationalised_email_between_cjk_words_leaves(guard, tier):
    payload = _payload(guard, "请联系 用户@例子.广告 谢谢", tier)
    assert "例子" not in payload and "<EMAIL_ADDRESS_1>" in payload, payload


@pytest.mark.parametrize("text", [
    "ping @handle about it", "see @张三.明天 见", "if a@b: return", "@app.route('/x')",
    "user@host:~$ ls -la", "root@服务器:~# uptime", "例子.广告 is a made-up domain",
    'He said "hi"@ the door', "scores: 5@3.5 and 2@1.25",
])
def test_text_like_an_address_that_is_none_is_not_an_email(guard, text):
    assert [s.text for s in guard.detect(text) if s.entity_type == "EMAIL_ADDRESS"] == []


RLO, LRO, PDF, RLI, PDI = "\u202e", "\u202d", "\u202c", "\u2067", "\u2069"


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("text", [
    f"Mail {RLO}moc.elpmaxe@nhoj{PDF} now",
    f"Mail {RLO}moc.elpmaxe@nhoj",  # to the end of the text
    f"Mail {RLO}moc.elpmaxe@nhoj\nand more",  # to the end of the line
    f"Mail {RLI}{RLO}moc.elpmaxe@nhoj{PDI} now",
    '{"to": "\\u202emoc.elpmaxe@nhoj"}',  # the override escaped in JSON
])
def test_an_email_reversed_by_a_right_to_left_override_leaves_as_a_placeholder(guard, tier, text):
    payload = _payload(guard, text, tier)
    assert "elpmaxe" not in payload and "<EMAIL_ADDRESS_1>" in payload, payload


@pytest.mark.parametrize("tier", TIERS)
def test_an_override_inside_an_override_reads_as_shown(guard, tier):
    # shown as "call john@example.com": the outer run is reversed, the inner left-to-right one is not
    text = f"call {RLO}moc.{LRO}example{PDF}@nhoj{PDF}"
    payload = _payload(guard, text, tier)
    assert "example" not in payload and "nhoj" not in payload, payload


@pytest.mark.parametrize("tier", TIERS)
def test_a_card_reversed_by_an_override_leaves_as_a_placeholder(guard, tier):
    payload = _payload(guard, f"card {RLO}1111 1111 1111 1114{PDF} ok", tier)
    assert "1111" not in payload, payload


@pytest.mark.parametrize("text", [
    f"The arrow {RLO}>-- sdrawkcab{PDF} points back and {RLO}olleh{PDF} says hello.",
    f"The file {RLO}gpj.exe{PDF} is malware", f"Price: {RLO}00.99${PDF} only",
    f"{RLO}שלום עולם{PDF}, מה שלומך?", f"{LRO}English text here{PDF} ok",
])
def test_reversed_text_that_is_no_personal_data_is_kept(guard, text):
    session = guard.session()
    assert guard.prepare(text, "third_party", session=session).require_payload() == text


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize(("text", "street"), [
    ("住所は札幌市中央区北1条西2丁目です。", "札幌市中央区北1条西2丁目"),
    ("札幌市中央区北1条", "札幌市中央区北1条"),
    ("北海道札幌市中央区南3条西4丁目1番地に来てください", "北海道札幌市中央区南3条西4丁目1番地"),
    ("旭川市4条通8丁目に住んでいます", "旭川市4条通8丁目"),
])
def test_a_japanese_address_with_a_numbered_block_leaves(guard, tier, text, street):
    payload = _payload(guard, text, tier)
    assert "条" not in payload and "<STREET_ADDRESS_1>" in payload, payload


@pytest.mark.parametrize("text", ["東京都条例第5条に基づく", "日本国憲法第9条", "第1条 この法律は", "大阪市の第3条"])
def test_an_article_of_a_law_is_no_japanese_address(guard, text):
    assert [s.text for s in guard.detect(text) if s.entity_type == "STREET_ADDRESS"] == []


def test_the_block_pattern_takes_linear_time_on_adversarial_text():
    import time

    from tether.privacy.recognizers import cjk_streets

    start = time.perf_counter()
    cjk_streets(("札幌市" * 30 + "1条") * 800)
    cjk_streets("北" * 6 + ("区" * 40 + "1") * 1_000)
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("text", [
    ("\u202e\u202d" * 62 + "ab cd " * 100) * 200,
    "\u202e" * 200_000,
    ("\u202ex" * 62 + "\u202c" * 62) * 2_000,
    ("\u2067\u202e" * 70 + "x") * 2_000,
])
def test_reading_nested_overrides_takes_linear_time(text):
    import time

    from tether.privacy.detect import _as_shown

    start = time.perf_counter()
    shown, order = _as_shown(text)
    assert time.perf_counter() - start < 5
    assert sorted(order) == list(range(len(text))) and len(shown) == len(text)
