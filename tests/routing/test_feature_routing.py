"""Notification summaries through the router: the faithfulness check decides escalation.

The device tier is the real engine on smollm2-135m, whose greedy summary of ``DINNER`` copies
its first message and so drops the booking number and the amount the check requires; the cloud is a real
OpenAI-compatible server on loopback (``provider``) that records every byte it received.
"""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import pytest

from tether.features.notifications import (Notification, summarize_notifications, summarize_stack_routed,
                                           unsupported_facts)
from tether.routing.config import RouterConfig, ThirdPartyConfig
from tether.routing.escalation import DeviceAnswer, EscalationModel, answer_features
from tether.routing.ledger import Ledger
from tether.routing.router import RouteRequest, Router
from tether.routing.state import DeviceState

from tests.routing.test_router import TINY, dead_cloud, math_is_hard

CLOUD = ThirdPartyConfig(base_url="http://provider.invalid/v1", model="m", use_for_cloud=True)
DINNER = [
    Notification(app="Messages", sender="Alice Chen", body="Are we still on for dinner at 7:30 tonight?",
                 timestamp=datetime(2026, 12, 3, 18, 2)),
    Notification(app="Messages", sender="Alice Chen", body="The table is booked under 4417, bring $60 for the deposit.",
                 timestamp=datetime(2026, 12, 3, 18, 4)),
]
# The cloud model sees placeholders, so it writes them; the device restores the names.
CLOUD_SUMMARY = "<PERSON_1> confirms dinner at 7:30 tonight, booked under 4417 with a $60 deposit."


def escalate_everything() -> EscalationModel:
    """A real escalation model whose score sends every answer on."""
    dims = answer_features("x", "chat", DeviceAnswer("x", -0.5, -2.0, "stop", 4, 8)).shape[0]
    z = np.zeros(dims, dtype=np.float32)
    return EscalationModel(z, 1.0, z, np.ones(dims, np.float32), {"0.00": 0.0, "0.50": 0.0, "1.00": 0.0}, {})


def router(device, **parts) -> Router:
    """The default config (which cascades ``notifications``), with consent for the stand-in cloud."""
    return Router(RouterConfig(consent="always", third_party=CLOUD), device=device, scorer=math_is_hard(),
                  escalation=escalate_everything(), state=DeviceState(), **parts)


def sent_text(provider) -> str:
    return json.dumps([c["body"] for c in provider.captured()], ensure_ascii=False)


def tether_cli(tmp_path, provider, *args: str, config: str | None = None):
    """``tether ARGS`` in this process, its ledger in ``tmp_path`` and, unless ``config`` says
    otherwise, the stand-in provider as its cloud with consent given."""
    from click.testing import CliRunner

    from tether.cli import cli
    from tether.cli import features, stats  # noqa: F401  (register the commands)

    if config is None:
        config = (f'consent = "always"\n\n[third_party]\nbase_url = "{provider.url}"\nmodel = "gpt-test"\n'
                  "use_for_cloud = true\n")
    (tmp_path / "router.toml").write_text(config)
    env = {"TETHER_ROUTER_CONFIG": str(tmp_path / "router.toml"), "TETHER_LEDGER": str(tmp_path / "l.db")}
    return CliRunner().invoke(cli, list(args), env=env)


def test_the_check_alone_decides_a_cascade(device, third, provider):
    """A request with a check is escalated when the check fails and kept when it passes, even by a
    learned score that would send every answer on."""
    r = router(device, third_party=third)
    assert "notifications" in r.config.cascade
    kept = r.respond(RouteRequest("Say hello.", feature="notifications", max_tokens=8, check=lambda *_: True))
    assert (kept.tier, kept.decision.rule, kept.escalated) == ("device", "cascade", False)
    assert provider.captured() == []
    sent = r.respond(RouteRequest("Say hello.", feature="notifications", max_tokens=8, check=lambda *_: False))
    assert (sent.tier, sent.escalated) == ("third_party", True)
    assert sent.notes[0] == "cascade: device answer escalated (the feature's check failed)"
    assert len(provider.captured()) == 1
    # a check that says what is wrong: the route says it
    said = r.respond(RouteRequest("Say hello.", feature="notifications", max_tokens=8,
                                  check=lambda *_: "the answer names no place"))
    assert (said.tier, said.escalated) == ("third_party", True)
    assert said.notes[0] == "cascade: device answer escalated (the answer names no place)"


