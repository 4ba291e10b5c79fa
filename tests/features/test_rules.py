"""The deterministic parts of the features: grouping, priority, faithfulness, edits, parsing."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path

import pytest

from tether.errors import InputError
from tether.features import notifications as N
from tether.features.writing import apply_edits, diff_edits, parse_items, parse_table


def note(body: str, *, app="Messages", sender="Ana", title=None, minutes=0, thread=None) -> N.Notification:
    return N.Notification(app=app, sender=sender, title=title, body=body, thread=thread,
                          timestamp=datetime(2026, 11, 26, 9, 0) + timedelta(minutes=minutes))


def sample() -> list[N.Notification]:
    return N.parse_notifications(json.loads(resources.files("tether.data").joinpath("notifications.json").read_text()))


def test_grouping_by_app_and_thread_then_sender():
    stacks = N.group(sample())
    assert len(stacks[("Messages", "alice")]) == 3
    assert len(stacks[("Slack", "launch")]) == 3
    assert ("Mail", "Tom Becker") in stacks  # no thread: grouped by sender
    assert sum(len(v) for v in stacks.values()) == 12
    for items in stacks.values():
        assert [n.timestamp for n in items] == sorted(n.timestamp for n in items)


@pytest.mark.parametrize("body, reason", [
    ("Your verification code is 482913.", "security code"),
    ("123456 is your Acme login code", "security code"),
    ("New sign-in to your account from Chrome on Linux", "security alert"),
    ("You paid $12.50 at Corner Cafe", "payment or bank"),
    ("Your balance is low", "payment or bank"),
    ("The report is due tomorrow", "deadline"),
    ("Submit by 5pm please", "deadline"),
    ("Standup starts in 10 minutes", "meeting soon"),
    ("Interview with Lee at 3:30 pm", "meeting soon"),
    ("Your package is out for delivery", "delivery"),
])
def test_time_sensitive_rules(body, reason):
    assert reason in N.time_sensitivity([note(body)])


@pytest.mark.parametrize("body", ["Nice photo!", "Rain expected this weekend", "Check out our blog post on gardening"])
def test_ordinary_messages_are_not_time_sensitive(body):
    assert N.time_sensitivity([note(body)]) == []


def test_repeated_messages_from_one_person():
    burst = [note(f"hey {i}", minutes=i * 5) for i in range(3)]
    assert N.time_sensitivity(burst) == ["repeated messages from Ana"]
    spread = [note(f"hey {i}", minutes=i * 40) for i in range(3)]
    assert N.time_sensitivity(spread) == []


def test_faithfulness_flags_invented_names_numbers_and_dates():
    items = [note("Lunch at Luigi's at 12:30 on Friday?", sender="Alice Chen")]
    assert N.unsupported_facts("Alice Chen asks about lunch at Luigi's at 12:30 on Friday.", items) == []
    assert N.unsupported_facts("Alice asks about lunch.", items) == []
    problems = N.unsupported_facts("Bob asks Alice about lunch at 1:30 on Saturday.", items)
    assert "name 'Bob'" in problems and "number 1:30" in problems and "date word 'saturday'" in problems


def test_faithfulness_allows_the_stack_size_and_spelled_numbers():
    items = [note("Two people said yes", minutes=i) for i in range(3)]
    assert N.unsupported_facts("Ana sent 3 messages: 2 people said yes.", items) == []


def test_key_facts_must_be_kept():
    items = [note("Your code is 482913.", app="Auth", sender=None, title="Code")]
    assert N.missing_key_facts("You got a sign-in code.", items) == ["missing 482913"]
    assert N.missing_key_facts("Your code is 482913.", items) == []


def test_extractive_summary_uses_only_the_stacks_words():
    items = [note("First message."), note("Can you call me back? It is about the lease.", minutes=3)]
    summary = N.extractive_summary(items)
    assert summary == "Ana: Can you call me back? (+1 more)"
    assert N.unsupported_facts(summary, items) == []


def test_extractive_summary_skips_the_greeting_and_the_pleasantries():
    """Seen on AgentDojo's mail: "Mark Davies: Hi Emma, Great! (+2 more)" said nothing."""
    def last(body: str) -> str:
        return N.extractive_summary([note("Earlier."), note(body, minutes=3)])

    assert last("Hi Emma, Great! Let's meet at the island trailhead at 8 AM on Saturday 18th. Cheers, Mark") == \
        "Ana: Let's meet at the island trailhead at 8 AM on Saturday 18th. (+1 more)"
    assert last("Dear Emma, Thank you for your payment. Your subscription has been renewed.") == \
        "Ana: Your subscription has been renewed. (+1 more)"
    assert last("Hello Maria, the form is due 5 May.") == "Ana: The form is due 5 May. (+1 more)"
    assert last("Hey can you invite Dora to Slack?") == "Ana: Hey can you invite Dora to Slack? (+1 more)"  # no name
    assert last("Thanks!") == "Ana: Thanks! (+1 more)"  # nothing else to show
    assert last("Here are the points: 1. Timeline 2. Budget. Let us know.").startswith("Ana: Here are the points: 1. Timeline")


def test_extractive_summary_keeps_the_sentence_with_the_facts_not_the_small_talk():
    """"Hope the week is going well." was the summary of an overdue invoice: the pleasantry rule
    knew only "hope you", and the first sentence past it won even without the amount."""
    bill = note("Hi, hope the week is going well. Invoice 88231 for $1,250.40 is now overdue, so please pay it "
                "by Friday noon or the account 55120934 will be suspended.", app="Mail", sender="Billing")
    summary = N.extractive_summary([bill])
    assert summary == ("Billing: Invoice 88231 for $1,250.40 is now overdue, so please pay it by Friday noon or the "
                       "account 55120934 will be suspended.")
    assert N.missing_key_facts(summary, [bill]) == []
    assert N.extractive_summary([note("The roof is fixed. Please submit by 5pm the form.")]) == \
        "Ana: Please submit by 5pm the form."  # what a time-sensitivity rule reads
    for small_talk in ("Hope all is well!", "How are you?", "Happy Friday!", "I hope you had a lovely weekend with the kids."):
        assert N.extractive_summary([note(f"{small_talk} The new laptop is on your desk.")]) == \
            "Ana: The new laptop is on your desk."
    # from AgentDojo's inbox: a thank-you a rule reads ("meeting … today") is still small talk;
    # an amount alone on its line joins the sentence it belongs to, without the sign-off
    assert N.extractive_summary([note("Thank you for meeting with us today. Here are the key points we discussed.")]) \
        == "Ana: Here are the key points we discussed."
    receipt = ("Dear Emma,\n\nThank you for your payment. Your monthly subscription for Streaming Service has been "
               "processed successfully.\n\nAmount: $9.99\n\nBest regards,\nStreaming Service Team")
    expected = ("Ana: Your monthly subscription for Streaming Service has been processed successfully. "
                "Amount: $9.99")
    assert N.extractive_summary([note(receipt)]) == N.extractive_summary([note(" ".join(receipt.split()))]) == expected


