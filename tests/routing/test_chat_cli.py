"""``tether chat``: one-shot and line-by-line conversations through the real router.

The device tier runs smollm2-135m; the third party is the fake provider on loopback,
which captures every byte it is sent.
"""

from __future__ import annotations

import json

from click.testing import CliRunner

from tether.cli import cli
from tether.cli import chat, stats  # noqa: F401  (register the commands)
from tether.routing.conversation import Conversation, conversation_prompt

TINY = "smollm2-135m"


def run(*args: str, input: bytes | str | None = None, **env: str):
    return CliRunner().invoke(cli, list(args), input=input, env=env)


def third_party_config(tmp_path, provider) -> str:
    path = tmp_path / "router.toml"
    path.write_text(f'[third_party]\nbase_url = "{provider.url}"\nmodel = "gpt-test"\n')
    return str(path)


def test_one_shot_answers_on_the_device_and_says_why(tmp_path):
    r = run("chat", "Name a colour.", "-m", TINY, "--max-tokens", "8",
            TETHER_ROUTER_CONFIG="", TETHER_LEDGER=str(tmp_path / "l.db"))
    assert r.exit_code == 0, r.output
    assert r.stdout.strip()
    assert "── ran on device: device (no_cloud)" in r.stderr
    j = run("chat", "Name a colour.", "-m", TINY, "--max-tokens", "8", "--json",
            TETHER_ROUTER_CONFIG="", TETHER_LEDGER=str(tmp_path / "l.db"))
    data = json.loads(j.stdout)
    assert data["tier"] == "device" and data["rule"] == "no_cloud" and data["answer"]


def test_a_conversation_from_stdin_with_reset_and_exit(tmp_path):
    ledger = str(tmp_path / "l.db")
    r = run("chat", "-m", TINY, "--max-tokens", "8", input="Hello there.\n\n/reset\n/help\nSay hi.\n/exit\nNever read.\n",
            TETHER_ROUTER_CONFIG="", TETHER_LEDGER=ledger)
    assert r.exit_code == 0, r.output
    assert r.stderr.count("── ran on device") == 2 and r.stderr.count("conversation cleared") == 1
    assert "── /reset starts over" in r.stderr  # /help answered here, not sent to the model
    s = json.loads(run("stats", "--ledger", ledger, "--json").stdout)
    assert s["requests"] == 2 and s["by_tier"]["device"]["requests"] == 2  # /exit stopped before the last line


def test_later_turns_carry_the_history_pseudonymized(tmp_path, provider):
    """The second turn sends the first one along; the third party sees placeholders, never the name."""
    provider.reset()
    r = run("chat", "--tier", "third_party", "--consent", "--max-tokens", "32",
            input="My colleague is Maria Gonzalez.\nWhat is my colleague called?\n",
            TETHER_ROUTER_CONFIG=third_party_config(tmp_path, provider), TETHER_LEDGER=str(tmp_path / "l.db"))
    assert r.exit_code == 0, r.output
    assert r.stdout.count("Maria Gonzalez") >= 2  # echoed back and restored on the device, twice
    sent = provider.captured()
    assert len(sent) == 2
    second = json.dumps(sent[1]["body"])
    assert "Conversation so far" in second and "What is my colleague called?" in second
    assert "Maria" not in json.dumps(sent) and "Gonzalez" not in json.dumps(sent)
    assert "<PERSON_" in second


def test_failed_turns_are_one_line_and_the_conversation_goes_on(tmp_path, provider):
    provider.reset()
    r = run("chat", "--tier", "third_party", "--no-consent", input=b"First.\n\xff\xfe bad bytes\nSecond.\n",
            TETHER_ROUTER_CONFIG=third_party_config(tmp_path, provider), TETHER_LEDGER=str(tmp_path / "l.db"))
    assert r.exit_code == 1  # piped input with a failed turn: scripts can tell
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 3 and "not valid UTF-8" in errors[1]
    assert all("consent" in e for e in (errors[0], errors[2]))
    assert provider.captured() == []  # refused consent: nothing was sent
    assert "Traceback" not in r.output