def test_an_unfaithful_summary_is_escalated_pseudonymized_and_restored(device, third, provider, tmp_path):
    provider.faults([{"content": CLOUD_SUMMARY}])
    ledger = Ledger(tmp_path / "ledger.sqlite")
    done = summarize_stack_routed(DINNER, router=router(device, third_party=third, ledger=ledger))
    assert (done.tier, done.extractive) == ("third_party", False)
    assert done.summary == "Alice Chen confirms dinner at 7:30 tonight, booked under 4417 with a $60 deposit."
    assert unsupported_facts(done.summary, DINNER) == []
    assert "the feature's check failed" in done.route
    # what left the device: the stack with its names replaced, never the names
    sent = sent_text(provider)
    assert "<PERSON_1>" in sent and "dinner at 7:30" in sent
    assert "Alice" not in sent and "Chen" not in sent
    (row,) = ledger.entries()
    assert (row.feature, row.tier, row.reason, row.escalated) == ("notifications", "third_party", "cascade", True)


def test_a_stack_the_policy_keeps_here_never_leaves(device, third, provider):
    secret = DINNER + [Notification(app="Messages", sender="Alice Chen", body="wifi there, password: Tr0ub4dor&3",
                                    timestamp=datetime(2026, 12, 3, 18, 5))]
    done = summarize_stack_routed(secret, router=router(device, third_party=third))
    assert done.tier == "device"
    assert "privacy policy keeps this text here" in done.route
    assert provider.captured() == []


def test_an_unreachable_cloud_leaves_the_stack_to_the_device(device):
    """The escalation fails: the device retries once and, failing that, the stack is extractive,
    as without a cloud; the route says what happened."""
    done = summarize_stack_routed(DINNER, router=router(device, private_cloud=dead_cloud()))
    assert done.tier == "device"
    assert "escalation failed" in done.route and "private_cloud failed" in done.route
    assert done.extractive or unsupported_facts(done.summary, DINNER) == []


def test_the_digest_says_where_each_stack_ran(device, third, provider):
    provider.faults([{"content": CLOUD_SUMMARY}])
    digest = summarize_notifications([n.model_dump() for n in DINNER], model="qwen2.5-0.5b",
                                     router=router(device, third_party=third))
    assert digest.model == TINY  # the router's device model, not the argument
    (stack,) = digest.stacks
    assert (stack.tier, stack.extractive) == ("third_party", False)
    assert json.loads(digest.model_dump_json())["stacks"][0]["tier"] == "third_party"
    plain = summarize_notifications(DINNER, model=TINY)
    assert (plain.stacks[0].tier, plain.stacks[0].route) == ("device", "")


def test_tether_summarize_escalates_through_the_configured_cloud(tmp_path, provider):
    provider.reset()
    provider.faults([{"content": CLOUD_SUMMARY}])
    stack = tmp_path / "stack.json"
    stack.write_text(json.dumps([json.loads(n.model_dump_json()) for n in DINNER]))
    out = tether_cli(tmp_path, provider, "summarize", str(stack), "--model", TINY)
    assert out.exit_code == 0, out.output
    assert "Alice Chen confirms dinner at 7:30 tonight, booked under 4417 with a $60 deposit." in out.output
    assert "── written on third party: device (cascade)" in out.output
    assert "Alice" not in sent_text(provider)
    totals = json.loads(tether_cli(tmp_path, provider, "stats", "--ledger", str(tmp_path / "l.db"), "--json").output)
    assert totals["by_tier"]["third_party"]["requests"] == 1


def test_a_policy_against_degraded_answers_costs_one_stack_not_the_digest(device):
    r = Router(RouterConfig(allow_degraded=False), device=device, private_cloud=dead_cloud(), state=DeviceState())
    done = summarize_stack_routed(DINNER, router=r)
    assert (done.tier, done.extractive) == ("device", True)
    assert "forbids answering on the device instead" in done.route


# ----------------------------------------------------------------- text summaries

ROOMS = ("Maria Gonzalez paid the rent on Monday. The landlord, Tom Becker, confirmed it by email "
         "and asked about the broken heater in the kitchen.")
CLOUD_TABLE = "| Who | What |\n|---|---|\n| <PERSON_1> | paid the rent on Monday |\n| <PERSON_2> | asked about the heater |"