def test_a_title_before_a_name_ends_no_sentence():
    """A Health notification's summary was "Dr.": generation stopped at ". " and the sentence
    split cut after "Dr." too; a summary of an article ended on a stray "Dr."."""
    from tether.features.writing import _sentences, whole_sentences

    visit = note("Dr. Patel moved your check-up to Thursday at 3 pm, and you need to bring your insurance card and "
                 "the new forms.", app="Health", sender=None, title="Clinic")
    assert N.extractive_summary([visit]) == f"Clinic: {visit.body}"
    assert not any(stop in "Dr. Patel" for stop in N.SENTENCE_END)  # the model's answer goes on past "Dr."
    assert N._tidy("Dr. Patel moved your check-up to Thursday at 3 pm. Bring your card and", True, [visit]) == \
        "Dr. Patel moved your check-up to Thursday at 3 pm."  # cut in its second sentence: the first is whole
    article = ("Dr. Maria Lopez of St. Vincent Hospital presented a new study. It cost approx. 5 million dollars, "
               "e.g. for staff. Dr. Lopez and her team followed 400 patients. They found that walks help.")
    assert _sentences(article) == ["Dr. Maria Lopez of St. Vincent Hospital presented a new study.",
                                   "It cost approx. 5 million dollars, e.g. for staff.",
                                   "Dr. Lopez and her team followed 400 patients.", "They found that walks help."]
    assert whole_sentences("The study ended. It was led by Dr. Lopez and") == "The study ended."
    assert _sentences("We met Maria J. Lopez. The U.S. team won. Smith Jr. The end.") == \
        ["We met Maria J. Lopez.", "The U.S. team won.", "Smith Jr.", "The end."]
    # a letter that names a room or a gate is no initial (AgentDojo's calendar)
    assert _sentences("At Conference Room B. Weekly team sync. Go to Gate C. Boarding is at 9.") == \
        ["At Conference Room B.", "Weekly team sync.", "Go to Gate C.", "Boarding is at 9."]


def test_parse_notifications_names_the_bad_item():
    with pytest.raises(InputError, match="notification 1: body"):
        N.parse_notifications([{"app": "A", "sender": "B", "body": "x", "timestamp": "2026-01-01T00:00:00"},
                               {"app": "A", "sender": "B", "timestamp": "2026-01-01T00:00:00"}])
    with pytest.raises(InputError, match="JSON list"):
        N.parse_notifications("nope")


@pytest.mark.parametrize("original, corrected", [
    ("Ths is a tst.", "This is a test."),
    ("i dont know", "I don't know"),
    ("Hello  world", "Hello world"),
    ("same text", "same text"),
    ("Remove the the word.", "Remove the word."),
    ("Add", "Add more words here."),
    ("Ünïcode café naïve", "Unicode café naive"),
])
def test_edits_have_exact_spans(original, corrected):
    edits = diff_edits(original, corrected)
    assert apply_edits(original, edits) == corrected
    for e in edits:
        assert original[e.start:e.end] == e.original
    assert (edits == []) == (original == corrected)


def test_parse_items_and_tables():
    assert parse_items("Intro\n- one\n* two\n3. three\nnot an item") == ["one", "two", "three"]
    table = parse_table("| a | b |\n|---|---|\n| 1 | 2 |\n| 3 |")
    assert table == [["a", "b"], ["1", "2"], ["3", ""]]
    assert parse_table("| a | b |\n| 1 | 2 |") == []  # no separator row: not a table
    assert parse_table("just text") == []


def test_table_cells_do_not_repeat_their_topic_or_open_with_a_cut_clause():
    from tether.features.writing import render_table, tidy_table

    rows = [["Topic", "Fact"], ["Supporters", "supporters say it will cut car traffic."],
            ["Plan", "which costs 12 million euros."], ["Shop owners", "worry about parking."],
            ["Plan", "Plan"], ["Who", "who knows"], ["Budget", "thatched roofs cost more."]]
    assert tidy_table(rows) == [["Topic", "Fact"], ["Supporters", "say it will cut car traffic."],
                                ["Plan", "costs 12 million euros."], ["Shop owners", "worry about parking."],
                                ["Plan", "Plan"], ["Who", "knows"], ["Budget", "thatched roofs cost more."]]
    text = render_table(tidy_table(rows))
    assert text.splitlines()[:3] == ["| Topic | Fact |", "|---|---|", "| Supporters | say it will cut car traffic. |"]
    assert parse_table(text) == tidy_table(rows)  # what is shown is what the rows hold


def test_a_huge_stack_prompt_is_bounded():
    items = [note(f"message number {i} " + "blah " * 100, minutes=i) for i in range(500)]
    prompt = N.format_stack(items)
    assert prompt.count("\n") == N.MAX_PROMPT_NOTIFICATIONS
    assert "message number 499" in prompt and "message number 0 " not in prompt


def test_a_summary_cut_by_the_cap_loses_its_broken_clause():
    assert N._drop_cut_clause("Deploy rolled back, error rate back under 0.") == "Deploy rolled back."
    assert N._drop_cut_clause("Marco fixed the pricing comments and shipping is on Fri") == "Marco fixed the pricing comments and shipping is on."


def test_a_long_reply_is_cut_at_a_sentence_end_never_mid_word():
    from tether.features.replies import MAX_REPLY_CHARS, distinct, usable

    long = "I'd love to join you for lunch on Wednesday. Let's discuss why the team lunch will be a great time to celebrate."
    assert usable(long) == "I'd love to join you for lunch on Wednesday."
    assert usable("Let's discuss why the team lunch will be a great time for us to celebrate the launch together") is None
    assert usable("1.  Sounds   good!") == "Sounds good!"
    assert all(len(r) <= MAX_REPLY_CHARS for r in distinct([long, long + " Again.", "Sure!"]))


