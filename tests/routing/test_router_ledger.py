"""The router's ledger rows when things go wrong: a ledger that cannot be written, and requests that
fail, are cut or are abandoned. The third party is the stand-in provider on loopback, the ledger a
real SQLite file; the device is a stub (no decision here needs a model)."""

from __future__ import annotations

import sqlite3
import time

import pytest

from tether.errors import InvalidTierOutputError, TierUnavailableError
from tether.routing.config import RouterConfig, ThirdPartyConfig
from tether.routing.ledger import Ledger
from tether.routing.router import LEDGER_BUSY_TIMEOUT, RouteRequest, Router
from tether.routing.state import DeviceState


def router(device, third, ledger, **config) -> Router:
    return Router(RouterConfig(**{"cascade": [], **config}), device=device, third_party=third, ledger=ledger,
                  state=DeviceState())


def answer(r: Router, req: RouteRequest, stream: bool):
    """(text, response) of ``req``, answered whole or streamed."""
    if not stream:
        out = r.respond(req)
        return out.text, out
    routed = r.stream(req)
    text = "".join(routed)
    return text, routed.response


ASK = dict(tier="third_party", consent=True)


@pytest.mark.parametrize("stream", [False, True])
def test_an_answer_is_kept_when_its_ledger_row_cannot_be_written(stub_device, third, tmp_path, stream):
    (tmp_path / "a-file").write_text("not a folder")
    ledger = Ledger(tmp_path / "a-file" / "ledger.sqlite")  # its folder is a file: every write fails
    text, out = answer(router(stub_device, third, ledger), RouteRequest("hello there world", **ASK), stream)
    assert text == "echo: hello there world"  # generated and paid for: not thrown away for the ledger
    assert [n for n in out.notes if n.startswith("ledger not written: ")], out.notes


@pytest.mark.parametrize("opened", [True, False])
@pytest.mark.parametrize("stream", [False, True])
def test_a_locked_ledger_delays_an_answer_by_seconds_not_half_a_minute(stub_device, third, tmp_path, stream, opened):
    """``opened=False``: a router as ``Router.from_config()`` builds it, whose first row opens the file."""
    path = tmp_path / "ledger.sqlite"
    Ledger(path).open().close()
    ledger = Ledger(path).open() if opened else Ledger(path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing, and not letting go
    try:
        start = time.monotonic()
        text, out = answer(router(stub_device, third, ledger), RouteRequest("hello there world", **ASK), stream)
        elapsed = time.monotonic() - start
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert text == "echo: hello there world"
    assert any("ledger not written" in n and "locked" in n for n in out.notes), out.notes
    assert LEDGER_BUSY_TIMEOUT <= elapsed < LEDGER_BUSY_TIMEOUT + 10
    ledger.close()


# ----------------------------------------------------------------- requests that end without their answer

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


def only_row(ledger: Ledger):
    rows = ledger.entries()
    assert len(rows) == 1, rows
    return rows[0]


@pytest.mark.parametrize("stream", [False, True])
def test_an_answer_that_breaks_the_schema_with_nothing_to_answer_instead_leaves_one_paid_row(
        stub_device, third, provider, tmp_path, stream):
    """Streamed or not: the provider answered (and was paid), the router refused the answer."""
    ledger = Ledger(tmp_path / "ledger.sqlite")
    r = router(stub_device, third, ledger, allow_degraded=False)
    provider.faults([{"content": "not json at all, sorry"}])
    req = RouteRequest("give n", json_schema=SCHEMA, **ASK)
    with pytest.raises(InvalidTierOutputError):
        list(r.stream(req)) if stream else r.respond(req)
    row = only_row(ledger)
    assert row.tier == "third_party" and row.consent == "given"
    assert row.reason == ("requested" if stream else "requested.failed")  # a stream's text was already sent
    assert row.tokens > 0 and row.cost_usd > 0
    assert row.cost_usd == pytest.approx(r.config.prices.cost("third_party", row.tokens))
    assert len(provider.captured()) == 1


def test_a_stream_cut_midway_leaves_one_row_with_what_it_sent(stub_device, third, provider, tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    r = router(stub_device, third, ledger)
    provider.faults(["cut"])
    got: list[str] = []
    with pytest.raises(TierUnavailableError):
        for piece in r.stream(RouteRequest("one two three four", **ASK)):
            got.append(piece)
    assert got == ["echo:"]
    row = only_row(ledger)
    assert (row.tier, row.reason, row.completion_tokens) == ("third_party", "requested.cut", 1)
    assert row.prompt_tokens > 0 and row.cost_usd > 0 and row.latency_ms > 0


@pytest.mark.parametrize("tier", ["third_party", "device"])
def test_a_stream_its_reader_abandons_leaves_one_row_with_what_it_sent(stub_device, third, provider, tmp_path, tier):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    stub_device.text = "one two three four five six"
    r = router(stub_device, third, ledger)
    routed = iter(r.stream(RouteRequest("one two three four five six", tier=tier, consent=True)))
    assert [next(routed), next(routed)] == (["echo:", " one"] if tier == "third_party" else ["one", " two"])
    routed.close()  # a client that left
    row = only_row(ledger)
    assert (row.tier, row.reason, row.completion_tokens) == (tier, "requested.abandoned", 2)
    assert row.prompt_tokens > 0
    assert row.cost_usd > 0 if tier == "third_party" else row.energy_j > 0


def test_a_failed_escalation_leaves_one_row_with_the_device_s_answer(stub_device, third, provider, tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    r = router(stub_device, third, ledger, allow_degraded=False, consent="always", cascade=["summarize"],
               third_party=ThirdPartyConfig(base_url=provider.url, model="m", use_for_cloud=True))
    provider.faults([503] * 4)
    req = RouteRequest("Summarize: the meeting moved to Friday.", feature="summarize", check=lambda answer, cut: False)
    with pytest.raises(TierUnavailableError):
        r.respond(req)
    assert stub_device.calls == 1 and len(provider.captured()) == 4
    row = only_row(ledger)
    assert (row.tier, row.reason, row.escalated) == ("third_party", "cascade.failed", False)
    device_tokens = stub_device.count_tokens(r._messages(req, req.prompt)) + len(stub_device.text.split())
    assert row.tokens == device_tokens  # the provider, failing, was not paid: the device's answer was
    assert row.cost_usd == 0 and row.energy_j == pytest.approx(r.config.prices.energy("device", device_tokens))
