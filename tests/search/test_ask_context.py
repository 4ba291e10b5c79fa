"""``tether ask``: excerpts cut to fit never split a personal value, and ``--show-context`` shows
the prompt exactly as the tier received it (the real guard; a real provider on loopback that
records every byte it receives)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from tether.cli import cli
from tether.cli import search as _search_cli  # noqa: F401  (registers the commands)
from tether.errors import InputError
from tether.privacy import PrivacyGuard
from tether.search import Index
from tether.search.ask import build_context, context_for
from tether.search.query import Hit

from tests.routing.conftest import provider  # noqa: F401 - the real loopback provider, as a fixture

EMAIL = "maria.gonzalez@example.org"
PHONE = "+1 (415) 555-0134"


@pytest.fixture(scope="module")
def guard() -> PrivacyGuard:
    return PrivacyGuard()


def _hit(text: str) -> Hit:
    return Hit(chunk_id=1, path="/notes/contact.txt", kind="note", item="contact.txt", title="Contact", text=text,
               score=1.0)


@pytest.mark.parametrize("value", [EMAIL, PHONE])
def test_a_cut_excerpt_never_ends_inside_a_personal_value(guard, value):
    text = f"Contact\nFor the lease, reach the landlord at {value} before Friday."
    hits = [_hit(text)]
    head = build_context(hits, max_chars=10_000)
    at = head.index(value)
    for limit in range(at + 2, at + len(value)):  # every cut inside the value
        context = build_context(hits, max_chars=limit, guard=guard)
        assert context == head[:at].rstrip(), (limit, context)
        payload = guard.prepare(context, "private_cloud", session=guard.session()).require_payload()
        assert value not in payload and value[:6] not in payload
    # Without a guard (nothing leaves) the cut still falls between words.
    context = build_context(hits, max_chars=at + 6)
    assert head.startswith(context) and head[len(context)] in " \n"


def test_a_value_found_only_by_the_words_after_it_is_not_left_at_the_cut(guard):
    """"Zephyrine said…" is a name because of "said"; cut after "Zephyrine" it reads as any capitalised
    word, and would have left as it is."""
    hits = [_hit("Contact\nThe lease is renewed. Zephyrine said yes to the new rent on Friday.")]
    head = build_context(hits, max_chars=10_000)
    at = head.index("Zephyrine")
    for limit in range(at + len("Zephyrine"), at + len("Zephyrine said") + 1):
        context = build_context(hits, max_chars=limit, guard=guard)
        payload = guard.prepare(context, "third_party", session=guard.session()).require_payload()
        assert "Zephyrine" not in payload, (limit, payload)
    assert "Zephyrine" not in guard.prepare(head, "third_party", session=guard.session()).require_payload()


def test_a_cut_excerpt_leaves_nothing_of_the_value_in_what_is_sent(guard):
    """The old cut left "maria.gonz", which no recognizer reads as an address: it went out as it was."""
    hits = [_hit(f"Contact\nReach the landlord at {EMAIL} before Friday.")]
    at = build_context(hits, max_chars=10_000).index(EMAIL)
    for tier in ("private_cloud", "third_party"):
        out = context_for(hits, tier, guard=guard)
        assert out.payload is not None and EMAIL not in out.payload
    context = build_context(hits, max_chars=at + 10, guard=guard)
    out = guard.prepare(context, "third_party", session=guard.session())
    assert "maria" not in out.require_payload() and "gonz" not in out.payload


def _indexed_with_a_third_party(data: Path, tmp_path: Path, provider) -> tuple[str, dict[str, str]]:
    """An index of ``data``, and the environment of a router whose third party is ``provider``."""
    db = str(tmp_path / "i.sqlite")
    Index.open(db).add([data])
    router = tmp_path / "router.toml"
    router.write_text(f'[third_party]\nbase_url = "{provider.url}"\nmodel = "gpt-test"\nuse_for_cloud = true\n')
    privacy = tmp_path / "privacy.toml"
    privacy.write_text("version = 1\n")
    return db, {"TETHER_ROUTER_CONFIG": str(router), "TETHER_PRIVACY_CONFIG": str(privacy),
                "TETHER_LEDGER": str(tmp_path / "ledger.db")}


def test_show_context_prints_exactly_what_the_tier_received(tmp_path: Path, provider):
    data = tmp_path / "mail"
    data.mkdir()
    (data / "invoice.eml").write_text(
        "From: accounts@example.org\nTo: me@example.com\nSubject: Invoice for the kitchen\n\n"
        "Okafor wants the kitchen invoice resent by Friday; the amount is 1,240 euros.\n")
    db, env = _indexed_with_a_third_party(data, tmp_path, provider)
    provider.reset()
    question = "When does Chidi Okafor want the kitchen invoice resent?"
    r = CliRunner().invoke(cli, ["ask", question, "--db", db, "--tier", "third_party", "--consent", "--show-context"],
                           env=env)
    assert r.exit_code == 0, r.output
    captured = provider.captured()
    assert len(captured) == 1
    sent = [m["content"] for m in captured[0]["body"]["messages"] if m["role"] == "user"][0]
    shown = re.search(r"── sent to third_party\n(.*)\n──\n", r.output, re.S).group(1)
    assert shown == sent
    assert "Okafor" not in sent and "kitchen invoice" in sent  # the name found in the question is found in the excerpt


def test_an_answer_speaks_to_the_user_without_naming_a_source():
    """The demo's `tether ask` on qwen2.5-0.5b answered "Based on the calendar excerpt, my dentist
    appointment is…": the reminder was a mail, and the appointment is the user's."""
    from tether.search.ask import tidy_answer

    q = "When is my dentist appointment?"
    assert tidy_answer("Based on the calendar excerpt, my dentist appointment is on Thursday at 09:15.", q) == \
        "Your dentist appointment is on Thursday at 09:15."
    assert tidy_answer("According to the excerpts, the flight leaves at 8:40.", "When is my flight?") == \
        "The flight leaves at 8:40."
    assert tidy_answer("  My dentist appointment is on Thursday. ", q) == "Your dentist appointment is on Thursday."
    # only what the question itself called "my", and a lead-in with nothing after it stays
    assert tidy_answer("My sister booked it for my dentist appointment.", q) == \
        "My sister booked it for your dentist appointment."
    assert tidy_answer("Based on the excerpts, ", q) == "Based on the excerpts,"
    assert tidy_answer("I could not find it.", q) == "I could not find it."