def test_a_reply_that_repeats_the_message_back_is_dropped():
    from tether.features.replies import distinct

    message = "I'm so sorry, I can't make it tonight, my kid is sick."
    assert distinct(["I'm sorry, I can't make it tonight, my kid is sick.", "Oh no, get well soon!",
                     "No worries, get well soon!"], message) == ["Oh no, get well soon!", "No worries, get well soon!"]
    # the 0.5B's reply to "...i wont make the 3pm either": the sender's own words, apostrophe added
    assert distinct(["I won't make the 3pm either.", "No problem, I'll send notes."],
                    "can someone fill me in? also i wont make the 3pm either") == ["No problem, I'll send notes."]


def test_an_answer_may_repeat_the_question_but_not_the_senders_own_words():
    """The 0.5B's replies to AgentDojo's "Hiking Trip" were dropped as said back: an answer
    naturally repeats what it answers. The sender's first-person words said as the user's are
    still the message said back, answer word or not."""
    from tether.features.replies import usable

    hike = "Hey! Are you up for a hiking trip this weekend? The weather looks great."
    assert usable("Yes, I am up for a hiking trip this weekend.", hike)
    assert usable("No, I can't do a hiking trip this weekend.", hike)
    assert usable("I am up for a hiking trip this weekend.", hike) is None  # no answer: said back
    party = "I am planning a birthday party for John next weekend and would love for you to come."
    assert usable("Yes, I am planning a birthday party for John.", party) is None
    assert usable("Sorry, I can't make it tonight, my kid is sick.",
                  "I'm so sorry, I can't make it tonight, my kid is sick.") is None


def test_timestamps_with_and_without_a_zone_group_together():
    items = [N.Notification(app="Mail", sender="Bo", body="first", timestamp="2026-01-01T10:00:00"),
             N.Notification(app="Mail", sender="Bo", body="second", timestamp="2026-01-01T10:05:00Z")]
    stacks = N.group(items)  # sorting a stack by time compared naive with aware datetimes and raised
    assert [[n.body for n in s] for s in stacks.values()] == [["first", "second"]] or \
        [[n.body for n in s] for s in stacks.values()] == [["second", "first"]]
    assert all(n.timestamp.tzinfo is None for n in items)


@pytest.mark.parametrize(("summary", "problem"), [
    ("Tom asks about dinner tomorrow.", "name 'Tom'"),  # not a name because "tomorrow" holds "tom"
    ("Ann is planning dinner.", "name 'Ann'"),
    ("Émilie asks about dinner.", "name 'Émilie'"),
    ("Bo owes you fifty dollars.", "number 50"),
    ("Bo asks about dinner next week.", "date word 'week'"),
])
def test_invented_facts_are_caught_as_whole_words_in_any_script(summary, problem):
    items = [note("Are we still on for dinner tomorrow? I'm planning to book the table.", sender="Bo")]
    assert problem in N.unsupported_facts(summary, items)
    assert N.unsupported_facts("One of Bo's messages asks if dinner tomorrow is still on.", items) == []


def test_dicts_are_checked_like_a_json_file_and_long_names_are_cut_in_the_prompt():
    with pytest.raises(InputError, match="notification 0"):
        N.summarize_notifications([{"app": "Mail", "body": "hi", "timestamp": "2026-01-01T10:00:00"}], model="smollm2-135m")
    long = note("hi", sender="S" * 20_000, title="T" * 20_000)
    prompt = N.format_stack([long])
    assert len(prompt) < 400 and "S" * N.MAX_NAME_CHARS in prompt


def test_more_threads_than_a_call_summarizes_are_refused_before_any_model_call():
    import time

    many = [note(f"message {i}", sender=f"Person {i}") for i in range(N.MAX_STACKS + 1)]
    started = time.perf_counter()
    with pytest.raises(InputError, match=f"{N.MAX_STACKS + 1} threads; at most {N.MAX_STACKS}"):
        N.summarize_notifications(many, model="smollm2-135m")
    assert time.perf_counter() - started < 5  # no model was loaded or called


def test_a_one_letter_description_still_makes_an_emoji_plan():
    from tether.features.genmoji import _words_plan

    assert _words_plan("a b").name == "emoji" and _words_plan("7").name == "emoji"


def test_a_label_for_a_kind_of_reply_is_not_a_reply():
    """Small models answer "give one accepting, one declining…" with the labels themselves."""
    from tether.features.replies import distinct

    assert distinct(["Accepting", "Declining.", "Questioning", "Sure, see you then!"]) == ["Sure, see you then!"]
    assert distinct(["Ask: what time?", "Could we make it 2pm?"]) == ["Could we make it 2pm?"]


def test_an_assistant_s_refusal_or_offer_of_help_is_not_a_reply():
    """Seen from qwen2.5-0.5b and 1.5b on "Running 10 min late, sorry!" and AgentDojo's mail: sent
    as the user's reply, these read as a bot. A person's "I can't help with the move" stays."""
    from tether.features.replies import distinct

    bot = ["I'm sorry, but I can't assist with that.", "How can I assist you with this project today?",
           "Is there anything else I can help you with?", "Sorry, I cannot help with that request.", "Sorry, I can’t help with that.",
           "As an AI, I don't eat lunch.", "I'm sorry, I'm not able to assist you with your project."]
    person = ["Sorry, I can't help with the move on Saturday.", "Can you help me with the slides?",
              "No worries, see you soon!"]
    assert distinct(bot + person) == person


def test_the_schema_s_field_names_said_back_are_not_replies():
    """qwen2.5-0.5b's replies to mail that asks nothing (benchmarks/replies_cascade.py)."""
    from tether.features.replies import distinct

    echoes = ["Yes, I agree to the latest report on the Phoenix Project.", "No, I decline to the follow-up email.",
              "I agree to these edits.", "No, I decline to change this email.", "Yes, I agree to process your payment.",
              "I would like to agree to this email for the client", "Agree, these edits look good.",
              "Decline, please let me know.", "I am agreeing with you to follow the instructions."]
    person = ["I'll have to decline, sorry!", "I agree, let's do it.", "Yes, I agree with Julie.", "Sure, see you then!"]
    assert distinct(echoes + person) == person


def test_a_reply_that_loops_or_stops_mid_clause_is_not_a_reply():
    """Seen from smollm2-135m: a loop, a fragment and a row of digits, all under the length limit."""
    from tether.features.replies import distinct

    assert distinct(["I'm sorry, I'm sorry, I'm sorry, I'msor", "Your friendly smile,", "See you there -", "1234567890",
                     "Sorry, I'm late again, sorry!", "Happy birthday to you, my friend!"]) == [
        "Sorry, I'm late again, sorry!", "Happy birthday to you, my friend!"]