def test_bad_input_is_one_line(tmp_path):
    r = run("chat", "   ", TETHER_ROUTER_CONFIG="", TETHER_LEDGER=str(tmp_path / "l.db"))
    assert r.exit_code == 1 and r.stderr.count("Error:") == 1 and "empty" in r.stderr
    r = run("chat", "hi", "--tier", "moon")
    assert r.exit_code == 2 and "moon" in r.stderr


def test_old_turns_give_way_to_new_ones():
    assert conversation_prompt([], "Hi") == "Hi"
    c = Conversation(max_chars=30)
    c.add("a" * 20, "b" * 20)
    c.add("short", "reply")
    prompt = c.prompt("next")
    assert c.dropped == 1 and "a" * 20 not in prompt  # one exchange
    assert prompt == "Conversation so far:\nuser: short\nassistant: reply\n\nuser: next"
    c.reset()
    assert c.prompt("x") == "x" and c.dropped == 0


def test_a_history_over_the_window_in_tokens_drops_old_exchanges_instead_of_failing_every_turn(tmp_path):
    """The history is trimmed by characters (6,000), but Chinese runs ~2 tokens a character: once
    the history outgrew the 135M model's window, every later turn failed until /reset."""
    long = "我们今天去公园散步，天气很好。" * 20  # 300 characters, ~570 tokens: two fill a 1,024-token window
    lines = [long, long, "你好", "谢谢"]
    r = run("chat", "-m", TINY, "--max-tokens", "8", input="\n".join(lines) + "\n",
            TETHER_ROUTER_CONFIG="", TETHER_LEDGER=str(tmp_path / "l.db"), TETHER_N_CTX="1024")
    assert r.exit_code == 0, r.stderr
    assert "error:" not in r.stderr and r.stderr.count("── ran on device") == len(lines)
    assert "older exchange" in r.stderr and "dropped" in r.stderr


def test_an_unknown_model_fails_before_the_first_turn(tmp_path):
    r = run("chat", "--model", "no-such-model", input="", TETHER_ROUTER_CONFIG="", TETHER_LEDGER=str(tmp_path / "l.db"))
    assert r.exit_code == 1 and "unknown model 'no-such-model'" in r.stderr


def test_an_unusable_ledger_fails_before_any_answer(tmp_path):
    bad = tmp_path / "not-a-ledger.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    before = bad.read_bytes()
    r = run("chat", "Name a colour.", "-m", TINY, "--max-tokens", "8", TETHER_ROUTER_CONFIG="", TETHER_LEDGER=str(bad))
    assert r.exit_code == 1 and r.stdout == ""  # no answer was generated, then thrown away
    assert "not a usable routing ledger" in r.stderr
    assert bad.read_bytes() == before  # and the file is left as it was


def test_a_json_conversation_is_one_object_per_line(tmp_path):
    r = run("chat", "-m", TINY, "--max-tokens", "6", "--json", input="Hi\nBye\n",
            TETHER_ROUTER_CONFIG="", TETHER_LEDGER=str(tmp_path / "l.db"))
    assert r.exit_code == 0, r.output
    turns = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    assert len(turns) == 2 and all(t["tier"] == "device" for t in turns)


PERSONAL_FILES = {
    "dentist.ics": "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:d-1\nSUMMARY:Dentist check-up\nDTSTART:20261210T091500Z\n"
                   "LOCATION:Smile Dental Clinic\nEND:VEVENT\nEND:VCALENDAR\n",
    "bank.eml": "From: grace.hopper@navy-mail.com\nTo: me@example.com\nSubject: Wire transfer details\n\n"
                "Please wire the deposit to IBAN DE89370400440532013000. Call me at 212-555-0199. Grace Hopper\n",
    "gym.md": "# Gym membership\n\nMembership at Iron Temple costs 45 dollars a month.\n",
}


def personal_index(tmp_path) -> str:
    from tests.search.conftest import index_files

    return str(index_files(tmp_path, PERSONAL_FILES))


