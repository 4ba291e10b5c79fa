"""Keep-wording review of Japanese and Chinese, written without spaces: spaCy's English
tokenizer makes a whole clause one token, as near to any rewrite of it as to a fix."""

from __future__ import annotations

from tether.features import wording


def test_another_word_in_a_japanese_or_chinese_clause_is_rewording():
    """The 0.5B model "proofread" 資料 (materials) into データ (data), and it was kept."""
    text = "明日の会議は午後3時からです。資料を準備してください。"
    kept, undone = wording.review(text, "明日の会議は午後3時からです。データを準備してください。")
    assert kept == text and len(undone) == 1 and "データ" in undone[0].replacement
    kept, undone = wording.review("资料在共享文件夹里。", "数据在共享文件夹里。")
    assert kept == "资料在共享文件夹里。" and undone


def test_a_wrong_character_or_a_mark_in_japanese_or_chinese_is_a_fix():
    assert wording.review("明日の会義は午後3時からです。", "明日の会議は午後3時からです。") == \
        ("明日の会議は午後3時からです。", [])
    assert wording.review("我明天去北京，你呢", "我明天去北京。你呢？") == ("我明天去北京。你呢？", [])