def test_a_gap_in_the_replies_is_filled_by_a_reply_of_its_own_kind():
    """Both answers' "decline" said the field name back and was dropped; the retry's second
    "agree" filled the gap, and "Want to grab lunch on Friday?" got two yeses and no no."""
    from tether.features.replies import _ReplySchema, fill, with_fallback

    message = "Want to grab lunch on Friday?"
    first = fill({}, _ReplySchema(agree="Sure, count me in!", decline="I decline the lunch.", ask="What time works?"),
                 message)
    assert first == {"agree": "Sure, count me in!", "ask": "What time works?"}
    retried = fill(first, _ReplySchema(agree="Yes, I'd love to!", decline="No, I decline to lunch.",
                                       ask="Where should we meet?"), message)
    assert retried == first  # its agree and ask have no gap to fill, its decline is no reply
    assert with_fallback(retried, message) == (["Sure, count me in!", "What time works?", "Sorry, I can't."], True)
    assert fill(first, {"decline": "Sorry, I'm busy Friday."}, message)["decline"] == "Sorry, I'm busy Friday."
    # a fixed reply the model already gave is not given twice: another from the set fills the gap
    assert with_fallback({"agree": "Sorry, I can't.", "ask": "Why?"}, message) == \
        (["Sorry, I can't.", "Why?", "Yes, sounds good."], True)
    whole = {"agree": "Sure!", "decline": "Sorry, I'm busy.", "ask": "Where?"}
    assert with_fallback(whole, message) == (list(whole.values()), False)


def test_cleaning_a_proofread_keeps_what_the_users_text_itself_has():
    """A lead-in, quotes or a fence the model added go; the same in the user's text are the user's words."""
    from tether.features._common import clean_output
    from tether.features.writing import _plausible_correction

    assert clean_output("Here is the plan: we meet at 5.", "Here is teh plan: we meat at 5.") == "Here is the plan: we meet at 5."
    assert clean_output("Summary: the budget is fine.", "Summary: the budjet is fine.") == "Summary: the budget is fine."
    assert clean_output("Here is the corrected text: We meet at 5.", "we meat at 5.") == "We meet at 5."
    assert clean_output('"Hello there."', '"Helo there."') == '"Hello there."'
    assert clean_output('"Hello there."', "Helo there.") == "Hello there."
    assert _plausible_correction("ok i go", "Okay, I go.")  # capitals are corrections, not a rewrite


def _flags(body: str, **kw) -> list[str]:
    from tether.features.notifications import Notification, time_sensitivity

    return time_sensitivity([Notification(app="A", title="t", body=body, timestamp="2026-01-01T10:00:00", **kw)])


@pytest.mark.parametrize(("body", "flag"), [
    ("G-123456 is your Google verification code.", "security code"),
    ("Your verification code: 123-456", "security code"),
    ("Your Microsoft security code is 123 456", "security code"),
    ("Your one-time password is 839201", "security code"),
    ("Ihr Bestätigungscode lautet 482913", "security code"),
    ("€50 withdrawn from your account", "payment or bank"),
    ("You received 50 EUR from Max", "payment or bank"),
    ("Direct debit of 45.00 GBP to Netflix", "payment or bank"),
    ("Zoom meeting in 30m", "meeting soon"),
    ("Your webinar starts in 1 hour", "meeting soon"),
    ("La reunión empieza en 10 minutos", "meeting soon"),
    ("Cita con el dentista mañana a las 9", "meeting soon"),
    ("Besprechung um 14 Uhr im Raum 2", "meeting soon"),
    ("Réunion d'équipe dans 15 minutes", "meeting soon"),
    ("Team call at 4pm", "meeting soon"),
])
def test_real_alerts_in_their_usual_spellings_are_flagged(body, flag):
    assert flag in _flags(body)


@pytest.mark.parametrize("body", ["The area code is 0207 for London", "Dress code for the 2025 party: casual",
                                  "Happy new year 2026 from the team!", "Try our new yoga balance class!",
                                  "The concert was cancelled due to rain", "Don't forget to charge your phone",
                                  "Last day of our sale: the discount expires soon!", "Call me tomorrow when you can",
                                  "I'll call you back today", "Can you call him now?"])
def test_everyday_words_that_look_like_alerts_are_not_flagged(body):
    assert _flags(body) == []


@pytest.mark.parametrize("body", ["Your pin was dropped at 221 Baker Street.", "Your code review for PR 4521 is ready.",
                                  "The meeting notes from today are in the drive.", "Notes from today's meeting are posted.",
                                  "The recording of the call today is up.", "Order 12345 shipped; use the code SAVE10."])
def test_a_number_near_pin_or_code_and_a_meeting_s_notes_are_not_alerts(body):
    """Flagged "security code" and "meeting soon": a code is the one said to be it ("is", ":"),
    and what a meeting left is no meeting to come."""
    assert _flags(body) == []


def test_a_code_said_to_be_one_and_a_meeting_after_its_notes_are_still_flagged():
    for body in ("Your code for Acme is 482913", "Use 482913 as your verification code", "Your PIN is 1234",
                 "Tu código de verificación es 482913", "Your security code is: 482 913"):
        assert "security code" in _flags(body), body
    assert "meeting soon" in _flags("The meeting notes are up; the meeting starts in 10 minutes.")


def test_repeated_messages_are_counted_in_any_window_and_a_duplicate_counts_once():
    from tether.features.notifications import Notification, time_sensitivity

    def n(minute: int, body: str, **kw) -> Notification:
        return Notification(app="Messages", body=body, timestamp=f"2026-01-01T10:{minute:02d}:00", **kw)

    late_burst = [n(0, "hi", sender="Ann"), n(50, "are you there?", sender="Ann"), n(52, "hello??", sender="Ann"),
                  n(54, "call me", sender="Ann")]
    assert "repeated messages from Ann" in time_sensitivity(late_burst)
    echoed = [n(0, "hi", sender="Ann")] * 3  # one message delivered three times
    assert time_sensitivity(echoed) == []
    by_title = [n(m, f"msg {m}", title="Bob") for m in (1, 2, 3)]  # chat apps name the sender in the title
    assert "repeated messages from Bob" in time_sensitivity(by_title)


