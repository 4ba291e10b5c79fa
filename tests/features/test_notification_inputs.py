"""Notification summaries of what phones really send: the same notification twice, amounts
written the European way, messages in other scripts."""

from __future__ import annotations

import pytest

from tether.features import notifications as N

SMALL = "qwen2.5-0.5b"
PAYMENT = {"app": "Bank", "title": "Zahlung", "body": "Kartenzahlung von 42,50 € bei REWE Markt erfolgreich.",
           "timestamp": "2025-03-01T12:00:00Z"}


def test_one_notification_delivered_twice_is_one():
    """Two copies made a stack of two, which the model summarized as "Kartenzahlung erfolgreich."."""
    digest = N.summarize_notifications([PAYMENT, dict(PAYMENT)], model=SMALL)
    (stack,) = digest.stacks
    assert len(stack.notifications) == 1 and stack.as_sent
    assert "42,50 €" in stack.summary and "REWE" in stack.summary
    # a second message at the same time, or the same words later, is another notification
    later = dict(PAYMENT, timestamp="2025-03-01T12:05:00Z")
    (stack,) = N.summarize_notifications([PAYMENT, later], model=SMALL).stacks
    assert len(stack.notifications) == 2


def test_an_amount_with_its_currency_after_it_must_be_kept():
    items = N.parse_notifications([PAYMENT])
    assert N.missing_key_facts("Kartenzahlung erfolgreich.", items) == ["missing 42,50 €"]
    assert N.missing_key_facts("Paid 142,50 € at REWE.", items) == ["missing 42,50 €"]
    assert N.missing_key_facts("Paid 42,50 € at REWE Markt.", items) == []
    assert N.missing_key_facts("Paid €42,50 at REWE.", items) == []
    eur = N.parse_notifications([dict(PAYMENT, body="You paid 19.99 EUR to Netflix.")])
    assert N.missing_key_facts("You paid Netflix.", eur) == ["missing 19.99 EUR"]


HINDI = [{"app": "WhatsApp", "sender": "Priya Sharma", "body": "क्या आप कल शाम 6 बजे डिनर के लिए आ रहे हैं?",
          "timestamp": "2025-03-01T17:00:00+05:30"},
         {"app": "WhatsApp", "sender": "Priya Sharma", "body": "मैंने रेस्टोरेंट में टेबल बुक कर दी है।",
          "timestamp": "2025-03-01T17:05:00+05:30"}]


def test_a_summary_in_another_script_than_the_messages_is_refused():
    hindi = N.parse_notifications(HINDI)
    made_up = "Priya Sharma asked if she had any questions about WhatsApp's notifications."
    assert N.other_script(made_up, hindi) == ["a summary in Latin script, not the messages' own"]
    assert N.other_script("Priya Sharma: कल शाम 6 बजे डिनर?", hindi) == []  # names from the stack do not count
    english = N.parse_notifications([{"app": "Mail", "sender": "Bob", "body": "Lunch at 1?",
                                      "timestamp": "2025-03-01T09:00:00"}])
    assert N.other_script("Bob asks about lunch at 1.", english) == []
    assert N.other_script("鲍勃问午餐的事。", english) == ["a summary in CJK script, not the messages' own"]


@pytest.mark.quality
def test_hindi_messages_are_not_summarized_with_an_invented_english_sentence(small):
    """The 0.5B model wrote the made-up sentence above for these two messages about dinner."""
    (stack,) = N.summarize_notifications(HINDI, model=SMALL).stacks
    assert stack.extractive or not N.other_script(stack.summary, stack.notifications)
    assert "questions" not in stack.summary


def test_a_japanese_summary_gets_no_second_full_stop():
    assert N._one_sentence("田中の会議の変更が通知されました。") == "田中の会議の変更が通知されました。"