def test_the_sources_listed_are_the_excerpts_the_model_was_given(tmp_path: Path, provider):
    """The context holds 2,400 characters: with four long hits the model saw two, and all four were
    listed as the answer's sources."""
    from tether.search.ask import MAX_CONTEXT_CHARS, excerpts

    long = [Hit(chunk_id=n, path=f"/notes/n{n}.md", kind="note", item=f"n{n}.md", title=f"Note {n}",
                text=f"Note {n}\n" + "The heron nests by the lake in spring. " * 25, score=1.0) for n in range(1, 5)]
    context, shown = excerpts(long)
    assert len(context) <= MAX_CONTEXT_CHARS and context == build_context(long)
    assert shown == long[:len(shown)] and 1 < len(shown) < 4
    assert re.findall(r"^\[(\d+)\]", context, re.M) == [str(n) for n in range(1, len(shown) + 1)]

    data = tmp_path / "notes"
    data.mkdir()
    for n in range(1, 5):
        (data / f"compost{n}.md").write_text(f"Compost log {n}\n\n" + f"The compost needs turning in week {n}. " * 24)
    db, env = _indexed_with_a_third_party(data, tmp_path, provider)
    args = ["ask", "When does the compost need turning?", "--db", db, "--tier", "third_party", "--consent", "-k", "4"]
    r = CliRunner().invoke(cli, [*args, "--json"], env=env)
    assert r.exit_code == 0, r.output
    answer = json.loads(r.output)
    markers = re.findall(r"^\[(\d+)\]", answer["context"], re.M)
    assert 1 < len(markers) < 4 and len(answer["sources"]) == len(markers)
    blocks = re.split(r"^\[\d+\] ", answer["context"], flags=re.M)[1:]
    for block, source in zip(blocks, answer["sources"]):  # excerpt [n] is source n (its title the guard may replace)
        assert f"week {Path(source['path']).stem[-1]}." in block
    r = CliRunner().invoke(cli, args, env=env)
    assert r.exit_code == 0, r.output
    assert re.findall(r"^  \[(\d+)\] Compost log", r.output, re.M) == markers


def _near(n: int, similarity: float | None, text: str = "x") -> Hit:
    return Hit(chunk_id=n, path=f"/notes/n{n}.md", kind="note", item=f"n{n}.md", title=f"Note {n}", text=text,
               score=1.0 / n, similarity=similarity)


def test_focused_keeps_the_hits_near_the_best_in_meaning_in_their_order():
    from tether.search.ask import FOCUS, focused

    hits = [_near(1, 0.86), _near(2, 0.88), _near(3, 0.83), _near(4, 0.81)]
    assert [h.chunk_id for h in focused(hits)] == [1, 2]  # the best need not be ranked first
    assert [h.chunk_id for h in focused(hits, 0.06)] == [1, 2, 3]
    assert focused(hits, None) == hits
    bm25_only = [_near(1, None), _near(2, None)]
    assert focused(bm25_only) == bm25_only  # nothing to judge by: all kept
    assert [h.chunk_id for h in focused([_near(1, 0.9), _near(2, None), _near(3, 0.9 - FOCUS - 0.01)])] == [1, 2]
    assert focused([]) == []
    for bad in (float("nan"), -0.1, True, "0.04"):
        with pytest.raises(InputError, match="focus is a cosine margin"):
            focused(hits, bad)
    # with the question: after the first, an excerpt shares a content word with it (first five letters)
    q = "When is my dentist appointment?"
    hits = [_near(1, 0.877, "Reminder: your check-up on Thursday at 09:15. To move the appointment, call us."),
            _near(2, 0.838, "Design review: onboarding flow. Start: Tuesday 1 December 2026 14:00 UTC"),
            _near(3, 0.850, "Dentists' opening hours over the holidays"),
            _near(4, 0.840, "When is the next time my phone is due?")]  # only words the rule ignores
    assert [h.chunk_id for h in focused(hits, question=q)] == [1, 3]
    assert [h.chunk_id for h in focused(hits[1:], question=q)] == [2, 3]  # the first is always kept