def test_questions_about_the_user_are_told_apart_from_the_rest(tmp_path):
    from tether.search import Index
    from tether.search.ask import personal_hits

    idx = Index.open(personal_index(tmp_path), create=False)
    mine = {"When is my dentist check-up?": "dentist.ics", "How much is my gym membership?": "gym.md",
            "Do I have to wire a deposit?": "bank.eml", "Who emailed me about the transfer?": "bank.eml"}
    for question, name in mine.items():
        hits = personal_hits(idx, question)
        assert hits and hits[0].path.endswith(name), (question, [h.path for h in hits])
    assert personal_hits(idx, "What's on my calendar?")  # names where such things live
    for general in ("What is the capital of France?", "How do I tie a tie?", "Can you help me with my essay?",
                    "Write an email to my landlord about the heater.", "How do I make pancakes?",
                    "Tell me a joke about my cat.", "If I buy 3 shirts at $12.50 each, how much do I pay?",
                    "What time is it in Tokyo?"):
        assert personal_hits(idx, general) == [], general
    idx.close()


def test_a_personal_question_is_answered_from_the_index_and_names_the_files(tmp_path):
    db, ledger = personal_index(tmp_path), str(tmp_path / "l.db")
    r = run("chat", "-m", TINY, "--max-tokens", "16", "--db", db, "--json",
            input="When is my dentist check-up?\nName a colour.\n", TETHER_ROUTER_CONFIG="", TETHER_LEDGER=ledger)
    assert r.exit_code == 0, r.output
    first, second = (json.loads(line) for line in r.stdout.splitlines())
    assert first["answer"] and first["tier"] == "device" and first["rule"] == "no_cloud"
    assert first["sources"][0]["path"].endswith("dentist.ics") and first["sources"][0]["title"] == "Dentist check-up"
    assert second["sources"] == [] and second["answer"]  # plain chat
    s = json.loads(run("stats", "--ledger", ledger, "--json", "--recent", "5").stdout)
    assert sorted(e["feature"] for e in s["recent"]) == ["ask", "chat"]  # the ledger tells the two apart

    human = run("chat", "When is my dentist check-up?", "-m", TINY, "--max-tokens", "16", "--db", db,
                TETHER_ROUTER_CONFIG="", TETHER_LEDGER=ledger)
    assert human.exit_code == 0 and "── looked in your files: Dentist check-up" in human.stderr
    off = run("chat", "When is my dentist check-up?", "-m", TINY, "--max-tokens", "16", "--no-personal",
              TETHER_ROUTER_CONFIG="", TETHER_LEDGER=ledger, TETHER_INDEX=db)
    assert off.exit_code == 0 and "looked in your files" not in off.stderr


def test_personal_context_leaves_the_device_only_pseudonymized(tmp_path, provider):
    """The third party gets the file's words with the personal values swapped for placeholders."""
    provider.reset()
    r = run("chat", "Do I have to wire a deposit?", "--tier", "third_party", "--consent", "--max-tokens", "16",
            TETHER_ROUTER_CONFIG=third_party_config(tmp_path, provider), TETHER_LEDGER=str(tmp_path / "l.db"),
            TETHER_INDEX=personal_index(tmp_path))
    assert r.exit_code == 0, r.output
    assert "── looked in your files: Wire transfer details" in r.stderr
    sent = json.dumps(provider.captured())
    assert "wire the deposit" in sent  # the excerpt went, redacted
    for value in ("grace.hopper@navy-mail.com", "DE89370400440532013000", "212-555-0199", "Grace Hopper"):
        assert value not in sent, value


def test_system_instructions_reach_a_personal_turn_after_asks_own(tmp_path, provider):
    provider.reset()
    r = run("chat", "Do I have to wire a deposit?", "--system", "Answer in French.", "--tier", "third_party",
            "--consent", "--max-tokens", "16", TETHER_ROUTER_CONFIG=third_party_config(tmp_path, provider),
            TETHER_LEDGER=str(tmp_path / "l.db"), TETHER_INDEX=personal_index(tmp_path))
    assert r.exit_code == 0, r.output
    assert "── looked in your files: Wire transfer details" in r.stderr
    (request,) = provider.captured()
    system = [m["content"] for m in request["body"]["messages"] if m["role"] == "system"]
    assert len(system) == 1 and system[0].endswith("Be brief.\n\nAnswer in French.")
    assert system[0].startswith("You answer questions about the user's own mail")