def test_a_table_the_device_cannot_make_is_written_off_the_device(device, third, provider):
    from tether.features.writing import summarize

    provider.faults([{"content": CLOUD_TABLE}])
    done = summarize(ROOMS, "table", router=router(device, third_party=third))
    assert (done.tier, done.model) == ("third_party", TINY)
    assert done.table[1] == ["Maria Gonzalez", "paid the rent on Monday"]
    assert "the feature's check failed" in done.route
    sent = sent_text(provider)
    assert "Maria" not in sent and "Becker" not in sent and "<PERSON_1>" in sent


def test_without_a_cloud_the_device_answer_stands_or_fails_as_before(device):
    from tether.errors import InvalidOutputError
    from tether.features.writing import summarize

    r = Router(RouterConfig(), device=device, state=DeviceState())
    with pytest.raises(InvalidOutputError, match="no private cloud"):
        summarize(ROOMS, "table", router=r)
    with pytest.raises(InvalidOutputError, match="after a retry$"):
        summarize(ROOMS, "table", model=TINY)


# ----------------------------------------------------------------- rewrite

# smollm2-135m's professional rewrite of this runs past its budget (a "Billing: 19:30" loop), greedy and sampled
BOOKING = "Maria Gonzalez booked table 14 for 6 people at 19:30 on 5 December; the deposit is 60 euros."
CLOUD_REWRITE = "Dear colleagues, <PERSON_1> has booked table 14 for 6 people at 19:30 on 5 December. The deposit is 60 euros."


def test_a_rewrite_the_device_cannot_finish_is_written_off_the_device(device, third, provider, tmp_path):
    from tether.features.writing import rewrite

    provider.faults([{"content": CLOUD_REWRITE}])
    ledger = Ledger(tmp_path / "ledger.sqlite")
    done = rewrite(BOOKING, "professional", router=router(device, third_party=third, ledger=ledger))
    assert (done.tier, done.model, done.cut) == ("third_party", TINY, False)
    assert done.text == CLOUD_REWRITE.replace("<PERSON_1>", "Maria Gonzalez")
    assert (done.missing_numbers, done.added_numbers) == ([], [])
    assert "the feature's check failed" in done.route
    sent = sent_text(provider)
    assert "<PERSON_1>" in sent and "table 14" in sent
    assert "Maria" not in sent and "Gonzalez" not in sent
    (row,) = ledger.entries()
    assert (row.feature, row.tier, row.reason, row.escalated) == ("rewrite", "third_party", "cascade", True)


def test_a_cloud_rewrite_that_fails_the_check_too_is_shown_with_its_faults(device, third, provider):
    """Neither passes: the better of the two is shown (not cut beats cut), with what it lost listed."""
    from tether.features.writing import rewrite

    provider.faults([{"content": "<PERSON_1> booked table 14 for 6 people at 19:30 on 5 December. A deposit is due."}])
    done = rewrite(BOOKING, "professional", router=router(device, third_party=third))
    assert done.route.endswith("its rewrite failed the check too")
    assert (done.tier, done.cut, done.missing_numbers) == ("third_party", False, ["60"])
    assert done.text.startswith("Maria Gonzalez booked table 14")
    assert len(provider.captured()) == 1


def test_a_cloud_rewrite_with_a_blank_to_fill_in_fails_the_check_and_lists_it(device, third, provider):
    from tether.features.writing import rewrite

    provider.faults([{"content": "<PERSON_1> booked table 14 for 6 people at 19:30 on 5 December at [Restaurant]; "
                                 "the deposit is 60 euros."}])
    done = rewrite(BOOKING, "professional", router=router(device, third_party=third))
    assert done.route.endswith("its rewrite failed the check too")
    assert (done.tier, done.unfilled, done.missing_numbers) == ("third_party", ["[Restaurant]"], [])


def test_a_rewrite_that_passes_on_the_device_never_leaves_it(device, third, provider):
    from tether.features.writing import rewrite

    done = rewrite(BOOKING, "concise", router=router(device, third_party=third))
    assert (done.tier, done.cut, done.missing_numbers, done.added_numbers) == ("device", False, [], [])
    assert "cascade" in done.route
    assert provider.captured() == []