def test_the_faithfulness_check_accepts_contractions_and_refuses_the_time_a_message_arrived():
    """The prompt does not show when a notification arrived: a summary that names that time or
    day took it for the event's (the 0.5B model did, for calendar entries)."""
    from tether.features.notifications import Notification, format_stack, unsupported_facts

    n = [Notification(app="Messages", sender="Ann", body="are you coming to dinner?", timestamp="2026-01-01T18:02:00")]
    assert unsupported_facts("Heads-up: Ann asks if you're coming to dinner; I'm sure she'll wait.", n) == []
    assert unsupported_facts("Ann asks at 18:02 on Thursday if you're coming.", n) == ["number 18:02", "date word 'thursday'"]
    assert unsupported_facts("Bob says hi at 19:00.", n) == ["number 19", "name 'Bob'"]
    assert "18:02" not in format_stack(n) and "Thu" not in format_stack(n)


def test_a_summary_caught_in_a_loop_is_refused():
    """Seen on AgentDojo's Slack: every name in it is the stack's, so only the loop gives it away."""
    from tether.features.notifications import Notification, _problems

    n = [Notification(app="Slack", sender="Charlie", body="Hey, my favorite hobby is swimming.",
                      timestamp="2024-05-15T09:07:00")]
    loop = "Charlie asked Charlie to ask Charlie to ask Charlie to ask Charlie to swim."
    assert _problems(loop, n) == ["a summary that repeats itself", "Charlie is named as its own object",
                                  "Charlie is said to ask, but asks nothing"]
    assert _problems("Charlie says swimming is his favorite hobby.", n) == []
    # the same fact twice is no loop
    assert _problems("Charlie likes swimming; swimming is Charlie's favorite hobby.", n) == []


def test_the_check_reads_clocks_short_days_and_role_nouns_as_the_stack_does():
    """Seen in benchmarks/notifications_cascade.py: faithful summaries the check used to refuse."""
    from tether.features.notifications import Notification, unsupported_facts

    event = [Notification(app="Calendar", title="Family Reunion", timestamp="2024-05-31T23:45:00",
                          body="Saturday 01 June, 00:00-23:59 at Grandma's House. Starts at 09:00.")]
    assert unsupported_facts("Family reunion on June 1 from 12:00 AM to 11:59 PM, starting 9:00.", event) == []
    assert unsupported_facts("Family Reunion on Sat 1 June.", event) == []  # the stack's day, shortened
    assert unsupported_facts("Users and guests meet at Grandma's House.", event) == []
    # still refused: another day, another clock, an invented year or name
    assert unsupported_facts("Mon: the reunion starts at 10 PM.", event) == ["number 22", "date word 'Mon'"]
    assert unsupported_facts("Family reunion on June 1, 2023, with Kevin.", event) == ["number 2023", "name 'Kevin'"]


def test_numbers_are_compared_as_numbers_not_as_spellings():
    from tether.features._common import numbers_in

    assert numbers_in("1. Pay $1,250 by 3:00 pm\n2. Done") == {"1250", "3"}  # list markers are no numbers
    assert numbers_in("- 1. Send the file\n* 2) Call Ann") == set()  # nor a bulleted number ("- 1. ")
    assert numbers_in("- 15 chairs") == {"15"}  # a bullet before a count keeps it
    assert numbers_in("Pay $1250 by 3 pm") == {"1250", "3"}
    assert numbers_in("one of them", words=False) == set() and numbers_in("one of them") == {"1"}
    assert numbers_in("09:00, 09:30 and 03 June") == numbers_in("9:00, 9:30 and 3 June") == {"9", "9:30", "3"}
    # a CSV row's cells are numbers of their own; only commas that group thousands join digits
    assert numbers_in("Marketing,150000,75000,75000\nQ1,500,75000") == {"150000", "75000", "1", "500"}
    assert numbers_in("1,250,000 and 12,345.67 and 3,4,5") == {"1250000", "12345.67", "3", "4", "5"}


def test_a_summary_written_as_a_list_becomes_sentences_not_a_bare_marker():
    from tether.features.writing import as_prose

    listed = "1. Define clear objectives\n2. Encourage participation\n3. Foster communication"
    assert as_prose(listed) == "Define clear objectives. Encourage participation. Foster communication."
    assert as_prose("Agenda: May 15\n- Welcome\n- Updates.\n3.") == "Agenda: May 15. Welcome. Updates."
    assert as_prose("A plain summary. Two sentences.") == "A plain summary. Two sentences."
    # a copied letter: its greeting, closing and signature go, a nested marker is one marker
    letter = ("Subject: TODOs\n\nHi Emma,\n\nPlease do the following by next week:\n  - 1. Take a look at the file.\n"
              "  - 2. Send me the scores.\n\nBest,\nDavid")
    assert as_prose(letter) == ("Subject: TODOs. Please do the following by next week: Take a look at the file. "
                                "Send me the scores.")
    assert parse_items(letter) == ["Take a look at the file.", "Send me the scores."]
    from tether.features.writing import _sentences

    assert _sentences("Do the following: 1. Take a look. Then rest.") == ["Do the following: 1. Take a look.", "Then rest."]


def test_a_summary_that_speaks_only_of_the_text_is_not_usable():
    """The 0.5B's answer for a part of README.md full of shell commands."""
    from tether.features.writing import _usable, says_nothing

    for empty in ("The text is summarizing the summary of the given text.", "This document describes the main points.",
                  "The article discusses the following information."):
        assert says_nothing(empty) and not _usable(empty, "summary", set()), empty
    for real in ("The text describes Tether, an on-device AI system.", "Rain expected.", "Meeting moved to Friday."):
        assert not says_nothing(real) and _usable(real, "summary", set()), real
    assert not _usable("- The text summarizes the given text.\n- It is a summary.", "key_points", set())


def test_an_answer_the_check_refuses_twice_is_no_answer_and_a_usable_one_ends_the_tries():
    """Asked twice, the model said "The text discusses the main points of the given article.":
    summarize() returned it as the summary, and as a key point with ``fallback`` False, though
    ``_usable`` refuses it. Now it is no answer: a summary raises, key points fall back."""
    from tether.features.writing import _first_usable

    nothing = "The text discusses the main points of the given article."
    for form in ("summary", "key_points", "list"):
        assert _first_usable([nothing, nothing], form, set()) == ("", nothing)
    assert _first_usable(["Bike lanes grow. Shops worry about parking."], "list", set())[0] == ""  # prose, no list
    assert _first_usable(["The council voted 7 to 2."], "summary", {"2"})[0] == ""  # a number the text lacks
    asked = []

    def answers():
        for answer in ("The council voted to expand the bike lanes.", "never asked for"):
            asked.append(answer)
            yield answer

    good = "The council voted to expand the bike lanes."
    assert _first_usable(answers(), "summary", set()) == (good, good) and asked == [good]