def test_the_index_is_optional_unless_asked_for(tmp_path):
    env = dict(TETHER_ROUTER_CONFIG="", TETHER_LEDGER=str(tmp_path / "l.db"))
    missing = str(tmp_path / "no-index.sqlite")
    r = run("chat", "When is my dentist check-up?", "-m", TINY, "--max-tokens", "4", TETHER_INDEX=missing, **env)
    assert r.exit_code == 0 and "looked in your files" not in r.stderr  # no index: plain chat
    for args in (["--personal"], ["--db", missing]):
        r = run("chat", "Hi", "-m", TINY, *args, TETHER_INDEX=missing, **env)
        assert r.exit_code == 1 and "no search index at" in r.output and "Traceback" not in r.output, args
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database" * 200)
    r = run("chat", "When is my dentist check-up?", "-m", TINY, "--max-tokens", "4", TETHER_INDEX=str(junk), **env)
    assert r.exit_code == 0, r.output
    assert "personal questions are answered without your files" in r.stderr and "ran on device" in r.stderr


def test_a_sum_is_worked_out_without_the_model_and_logged(tmp_path):
    ledger = str(tmp_path / "l.db")
    r = run("chat", "-m", TINY, "--max-tokens", "8", "--json",
            input="What is 17 times 23?\nWhat is 17 times 23 in Roman numerals?\n",
            TETHER_ROUTER_CONFIG="", TETHER_LEDGER=ledger)
    assert r.exit_code == 0, r.output
    calculated, modelled = (json.loads(line) for line in r.stdout.splitlines())
    assert calculated["answer"] == "17 times 23 = 391" and calculated["rule"] == "calculator"
    assert calculated["tier"] == "device" and calculated["sources"] == []
    assert modelled["rule"] == "no_cloud"  # more than a sum: the model's
    rows = json.loads(run("stats", "--ledger", ledger, "--json", "--recent", "5").stdout)["recent"]
    assert sorted((e["feature"], e["reason"]) for e in rows) == [("chat", "calculator"), ("chat", "no_cloud")]
    assert [e["completion_tokens"] for e in rows if e["reason"] == "calculator"] == [0]
    human = run("chat", "what's 15% of 80", "-m", TINY, TETHER_ROUTER_CONFIG="", TETHER_LEDGER=ledger)
    assert human.stdout == "15% of 80 = 12\n" and "── ran on device: device (calculator)" in human.stderr


def test_a_follow_up_that_points_back_stays_with_the_files(tmp_path):
    """"Where do I have to go for it?" alone shares no word with a file; after a personal turn it
    goes on from it. A first-person question that points nowhere is plain chat again."""
    from tether.search import Index
    from tether.search.ask import personal_hits

    db = personal_index(tmp_path)
    idx = Index.open(db, create=False)
    follow_up = "Where do I have to go for it?"
    assert personal_hits(idx, follow_up) == []
    hits = personal_hits(idx, follow_up, follow_up_of="When is my dentist check-up?")
    assert hits and hits[0].path.endswith("dentist.ics")
    assert personal_hits(idx, "How do I tie a tie?", follow_up_of="When is my dentist check-up?") == []
    idx.close()
    r = run("chat", "-m", TINY, "--max-tokens", "8", "--db", db, "--json",
            input=f"When is my dentist check-up?\n{follow_up}\nHow do I tie a tie?\n/reset\n{follow_up}\n",
            TETHER_ROUTER_CONFIG="", TETHER_LEDGER=str(tmp_path / "l.db"))
    assert r.exit_code == 0, r.output
    turns = [json.loads(line) for line in r.stdout.splitlines()]
    assert [bool(t["sources"]) for t in turns] == [True, True, False, False]  # /reset forgets the personal turn
    assert turns[1]["sources"][0]["path"].endswith("dentist.ics")
