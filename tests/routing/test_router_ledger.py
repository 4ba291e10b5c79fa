"""The router's ledger rows when things go wrong: a ledger that cannot be written, and requests that
fail, are cut or are abandoned. The third party is the stand-in provider on loopback, the ledger a
real SQLite file; the device is a stub (no decision here needs a model)."""

from __future__ import annotations

import sqlite3
import time

import pytest

from tether.routing.config import RouterConfig
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


@pytest.mark.parametrize("stream", [False, True])
def test_a_locked_ledger_delays_an_answer_by_seconds_not_half_a_minute(stub_device, third, tmp_path, stream):
    path = tmp_path / "ledger.sqlite"
    ledger = Ledger(path).open()
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