def test_ask_gives_the_model_only_the_excerpts_about_the_question(tmp_path: Path):
    """The demo's index: with the design review after the dentist's reminder, qwen2.5-0.5b
    answered "Your dentist appointment is on Tuesday, 1 December 2026 at 14:00 UTC", the
    review's start. Real index, real embedder, the real engine on the 135M model."""
    from importlib import resources

    db = str(tmp_path / "i.sqlite")
    with resources.as_file(resources.files("tether.data").joinpath("personal")) as folder:
        idx = Index.open(db)
        idx.add([folder])
        hits = idx.search("When is my dentist appointment?", 4)
        assert [h.similarity is not None for h in hits] == [True] * 4
        assert all(h.similarity is None for h in idx.search("dentist", 4, "bm25"))
        idx.close()
    assert Path(hits[0].path).name == "dentist.eml" and len({h.path for h in hits}) > 1
    r = CliRunner().invoke(cli, ["ask", "When is my dentist appointment?", "--db", db, "--model", "smollm2-135m",
                                 "--json"])
    assert r.exit_code == 0, r.output
    answer = json.loads(r.output)
    assert [Path(s["path"]).name for s in answer["sources"]] == ["dentist.eml"]
    assert "Design review" not in answer["context"] and "Thursday 3 December at 09:15" in answer["context"]


BOARD_ICS = """BEGIN:VCALENDAR
VERSION:2.0
BEGIN:VEVENT
UID:board-7
SUMMARY:Quarterly board meeting
DTSTART:20240523T090000
DTEND:20240523T110000
LOCATION:Main Conference Hall
DESCRIPTION:Review of the quarter's results with the board.
END:VEVENT
END:VCALENDAR
"""


def test_an_answer_that_lacks_what_was_asked_goes_to_the_cloud(tmp_path: Path, provider):
    """The ask cascade's check (``answer_check``): smollm2-135m answers "When is the quarterly board
    meeting?" with the day and the room but not the time the calendar gives, so its answer goes to
    the cloud, which the route says and why; "Where is it?" it answers in full, and nothing leaves."""
    data = tmp_path / "calendar"
    data.mkdir()
    (data / "board.ics").write_text(BOARD_ICS)
    db, env = _indexed_with_a_third_party(data, tmp_path, provider)
    provider.reset()
    provider.faults([{"content": "On Thursday 23 May 2024 from 09:00 to 11:00."}])
    args = ["--db", db, "--model", "smollm2-135m", "--consent", "--json"]
    r = CliRunner().invoke(cli, ["ask", "When is the quarterly board meeting?", *args], env=env)
    assert r.exit_code == 0, r.output
    answer = json.loads(r.output)
    assert (answer["tier"], answer["rule"]) == ("third_party", "cascade")
    assert answer["answer"] == "On Thursday 23 May 2024 from 09:00 to 11:00."
    assert "cascade: device answer escalated (the question asks when; the answer gives no time, though the " \
           "excerpts do)" in answer["notes"]
    assert len(provider.captured()) == 1

    provider.reset()
    r = CliRunner().invoke(cli, ["ask", "Where is the quarterly board meeting?", *args], env=env)
    assert r.exit_code == 0, r.output
    answer = json.loads(r.output)
    assert (answer["tier"], answer["rule"]) == ("device", "cascade") and "Main Conference Hall" in answer["answer"]
    assert answer["notes"] == [] and provider.captured() == []


def test_with_no_cloud_an_incomplete_answer_is_kept_and_says_what_it_lacks(tmp_path: Path):
    """No cloud to send it to: qwen2.5-0.5b's "Thursday" for "What day…" stands, with a note."""
    data = tmp_path / "calendar"
    data.mkdir()
    (data / "board.ics").write_text(BOARD_ICS)
    db = str(tmp_path / "i.sqlite")
    Index.open(db).add([data])
    r = CliRunner().invoke(cli, ["ask", "What day is the quarterly board meeting?", "--db", db, "--json"],
                           env={"TETHER_LEDGER": str(tmp_path / "l.db")})
    assert r.exit_code == 0, r.output
    answer = json.loads(r.output)
    assert (answer["tier"], answer["rule"], answer["answer"]) == ("device", "no_cloud", "Thursday")
    assert answer["notes"] == ["check: the question asks when; the answer gives no date or time; the answer may be "
                               "incomplete"]
