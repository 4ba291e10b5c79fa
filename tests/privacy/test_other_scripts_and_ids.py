"""Personal data written in scripts without capitals, and national IDs named in the writer's own
language: each was sent as written before 2026-12-04 ("我叫王小明", "Mi DNI es 12345678Z")."""

from __future__ import annotations

import pytest


def _found(guard, text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for s in guard.detect(text):
        out.setdefault(s.entity_type, []).append(s.text)
    return out


@pytest.mark.parametrize(("text", "name"), [
    ("我叫王小明，今天很高兴。", "王小明"),
    ("我的名字是李娜。", "李娜"),
    ("私の名前は山田太郎です。", "山田太郎"),
    ("私は佐藤花子と申します。", "佐藤花子"),
    ("제 이름은 이서연이에요.", "이서연"),
    ("اسمي محمد الأحمد ورقم هاتفي معك", "محمد الأحمد"),
    ("שמי דוד כהן ואני גר כאן", "דוד כהן"),
    ("मेरा नाम राहुल शर्मा है।", "राहुल शर्मा"),
])
def test_a_name_after_my_name_is_in_a_script_without_capitals(guard, text, name):
    session = guard.session()
    payload = guard.prepare(text, "private_cloud", session=session).require_payload()
    assert name not in payload and "<PERSON_1>" in payload
    assert session.restore(payload) == text


def test_an_ordinary_sentence_with_no_name_cue_keeps_its_words(guard):
    assert _found(guard, "我是学生，我喜欢学习中文。") == {}


@pytest.mark.parametrize(("text", "street"), [
    ("我住在北京市朝阳区建国路88号。", "北京市朝阳区建国路88号"),
    ("住所は東京都中央区銀座4丁目5番3号です。", "東京都中央区銀座4丁目5番3号"),
])
def test_a_chinese_or_japanese_street_address(guard, text, street):
    assert street in _found(guard, text).get("STREET_ADDRESS", []), _found(guard, text)


@pytest.mark.parametrize(("text", "number"), [
    ("이름은 김민준입니다. 전화 010-1234-5678", "010-1234-5678"),
    ("Мой телефон 8 (916) 123-45-67", "8 (916) 123-45-67"),
])
def test_a_phone_number_after_its_cue_in_korean_or_russian(guard, text, number):
    assert number in _found(guard, text).get("PHONE_NUMBER", []), _found(guard, text)


@pytest.mark.parametrize(("text", "value"), [
    ("Il mio codice fiscale è RSSMRA85T10A562S.", "RSSMRA85T10A562S"),
    ("Codice fiscale: RSSMRA85T10A562S", "RSSMRA85T10A562S"),
    ("Mi DNI es 12345678Z.", "12345678Z"),
    ("Mi CURP es GODE561231HDFRRN09", "GODE561231HDFRRN09"),
    ("My personnummer är 19900101-1234.", "19900101-1234"),
    ("Mój PESEL to 90010112345.", "90010112345"),
    ("身份证号：110101199003074578", "110101199003074578"),
    ("我的身份证号是11010119900307457X", "11010119900307457X"),
    ("私のマイナンバーは1234 5678 9012です。", "1234 5678 9012"),
    ("주민등록번호 900101-1234567", "900101-1234567"),
    ("주민등록번호는 900101-1234567입니다", "900101-1234567"),
    ("NRIC: S1234567D", "S1234567D"),
    ("TC Kimlik No: 10000000146", "10000000146"),
])
def test_a_national_id_named_in_its_own_language(guard, text, value):
    spans = guard.detect(text)
    assert any(s.start <= text.index(value) and text.index(value) + len(value) <= s.end for s in spans), spans


# Runs of the letters these patterns repeat: a Chinese street's divisions ("市") could be cut in
# exponentially many ways (40 of them took minutes); 80 KB of each must read in linear time.
ADVERSARIAL = {
    "divisions": ("市" * 40 + "。") * 2_000,
    "one run of divisions": "北京市朝阳区" * 13_000,
    "japanese divisions": ("東京都" * 30 + "1丁目") * 800,
    "name cues": "我叫" * 40_000,
    "arabic words": "اسمي " + "بب " * 26_000,
    "hindi words": "मेरा नाम " + "कक " * 26_000,
    "id cues": "身份证号" * 20_000,
}


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_the_new_patterns_take_linear_time_on_adversarial_text(name):
    import time

    from tether.privacy.recognizers import RegexRecognizer, builtin_recognizers, cjk_streets

    text = ADVERSARIAL[name]
    recognizers = [r for r in builtin_recognizers() if isinstance(r, RegexRecognizer)]
    start = time.perf_counter()
    cjk_streets(text)
    for rec in recognizers:
        rec.analyze(text, [])
    assert time.perf_counter() - start < 5, name  # linear: well under a second on a laptop