def test_an_extractive_stand_in_reads_as_prose_not_markdown():
    """A part of a long text whose summaries fail stands in with its opening sentences; from a
    README those were "## Use it from the command line ```sh .venv/bin/tether summarize src/t"."""
    from tether.features.writing import opening_sentences

    readme = ("# Tether\n\n```sh\nmake demo\nmake test\n```\n\n## Use it\n\nRun **make demo** to start. It takes "
              "`two` minutes on 2 cores.\n\n- Search your files on the device.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    assert opening_sentences(readme, 5) == ["Run make demo to start.", "It takes two minutes on 2 cores.",
                                            "Search your files on the device."]
    assert opening_sentences("Plain text. A second sentence here. Third one.", 2) == ["Plain text.", "A second sentence here."]
    assert opening_sentences("```\nonly code\n```", 2) == ["```\nonly code\n```"]  # nothing else: as it is


def test_a_cjk_correction_is_one_character_not_the_sentence():
    from tether.features.writing import diff_edits

    edits = diff_edits("我今天去學效上課。", "我今天去學校上課。")
    assert [(e.original, e.replacement) for e in edits] == [("效", "校")]


def test_template_filler_is_removed_but_the_sources_own_brackets_stay():
    from tether.features.writing import without_template_filler

    letter = ("Subject: Request to Move the Review\n\nDear [Recipient's Name],\n\nI cannot make it Friday.\n\n"
              "Best regards,\n\n[Your Name]")
    assert without_template_filler(letter, "cant make it friday") == "Hello,\n\nI cannot make it Friday."
    # a closing with no name after it reads as cut off; one the source has, or one signed, stays
    assert without_template_filler("Thanks for the update.\n\nKind regards,", "thx 4 update") == (
        "Thanks for the update.")
    assert without_template_filler("See you at 5.\n\nThanks,", "see u at 5\n\nThanks,") == "See you at 5.\n\nThanks,"
    assert without_template_filler("See you at 5.\nBest regards,\nSam", "see u at 5\nSam") == (
        "See you at 5.\nBest regards,\nSam")
    assert without_template_filler("Best regards,", "hi") == "Best regards,"  # nothing else to show
    assert without_template_filler("Hi [Name]!\nSee you.", "see you") == "Hi!\nSee you."
    own = "Subject: budget [draft]\n\nDear [Team],\nsee [1]."
    assert without_template_filler(own, own) == own  # the user's subject line and brackets are theirs
    assert without_template_filler("See the table [1] below.", "see table") == "See the table [1] below."


def test_fill_in_slots_the_source_lacks_are_found_links_and_the_users_brackets_are_not():
    from tether.features.writing import unfilled_slots

    source = "See the notes [draft] and click [here](https://example.com) before 5."
    text = ("I can meet you at [Address] on [Date], see [draft] and click [here](https://example.com). "
            "Again: [Date].")
    assert unfilled_slots(text, source) == ["[Address]", "[Date]"]
    assert unfilled_slots(source, source) == []


def test_a_cut_answer_ends_at_its_last_whole_sentence():
    from tether.features.writing import whole_sentences

    assert whole_sentences("I am unable to come. Please let me know") == "I am unable to come."
    assert whole_sentences('He said "yes." And then') == 'He said "yes."'
    assert whole_sentences("no sentence end at all") == "no sentence end at all"
    assert whole_sentences("Version 2.5 is out, and") == "Version 2.5 is out, and"  # a decimal point ends nothing
    assert whole_sentences("Date: 5 May\n\nTime: 19:") == "Date: 5 May"  # a line a newline ends is whole
    assert whole_sentences("Done.\nNext: the") == "Done."


def test_a_summary_cut_at_its_budget_loses_only_the_unfinished_part():
    from tether.features.writing import _without_cut_tail

    assert _without_cut_tail("The plan costs 12 million. Supporters say it will", "summary") == "The plan costs 12 million."
    assert _without_cut_tail("- first point\n- second point\n- third poi", "key_points") == "- first point\n- second point"
    assert _without_cut_tail("- only item, cut", "list") == "- only item, cut"  # nothing else to show
    table = "| Topic | Fact |\n|---|---|\n| Plan | 12 million |\n| Start | Mar"
    assert _without_cut_tail(table, "table") == "| Topic | Fact |\n|---|---|\n| Plan | 12 million |"
    assert _without_cut_tail("| Topic | Fact |\n|---|---|\n| Plan | 12", "table").count("\n") == 2  # the one row stays


def test_notification_times_leave_as_json_with_the_devices_offset():
    """Device-local times are compared naive, but JSON names the instant: another machine (or a
    program in UTC) reading it must not shift it by the device's offset."""
    items = N.parse_notifications([{"app": "Mail", "sender": "Ana", "body": "hi", "timestamp": "2026-11-26T10:05:00Z"}])
    digest = N.NotificationDigest(stacks=[N.Stack(app="Mail", thread="Ana", notifications=items, summary="hi",
                                                  extractive=True, time_sensitive=False, reasons=[],
                                                  latest=items[0].timestamp)], model="m", duration_s=0.0)
    sent = json.loads(digest.model_dump_json())
    for written in (sent["stacks"][0]["latest"], sent["stacks"][0]["notifications"][0]["timestamp"]):
        assert datetime.fromisoformat(written) == datetime.fromisoformat("2026-11-26T10:05:00+00:00")
    again = N.Notification.model_validate(sent["stacks"][0]["notifications"][0])
    assert again.timestamp == items[0].timestamp  # read back on the device: the same local time


def test_a_lone_short_notification_is_its_own_summary():
    """No model call for what reads at a glance: the 0.5B turned "Design review with Priya starts
    in 15 minutes" into "Priya starts in 15 minutes"."""
    review = note("Design review with Priya starts in 15 minutes in Room 4B.", sender=None, title="Design review")
    assert N.as_sent([review]) == "Design review with Priya starts in 15 minutes in Room 4B."  # names its title
    done = N.summarize_stack_routed([review], model="no-such-model")  # never loaded
    assert (done.summary, done.extractive, done.as_sent, done.tier) == (N.as_sent([review]), True, True, "device")
    code = note("Your code is 482913.", sender=None, title="Sign-in code")
    assert N.as_sent([code]) == "Sign-in code: Your code is 482913."
    assert N.as_sent([note("x " * 60, sender="Bo")]) is None  # over 100 characters: summarized
    assert N.as_sent([code, review]) is None  # a stack of two: summarized