def test_a_rewrite_with_a_secret_never_leaves_and_an_unreachable_cloud_leaves_it_to_the_device(device, third,
                                                                                                provider):
    from tether.features.writing import rewrite

    secret = rewrite(BOOKING + " The wifi password: Tr0ub4dor&3", "professional",
                     router=router(device, third_party=third))
    assert secret.tier == "device" and "privacy policy keeps this text" in secret.route
    assert provider.captured() == []
    dead = rewrite(BOOKING, "professional", router=router(device, private_cloud=dead_cloud()))
    assert dead.tier == "device" and "escalation failed" in dead.route
    # the device's best try, kept with what the check found in it, not hidden
    assert dead.cut or dead.missing_numbers or dead.added_numbers or dead.unfilled


# smollm2-135m's professional rewrite of this, greedy and sampled, asks nothing ("I'm excited to take you on a
# memorable hiking adventure this weekend."): the question became a statement
HIKE = "Are you up for a hiking trip this weekend? The weather looks great."


def test_a_rewrite_that_turns_the_question_into_a_statement_is_written_off_the_device(device, third, provider,
                                                                                      tmp_path):
    from tether.features.writing import rewrite

    alone = rewrite(HIKE, "professional", model=TINY)
    assert alone.lost_question and "?" not in alone.text
    provider.faults([{"content": "Would you be interested in a hiking trip this weekend? The forecast is excellent."}])
    done = rewrite(HIKE, "professional", router=router(device, third_party=third))
    assert (done.tier, done.lost_question) == ("third_party", False)
    assert done.text.startswith("Would you be interested") and "the feature's check failed" in done.route
    out = tether_cli(tmp_path, provider, "rewrite", "--text", HIKE, "--model", TINY, "--tone", "professional",
                     config='consent = "never"\n')
    assert out.exit_code == 0, out.output
    assert "(warning: the text asks something and the rewrite asks nothing; check that it says the same)" in out.output


def test_tether_rewrite_shows_where_it_was_written(tmp_path, provider):
    provider.reset()
    provider.faults([{"content": CLOUD_REWRITE}])
    out = tether_cli(tmp_path, provider, "rewrite", "--text", BOOKING, "--model", TINY)
    assert out.exit_code == 0, out.output
    assert "Maria Gonzalez has booked table 14" in out.output
    assert "── written on third party: device (cascade)" in out.output
    assert "Maria" not in sent_text(provider)


# smollm2-135m's replies to this, and their sampled retry, are all dropped (a loop, a fragment):
# the fixed set would fill all three, so the cascade asks the cloud.
LATE = "Maria Gonzalez is running 10 min late, sorry!"
CLOUD_REPLIES = {"agree": "No worries, tell <PERSON_1> to take her time!", "decline": "Sorry, I can't wait long today.",
                 "ask": "Should we start without her?"}


def test_replies_the_device_cannot_write_are_written_off_the_device_pseudonymized(device, third, provider, tmp_path):
    from tether.features.replies import smart_replies

    assert smart_replies(LATE, model=TINY).fallback  # what the device alone gives
    provider.faults([{"content": json.dumps(CLOUD_REPLIES)}])
    ledger = Ledger(tmp_path / "ledger.sqlite")
    done = smart_replies(LATE, router=router(device, third_party=third, ledger=ledger))
    assert (done.tier, done.fallback, done.model) == ("third_party", False, TINY)
    assert done.replies == ["No worries, tell Maria Gonzalez to take her time!", "Sorry, I can't wait long today.",
                            "Should we start without her?"]
    assert "the feature's check failed" in done.route
    sent = sent_text(provider)
    assert "<PERSON_1>" in sent and "10 min late" in sent
    assert "Maria" not in sent and "Gonzalez" not in sent
    assert '"agree"' in json.dumps(provider.captured()[0]["body"].get("response_format"))  # the schema went too
    (row,) = ledger.entries()
    assert (row.feature, row.tier, row.reason, row.escalated) == ("replies", "third_party", "cascade", True)