def _judged_stacks():
    path = Path(__file__).parents[2] / "benchmarks/data/notification_summaries_judged.json"
    stacks = json.loads(path.read_text())["stacks"]
    for s in stacks:
        items = [N.Notification(app="Mail", sender=line.partition(": ")[0], body=line.partition(": ")[2],
                                timestamp=datetime(2024, 5, 1)) for line in s["notifications"]]
        for when in ("before", "after"):
            yield s["stack"], when, s[when]["summary"], s[when]["verdict"], items


def test_who_asked_turned_around_is_refused_and_nothing_read_right_is():
    """On the 96 qwen2.5-0.5b summaries of AgentDojo stacks read by hand
    (benchmarks/data/notification_summaries_judged.json) it refuses 17 of the 30 false ones and
    none of the 55 true ones."""
    flagged = {(stack, when): verdict for stack, when, summary, verdict, items in _judged_stacks()
               if N.misattributed(summary, items)}
    assert set(flagged.values()) == {"wrong"}
    assert set(flagged) == {(0, "before"), (1, "after"), (3, "before"), (4, "after"), (5, "after"), (6, "after"), (7, "after"), (8, "after"),
                            (25, "before"), (25, "after"), (37, "before"), (37, "after"),
                            (40, "before"), (40, "after"), (41, "after"), (42, "before"), (43, "after")}


def _thread(*lines: str, app: str = "Mail") -> list:
    return [N.Notification(app=app, sender=line.partition(": ")[0], body=line.partition(": ")[2],
                           timestamp=datetime(2026, 11, 26, 9, i)) for i, line in enumerate(lines)]


def test_two_people_writing_to_each_other_are_not_both_asking():
    call = _thread("Tom Reed: Hi Ana, are you free for a call tomorrow?", "Ana Silva: Hi Tom, yes. How about 10?")
    assert N.misattributed("Tom Reed and Ana Silva are asking for a call tomorrow.", call) == [
        "Tom Reed and Ana Silva are said to ask, but wrote to each other"]
    assert N.misattributed("Tom Reed asked Ana Silva for a call tomorrow; she suggested 10.", call) == []
    team = _thread("Tom Reed: Hi team, can someone send the Q3 report?", "Ana Silva: Same here, I need it today.")
    assert N.misattributed("Tom Reed and Ana Silva are asking for the Q3 report.", team) == []  # both ask a third


def test_a_request_is_not_told_as_done():
    raj = _thread("Raj: Could you please book a table for four at Nando's on Friday?")
    assert N.misattributed("Raj booked a table for four at Nando's on Friday.", raj) == [
        "Raj is said to have done what they asked for (book)"]
    assert N.misattributed("Raj asked you to book a table for four at Nando's on Friday.", raj) == []
    mia = _thread("Mia Wong: Can you send me the slides before the review?")
    assert N.misattributed("Mia Wong sent the slides before the review.", mia) == [
        "Mia Wong is said to have done what they asked for (send)"]
    done = _thread("Raj: Could you book a table for Friday?", "Raj: Never mind, I booked a table at Nando's.")
    assert N.misattributed("Raj booked a table at Nando's.", done) == []  # he says so himself


def test_a_deed_is_not_moved_to_another_sender():
    chat = _thread("Lena: Lunch at noon?", "Omar: I finished the quarterly budget slides.", app="Slack")
    assert N.misattributed("Lena finished the quarterly budget slides.", chat) == [
        "Lena is said to do what Omar wrote of"]
    assert N.misattributed("Omar finished the quarterly budget slides.", chat) == []
    assert N.misattributed("Lena suggested lunch at noon.", chat) == []
    assert N.misattributed("Lena finished the quarterly budget slides.", chat[1:]) == []  # one sender: no one else


def test_who_received_a_request_did_not_make_it():
    reset = _thread("Acme Accounts: We received a request to delete your account. If this was not you, please "
                    "contact us within 7 days.")
    assert N.misattributed("Acme Accounts requested account deletion.", reset) == [
        "Acme Accounts is said to request, but received the request"]
    team = _thread("Acme Accounts Team: We received a request to delete your account. Please reply if it was not you.")
    assert N.misattributed("Acme Accounts Team has requested account deletion.", team) == [  # seen from the 1.5B
        "Acme Accounts Team is said to request, but received the request"]
    for right in ("Acme Accounts received a request to delete your account.",
                  "Acme Accounts asks you to contact them within 7 days if you did not ask to delete your account."):
        assert N.misattributed(right, reset) == [], right


def test_the_one_asked_is_the_one_greeted_not_one_spoken_of():
    mail = _thread("Nora Diaz: Hi Sam, could you send me the budget? Priya may want to check it too. Thanks, Nora")
    assert N.misattributed("Nora Diaz asked Priya to check the budget.", mail) == [
        "Nora Diaz is said to ask Priya, but wrote to Sam"]
    assert N.misattributed("Nora Diaz asked Sam to send the budget.", mail) == []
    invited = _thread("Nora Diaz: Hi Sam, I invited Priya to the review. Can you book a room?")
    assert N.misattributed("Nora Diaz invited Priya to the review and asked Sam to book a room.", invited) == []
    called = _thread("Nora Diaz: Hi Sam, could you send me the budget? Priya, please check it too.")
    assert N.misattributed("Nora Diaz asked Priya to check the budget.", called) == []  # called on by name
    team = _thread("Nora Diaz: Hi team, could someone look at the budget? Priya may want to check it.")
    assert N.misattributed("Nora Diaz asked Priya to check the budget.", team) == []  # a group was greeted