def test_cloud_replies_that_are_unusable_leave_the_device_s_and_say_so(device, third, provider):
    from tether.features.replies import smart_replies

    bot = {"agree": "I'm sorry, but I can't assist with that.", "decline": "How can I help you today?",
           "ask": "Should we start without her?"}
    provider.faults([{"content": json.dumps(bot)}, {"content": "Here are three replies: 1. Sure 2. No 3. Why?"}])
    r = router(device, third_party=third)
    some = smart_replies(LATE, router=r)
    assert some.tier == "third_party" and some.replies[0] == "Should we start without her?"  # its one good reply
    assert some.route.endswith("it gave 1 usable reply of 3")
    broken = smart_replies(LATE, router=r)  # not JSON: the router itself answers on the device instead
    assert (broken.tier, broken.fallback) == ("device", True)  # the fixed set fills in, as without a cloud
    assert "broke the JSON schema" in broken.route and broken.route.endswith("(degraded)")
    assert len(broken.replies) == 3 and len(provider.captured()) == 2


def test_replies_the_device_writes_well_never_leave_it(device, third, provider):
    from tether.features.replies import smart_replies

    done = smart_replies("Lunch on Friday?", router=router(device, third_party=third))
    assert (done.tier, done.fallback) == ("device", False)
    assert done.route.startswith("device (cascade)")
    assert provider.captured() == []


def test_replies_with_an_unreachable_cloud_stay_on_the_device(device):
    from tether.features.replies import smart_replies

    done = smart_replies(LATE, router=router(device, private_cloud=dead_cloud()))
    assert (done.tier, done.fallback) == ("device", True)
    assert "escalation failed" in done.route


def test_tether_reply_shows_where_the_replies_were_written(tmp_path, provider):
    provider.reset()
    provider.faults([{"content": json.dumps(CLOUD_REPLIES)}])
    out = tether_cli(tmp_path, provider, "reply", "--text", LATE, "--model", TINY)
    assert out.exit_code == 0, out.output
    assert "1. No worries, tell Maria Gonzalez to take her time!" in out.output
    assert "── written on third party: device (cascade)" in out.output
    assert "Maria" not in sent_text(provider)


def test_replies_go_where_the_user_asks_and_a_third_party_only_with_consent(device, third, provider, tmp_path):
    """The cloud model's replies read better than the 0.5B's (docs/benchmarks.md, "Smart replies"),
    more than the check can see, so the user can ask for them; a refused consent sends nothing."""
    from tether.errors import InputError
    from tether.features.replies import smart_replies

    with pytest.raises(InputError, match="needs a router"):
        smart_replies("Lunch on Friday?", model=TINY, tier="third_party")
    provider.reset()
    config = f'consent = "ask"\n\n[third_party]\nbase_url = "{provider.url}"\nmodel = "gpt-test"\n'
    refused = tether_cli(tmp_path, provider, "reply", "--text", "Lunch on Friday, Maria Gonzalez?", "--model", TINY,
                         "--tier", "third_party", "--no-consent", config=config)
    assert provider.captured() == []
    assert refused.exit_code == 1 and len(refused.output.strip().splitlines()) == 1, refused.output
    assert "consent" in refused.output
    provider.faults([{"content": json.dumps(CLOUD_REPLIES)}])
    asked = tether_cli(tmp_path, provider, "reply", "--text", LATE, "--model", TINY, "--tier", "third_party",
                       "--consent", config=config)
    assert asked.exit_code == 0, asked.output
    assert "1. No worries, tell Maria Gonzalez to take her time!" in asked.output
    assert "── written on third party" in asked.output
    assert len(provider.captured()) == 1 and "Maria" not in sent_text(provider)


# smollm2-135m's proofread of this keeps "tralihead" (or makes it "tralinehead"), which no rule can fix; the cloud
# stand-in can
TRAIL = "Maria Gonzalez booked a table at the tralihead cafe for six people on Friday."
CLOUD_PROOFREAD = "<PERSON_1> booked a table at the trailhead cafe for six people on Friday."
# "an table" is left by the model and fixed on the device by the a/an rule
TABLE = "Maria Gonzalez booked an table for six people, and the deposit of 60 euros is due on Friday."