def test_the_subject_is_not_its_own_object():
    event = _thread("Webinar with Northwind Bank: Tuesday 14:00, online.", app="Calendar")
    assert N.misattributed("Northwind Bank is hosting a webinar with Northwind Bank on Tuesday.", event) == [
        "Northwind Bank is named as its own object"]
    lunch = _thread("Priya Shah: Hi Leo, lunch on Friday?", "Leo: Sure, 12:30 at the usual place.")
    assert N.misattributed("Priya Shah and Leo are meeting Leo for lunch on Friday.", lunch) == [
        "Leo is named as its own object"]
    assert N.misattributed("Priya Shah and Leo are meeting for lunch on Friday at 12:30.", lunch) == []
    paid = _thread("Payment sent: €200.00 to GB29NWBK: gift", "Payment received: €10.00 from GB29NWBK", app="Bank")
    assert N.misattributed("Payment sent: €200.00 to GB29NWBK, Payment received: €10.00.", paid) == []  # no name
    upkeep = _thread("Office Maintenance: Wednesday, all day.", app="Calendar")
    assert N.misattributed("Office Maintenance is scheduled at the BlueSparrow Tech Office.", upkeep) == []


def test_the_asked_is_not_the_asker():
    alice = [N.Notification(app="Messages", sender="Alice Chen", body=b, timestamp=datetime(2026, 11, 26, 18))
             for b in ("Are you still coming to dinner tonight?", "We booked the table at Luigi's for 7:30.")]
    assert N.misattributed("Alice Chen is asking if she is still coming to dinner tonight.", alice) == [
        "Alice Chen is said to ask about themselves, but asked you"]
    for right in ("Alice Chen is asking if you are still coming to dinner at Luigi's at 7:30.",
                  "Alice asks whether dinner at 7:30 is still on.", "Alice Chen booked Luigi's for 7:30."):
        assert N.misattributed(right, alice) == []
    hobby = [N.Notification(app="Slack", sender="Alice", body="My hobby is painting.", timestamp=datetime(2024, 5, 1))]
    assert N.misattributed("Alice asked about her hobby.", hobby) == ["Alice is said to ask, but asks nothing"]
    assert N.misattributed("Alice's hobby is painting.", hobby) == []
    code = [N.Notification(app="Mail", sender="Security", body="Your Facebook security code is 463820.",
                           timestamp=datetime(2024, 5, 1))]
    assert N.misattributed("Security code 463820 for Facebook requested by you.", code) == []  # passive: no asker


def test_the_device_result_is_made_once_by_whoever_asks_first():
    """The cascade's check makes it from the device's answer and the feature reuses it; a
    request a rule sent away has none, so the feature's call makes it from nothing."""
    from tether.features._common import DeviceResult

    calls: list[tuple[str | None, bool]] = []

    def make(answer: str | None, cut: bool) -> str:
        calls.append((answer, cut))
        return f"made from {answer}"

    checked = DeviceResult(make)
    assert not checked.made
    assert checked("first answer", True) == "made from first answer"
    assert checked("the routed text") == "made from first answer" and checked.made
    away = DeviceResult(make)
    assert away() == "made from None"
    assert calls == [("first answer", True), (None, False)]


def test_a_table_row_written_as_one_sentence_in_its_topic_cell_is_split_at_its_subject():
    from tether.features.writing import tidy_table

    rows = [["Topic", "Fact"], ["Council promised a review after the first year", ""],
            ["The plan costs 12 million euros", ""], ["Review after the first year", ""], ["Plan", ""],
            ["Construction of the first route starts in March", "in spring"]]
    assert tidy_table(rows) == [["Topic", "Fact"], ["Council", "promised a review after the first year"],
                                ["Plan", "costs 12 million euros"],
                                ["Review after the first year", ""],  # no subject to split at: as written
                                ["Plan", ""],
                                ["Construction of the first route starts in March", "in spring"]]  # a fact is there
    wide = [["Topic", "Fact", "When"], ["The plan costs 12 million euros", "", ""]]
    assert tidy_table(wide) == wide  # only a Topic | Fact table has one place the rest belongs


def test_a_question_is_a_question_mark_after_a_word_outside_links_and_code():
    from tether.features.writing import _passes, _rewrite_try, asks, lost_question

    for q in ["Would you be free for lunch?", "Is it on (Friday)?", "Did she say “yes”?", "What ?", "今天好吗？"]:
        assert asks(q), q
    for no in ["Click https://techservices.com/reset?token=a1b2 to reset.", "Run `ls -a?` now.", "?!", "Done."]:
        assert not asks(no), no
    source = "Hi Emma, are you up for a hiking trip this weekend? Let me know!"
    lost = _rewrite_try("Hi Emma, you're up for a hiking trip this weekend. Let me know!", False, source)
    assert lost.lost_question and not _passes(lost)
    kept = _rewrite_try("Hi Emma, would you like to go hiking this weekend? Let me know!", False, source)
    assert not kept.lost_question and _passes(kept)
    assert not _rewrite_try("Thanks, see you then.", False, "Thanks! See you then.").lost_question
    # a request put as a statement still asks (qwen2.5-1.5b's professional "Could you please send me…?")
    asked = "Could you please send me the latest update on the Phoenix Project?"
    for request in ["I am writing to request the most recent update on the Phoenix Project.",
                    "Kindly send me the latest update.", "Let me know the time and place."]:
        assert not lost_question(asked, request), request
    assert lost_question(asked, "I'm sorry to hear that you're having trouble with the Phoenix Project.")


def test_an_assistant_offer_of_help_the_note_never_made_is_taken_out_of_a_rewrite():
    """The 0.5B's rewrites of AgentDojo mail (benchmarks/rewrite_cascade.py), sentence for sentence."""
    from tether.features.writing import without_template_filler

    source = "Hi Emma,\n\nCould you please send me the latest update? Julie might also need the documents.\n\nThanks,\nDavid"
    assert without_template_filler(
        "Hi Emma,\n\nPlease send me the latest update. Julie might need the documents. I'm here to help you with any "
        "questions or concerns you may have.\n\nThanks,\nDavid", source) == (
        "Hi Emma,\n\nPlease send me the latest update. Julie might need the documents.\n\nThanks,\nDavid")
    assert without_template_filler("I don't need a place to stay, but thanks. If there's anything else I can help "
                                   "with, please let me know.\n\nSee you soon!", source) == (
        "I don't need a place to stay, but thanks.\n\nSee you soon!")
    assert without_template_filler("Hey there! I'm here to help you with your Facebook security code.\n\nThanks",
                                   source) == "Hey there!\n\nThanks"
    # the note's own offer stays, and so does help the writer offers in its words
    own = "Moving on Saturday? I'm here to help with the boxes."
    assert without_template_filler("Moving on Saturday? I'm here to help with the boxes!", own) == (
        "Moving on Saturday? I'm here to help with the boxes!")
    assert without_template_filler("I'd be glad to help you move on Saturday.", "can help u move sat") == (
        "I'd be glad to help you move on Saturday.")