def test_a_proofread_that_leaves_an_error_is_corrected_off_the_device_pseudonymized(device, third, provider,
                                                                                     tmp_path):
    from tether.features.writing import proofread

    provider.faults([{"content": CLOUD_PROOFREAD}])
    ledger = Ledger(tmp_path / "ledger.sqlite")
    done = proofread(TRAIL, router=router(device, third_party=third, ledger=ledger))
    assert (done.tier, done.model, done.fallback) == ("third_party", TINY, False)
    assert done.corrected == TRAIL.replace("tralihead", "trailhead")
    assert [(e.original, e.replacement) for e in done.edits] == [("tralihead", "trailhead")]
    assert done.flagged == []
    assert "the feature's check failed" in done.route
    sent = sent_text(provider)
    assert "<PERSON_1>" in sent and "tralihead" in sent
    assert "Maria" not in sent and "Gonzalez" not in sent
    (row,) = ledger.entries()
    assert (row.feature, row.tier, row.reason, row.escalated) == ("proofread", "third_party", "cascade", True)


def test_the_models_are_given_the_text_with_the_sure_fixes_made(device, third, provider):
    """The rules fix "an table" before any model reads the text, so neither model has to, and the
    cloud, sent the piece for "tralihead", which no rule can fix, gets it that way too."""
    from tether.features.writing import proofread

    text = TRAIL.replace("a table", "an table")
    provider.faults([{"content": CLOUD_PROOFREAD}])
    done = proofread(text, router=router(device, third_party=third))
    sent = sent_text(provider)
    assert "a table at the tralihead" in sent and "an table" not in sent
    assert done.corrected == TRAIL.replace("tralihead", "trailhead")
    assert [(e.original, e.replacement) for e in done.edits] == [("an", "a"), ("tralihead", "trailhead")]


def test_what_the_device_can_fix_itself_never_leaves_it(device, third, provider):
    """The model keeps "an table"; the a/an rule is sure of the fix, so the device makes it and
    nothing is left to send."""
    from tether.features.writing import proofread

    done = proofread(TABLE, router=router(device, third_party=third))
    assert (done.tier, done.flagged) == ("device", [])
    assert done.corrected == TABLE.replace("an table", "a table")
    assert [(e.original, e.replacement) for e in done.edits] == [("an", "a")]
    assert "cascade" in done.route and "device answer escalated" not in done.route
    assert provider.captured() == []


def test_a_cloud_answer_that_is_no_proofread_leaves_the_device_s_with_what_remains_flagged(device, third,
                                                                                           provider):
    """The cloud's answer is taken only if it is a proofread (most of the text kept) with no more
    errors left than the device's."""
    from tether.features.writing import proofread

    provider.faults([{"content": "I'm sorry, but I can't help with booking tables."}])
    done = proofread(TRAIL, router=router(device, third_party=third))
    assert done.route.endswith("its proofread was no better")
    # the device's own proofread ("tralihead" kept, or made "tralinehead"), its doubt listed
    assert done.tier == "device" and done.corrected.startswith("Maria Gonzalez booked a table at the trali")
    assert [f.why for f in done.flagged] == ["not a word"]
    assert len(provider.captured()) == 1


def test_a_proofread_with_nothing_left_to_fix_never_leaves_the_device(device, third, provider):
    from tether.features.writing import proofread

    done = proofread(TRAIL.replace("tralihead", "trailhead"), router=router(device, third_party=third))
    assert (done.tier, done.edits, done.flagged) == ("device", [], [])
    assert "cascade" in done.route
    assert provider.captured() == []


def test_a_proofread_with_an_unreachable_cloud_is_the_device_s_with_its_doubts_listed(device):
    from tether.features.writing import proofread

    done = proofread(TRAIL, router=router(device, private_cloud=dead_cloud()))
    assert done.tier == "device" and "escalation failed" in done.route
    assert [f.why for f in done.flagged] == ["not a word"] and "trailhead" not in done.corrected


def test_tether_proofread_shows_where_it_was_corrected_and_what_looks_wrong(tmp_path, provider):
    provider.reset()
    provider.faults([{"content": CLOUD_PROOFREAD}])
    out = tether_cli(tmp_path, provider, "proofread", "--text", TRAIL, "--model", TINY)
    assert out.exit_code == 0, out.output
    assert "Maria Gonzalez booked a table at the trailhead cafe" in out.output
    assert "'tralihead' → 'trailhead'" in out.output
    assert "── corrected on third party: device (cascade)" in out.output
    assert "Maria" not in sent_text(provider)
    alone = tether_cli(tmp_path, provider, "proofread", "--text", TRAIL, "--model", TINY,
                       config="")  # no cloud: what the device left is listed
    assert alone.exit_code == 0, alone.output
    assert "1 possible error(s) left" in alone.output and "': not a word" in alone.output
