"""The routing ledger on a real SQLite file: round trip, stats math, threads, no content, bad files, CLI."""

from __future__ import annotations

import json
import sqlite3
import threading
import time

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

import tether.cli.stats  # noqa: F401  (registers `tether stats`)
from tether.cli import cli
from tether.errors import InputError, RoutingError
from tether.routing.ledger import Ledger, LedgerEntry, Prices

CANARY = "CANARY-7f3e9b21-Jane-Roe-078-05-1120"


def entry(**kw) -> LedgerEntry:
    base = dict(feature="summarize", tier="device", reason="difficulty", score=0.2, latency_ms=120.0,
                prompt_tokens=100, completion_tokens=50)
    return LedgerEntry.priced(**{**base, **kw})


# Hand-made traffic: 3 device, 1 private cloud (escalated), 1 third party (consented).
HAND = [
    dict(tier="device", prompt_tokens=6000, completion_tokens=4000, latency_ms=100.0),
    dict(tier="device", prompt_tokens=15000, completion_tokens=5000, latency_ms=200.0, degraded=True),
    dict(tier="device", prompt_tokens=8000, completion_tokens=2000, latency_ms=300.0),
    dict(tier="private_cloud", reason="difficulty", prompt_tokens=3000, completion_tokens=1000, latency_ms=500.0,
         escalated=True),
    dict(tier="third_party", reason="capability", prompt_tokens=300, completion_tokens=100, latency_ms=1000.0,
         consent="given"),
]


@pytest.fixture
def populated(tmp_path):
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as led:
        for i, kw in enumerate(HAND):
            led.record(entry(ts=1000.0 + i, **kw))
    return path


def test_prices_defaults_and_math():
    p = Prices()
    assert p.cost("device", 1_000_000) == 0.0
    assert p.cost("private_cloud", 1_000_000) == pytest.approx(0.20)
    assert p.cost("third_party", 2_000) == pytest.approx(0.005)
    assert p.energy("device", 10) == pytest.approx(3.0)
    assert p.energy("private_cloud", 10) == pytest.approx(20.0)
    assert p.energy("third_party", 10) == pytest.approx(40.0)
    with pytest.raises(InputError):
        p.cost("moon", 1)
    with pytest.raises(InputError):
        p.energy("device", -1)


def test_record_and_entries_round_trip(tmp_path):
    path = tmp_path / "sub" / "ledger.sqlite"
    with Ledger(path) as led:
        assert led.entries() == []
        assert not path.exists()  # reading does not create the file
        e1 = entry(ts=10.0, consent="refused", score=None)
        e2 = entry(ts=20.0, tier="private_cloud", reason="privacy", degraded=True, escalated=True, consent="given")
        id1, id2 = led.record(e1), led.record(e2)
        assert id2 > id1
        assert led.entries() == [e2, e1]  # newest first, every field intact
        assert led.entries(limit=1) == [e2]
        with pytest.raises(InputError):
            led.entries(limit=0)
    with Ledger(path) as again:  # survives a reopen
        assert again.entries() == [e2, e1]
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "1"
    con.close()


def test_default_path_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("TETHER_LEDGER", str(tmp_path / "env.sqlite"))
    assert Ledger().path == tmp_path / "env.sqlite"
    monkeypatch.delenv("TETHER_LEDGER")
    assert Ledger().path.name == "ledger.sqlite"


def test_stats_math_exact(populated):
    with Ledger(populated) as led:
        st = led.stats()
    assert st.requests == 5
    assert st.tokens == 44_400
    assert {t: s.requests for t, s in st.by_tier.items()} == {"device": 3, "private_cloud": 1, "third_party": 1}
    assert st.device_share == pytest.approx(0.6)
    assert st.by_tier["private_cloud"].share == pytest.approx(0.2)
    assert st.by_tier["third_party"].share == pytest.approx(0.2)
    # actual: 4000 tok * $0.20/M + 400 tok * $2.50/M = 0.0008 + 0.001
    assert st.cost_usd == pytest.approx(0.0018)
    # all-cloud: 44 400 tok * $0.20/M
    assert st.all_cloud_cost_usd == pytest.approx(0.00888)
    assert st.saved_usd == pytest.approx(0.00708)
    assert st.saved_share == pytest.approx(0.00708 / 0.00888)
    # energy: 40 000 * 0.3 + 4000 * 2.0 + 400 * 4.0 vs 44 400 * 2.0
    assert st.energy_j == pytest.approx(21_600)
    assert st.all_cloud_energy_j == pytest.approx(88_800)
    assert (st.degraded, st.escalated) == (1, 1)
    dev = st.by_tier["device"]
    assert (dev.p50_latency_ms, dev.p95_latency_ms) == (pytest.approx(200.0), pytest.approx(290.0))
    assert st.by_tier["third_party"].p95_latency_ms == pytest.approx(1000.0)


def test_stats_since_and_custom_prices(populated):
    with Ledger(populated) as led:
        st = led.stats(since=1003.0)  # only the last two entries
        assert st.requests == 2 and st.device_share == 0.0
        assert st.by_tier["device"].p50_latency_ms is None
        cheap = Prices(private_cloud={"usd_per_mtok": 1.0, "joules_per_token": 1.0})
        assert led.stats(prices=cheap).all_cloud_cost_usd == pytest.approx(0.0444)


def test_stats_empty(tmp_path):
    st = Ledger(tmp_path / "none.sqlite").stats()
    assert st.requests == 0 and st.saved_share is None and st.device_share == 0.0
    assert not (tmp_path / "none.sqlite").exists()


def test_concurrent_records_lose_nothing(tmp_path):
    led = Ledger(tmp_path / "ledger.sqlite")
    ids: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def worker(n: int) -> None:
        try:
            start.wait()
            for i in range(50):
                ids.append(led.record(entry(feature=f"worker{n}", latency_ms=float(i))))
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(ids) == len(set(ids)) == 400
    assert led.stats().requests == 400
    assert len(led.entries(limit=1000)) == 400
    led.close()


@pytest.mark.parametrize("field", ["prompt", "text", "answer", "messages", "entities", "output"])
def test_entry_refuses_content_fields(field):
    with pytest.raises(ValidationError):
        entry(**{field: CANARY})


@pytest.mark.parametrize("field", ["feature", "reason"])
@pytest.mark.parametrize("value", [CANARY, "summarize this: my SSN is 078-05-1120", "", "x" * 49, "Summarize"])
def test_free_strings_must_be_short_identifiers(field, value):
    with pytest.raises(ValidationError):
        entry(**{field: value})


def test_entry_refuses_bad_values():
    for bad in (dict(tier="moon"), dict(consent="maybe"), dict(prompt_tokens=-1), dict(latency_ms=float("nan"))):
        with pytest.raises((ValidationError, InputError)):
            entry(**bad)


def test_raw_file_never_holds_content(tmp_path):
    # The request as the router sees it; only its metadata goes to the ledger.
    request = {"feature": "rewrite", "messages": [{"role": "user", "content": f"Rewrite this for {CANARY}"}]}
    path = tmp_path / "ledger.sqlite"
    led = Ledger(path)
    for i in range(20):
        led.record(entry(feature=request["feature"], reason="privacy", tier="device", ts=float(i),
                         prompt_tokens=len(request["messages"][0]["content"]) // 4))
    # Read while open, so the rows are still in the -wal file.
    wal = path.with_name(path.name + "-wal")
    assert wal.exists()
    raw = path.read_bytes() + wal.read_bytes()
    assert b"rewrite" in raw  # the scan does see stored strings...
    assert CANARY.encode() not in raw  # ...and the request text is not among them
    assert b"Jane" not in raw
    led.close()
    assert CANARY.encode() not in path.read_bytes()


def test_corrupt_file_is_a_routing_error(tmp_path):
    path = tmp_path / "ledger.sqlite"
    path.write_bytes(b"this is not a database\n" * 200)
    led = Ledger(path)
    with pytest.raises(RoutingError, match=str(path)):
        led.record(entry())
    with pytest.raises(RoutingError, match="not a usable routing ledger"):
        led.stats()
    assert path.read_bytes() == b"this is not a database\n" * 200  # left as it was


def test_newer_schema_is_a_routing_error(tmp_path):
    path = tmp_path / "ledger.sqlite"
    Ledger(path).record(entry())
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    con.commit()
    con.close()
    with pytest.raises(RoutingError, match="newer"):
        Ledger(path).entries()
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value='v2-beta' WHERE key='schema_version'")
    con.commit()
    con.close()
    with pytest.raises(RoutingError, match="not a Tether ledger"):
        Ledger(path).entries()


def test_a_ledger_this_tether_will_not_use_is_left_in_its_journal_mode(tmp_path):
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as ledger:
        ledger.record(entry())
    con = sqlite3.connect(path, isolation_level=None)  # as a newer Tether (or another tool) left it
    con.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    assert con.execute("PRAGMA journal_mode=DELETE").fetchone()[0] == "delete"
    con.close()
    with pytest.raises(RoutingError, match="newer"):
        Ledger(path).open()
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # not switched to WAL on the way
    con.close()


def test_another_program_s_entries_table_is_refused_and_left_as_it_was(tmp_path):
    """A table named ``entries`` (a diary's, a log's) passed for a ledger: the router added its ``meta``
    table, switched the file to WAL, then lost every row to "no column named reason" after the answer
    was made, and ``tether stats`` said only "no such column: latency_ms"."""
    path = tmp_path / "diary.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE entries (id INTEGER PRIMARY KEY, ts REAL, feature TEXT, tier TEXT, body TEXT)")
    con.execute("INSERT INTO entries(ts, feature, tier, body) VALUES (1, 'chat', 'device', 'dear diary')")
    con.commit()
    con.close()
    before = path.read_bytes()
    for ledger in (Ledger(path), Ledger(path, readonly=True)):
        with pytest.raises(RoutingError, match="not a routing ledger: its entries table has no column reason"):
            ledger.open()
    with pytest.raises(RoutingError, match="not a routing ledger"):
        Ledger(path).record(entry())
    res = CliRunner().invoke(cli, ["stats", "--ledger", str(path)])
    assert res.exit_code == 1 and "not a routing ledger" in res.output and "Traceback" not in res.output
    assert path.read_bytes() == before and not (tmp_path / "diary.sqlite-wal").exists()


def test_cli_stats_json(populated):
    res = CliRunner().invoke(cli, ["stats", "--ledger", str(populated), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["requests"] == 5
    assert data["device_share"] == pytest.approx(0.6)
    assert data["all_cloud_cost_usd"] == pytest.approx(0.00888)
    assert data["by_tier"]["device"]["p95_latency_ms"] == pytest.approx(290.0)


def test_cli_stats_human(populated):
    res = CliRunner().invoke(cli, ["stats", "--ledger", str(populated)])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "5 requests, 60.0% on the device" in out
    assert "$0.0018 vs $0.0089 all-cloud" in out
    assert "79.7%" in out
    assert "21.60 kJ vs 88.80 kJ all-cloud" in out
    assert "degraded 1, escalated 1" in out
    assert "device 200/290" in out and "third party 1000/1000" in out


def test_cli_stats_since_hours(populated, tmp_path):
    # The hand-made entries are from 1970, so a recent window is empty; a fresh one shows up.
    res = CliRunner().invoke(cli, ["stats", "--ledger", str(populated), "--since-hours", "24"])
    assert res.exit_code == 0 and "no requests in the last 24 h" in res.output
    Ledger(populated).record(entry(ts=time.time()))
    res = CliRunner().invoke(cli, ["stats", "--ledger", str(populated), "--since-hours", "24", "--json"])
    assert json.loads(res.output)["requests"] == 1


def test_cli_stats_empty(tmp_path):
    missing = tmp_path / "missing.sqlite"
    res = CliRunner().invoke(cli, ["stats", "--ledger", str(missing)])  # a named file that is not there: a typo
    assert res.exit_code == 1 and "no ledger at" in res.output
    assert not missing.exists()
    created = tmp_path / "created.sqlite"
    Ledger(created)._run(lambda con: None, create=True)  # an existing but empty ledger
    res = CliRunner().invoke(cli, ["stats", "--ledger", str(created)])
    assert res.exit_code == 0 and res.output.strip() == "no requests yet"


def test_cli_stats_corrupt_is_one_line(tmp_path):
    path = tmp_path / "bad.sqlite"
    path.write_bytes(b"garbage" * 100)
    res = CliRunner().invoke(cli, ["stats", "--ledger", str(path)])
    assert res.exit_code == 1
    assert str(path) in res.output and "Traceback" not in res.output


def test_a_row_that_breaks_the_rules_is_skipped_when_listing(tmp_path):
    path = tmp_path / "ledger.sqlite"
    ledger = Ledger(path)
    ledger.record(entry(feature="good"))
    con = sqlite3.connect(path)
    con.execute("UPDATE entries SET latency_ms = -5")  # written by another tool
    con.commit()
    con.close()
    ledger.record(entry(feature="later"))
    assert [e.feature for e in ledger.entries()] == ["later"]


def test_cli_stats_reads_the_ledger_the_router_config_names(populated, tmp_path, monkeypatch):
    config = tmp_path / "router.toml"
    config.write_text(f'ledger = "{populated}"\n')
    monkeypatch.setenv("TETHER_ROUTER_CONFIG", str(config))
    monkeypatch.setenv("TETHER_LEDGER", str(tmp_path / "other.sqlite"))  # the config's key wins, as in the router
    res = CliRunner().invoke(cli, ["stats", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["requests"] == json.loads(
        CliRunner().invoke(cli, ["stats", "--ledger", str(populated), "--json"]).output)["requests"] > 0


@pytest.mark.parametrize("named", [True, False])
def test_cli_stats_prices_the_all_cloud_baseline_as_the_router_config_does(populated, tmp_path, monkeypatch, named):
    """With --ledger too: the ledger's rows carry their own cost, the baseline is priced now."""
    config = tmp_path / "router.toml"
    config.write_text(f'ledger = "{populated}"\n[prices.private_cloud]\nusd_per_mtok = 50.0\njoules_per_token = 20.0\n')
    monkeypatch.setenv("TETHER_ROUTER_CONFIG", str(config))
    res = CliRunner().invoke(cli, ["stats", "--json", *(["--ledger", str(populated)] if named else [])])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    tokens = sum(kw["prompt_tokens"] + kw["completion_tokens"] for kw in HAND)
    assert data["tokens"] == tokens
    assert data["all_cloud_cost_usd"] == pytest.approx(tokens * 50.0 / 1e6)
    assert data["all_cloud_energy_j"] == pytest.approx(tokens * 20.0)
    assert data["saved_usd"] == pytest.approx(tokens * 50.0 / 1e6 - data["cost_usd"])


def _immutable(path, on: bool) -> bool:
    """``chattr +i``: read-only even for root (CI runs as root, so file modes prove nothing)."""
    import subprocess

    return subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True).returncode == 0


def test_stats_reads_a_ledger_in_a_folder_it_cannot_write(populated):
    folder = populated.parent
    before = populated.read_bytes()
    if not _immutable(folder, True):
        pytest.skip("chattr +i is not permitted here")
    try:
        res = CliRunner().invoke(cli, ["stats", "--ledger", str(populated), "--json"])
    finally:
        _immutable(folder, False)
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["requests"] == 5
    assert populated.read_bytes() == before


def test_readonly_ledger_never_writes(tmp_path, populated):
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    assert Ledger(empty, readonly=True).stats().requests == 0
    assert empty.read_bytes() == b""  # no tables were created in it
    led = Ledger(populated, readonly=True)
    assert len(led.entries()) == 5
    with pytest.raises(RoutingError, match="read-only"):
        led.record(entry())
    assert len(Ledger(populated).entries()) == 5


def test_cli_stats_recent_lists_the_newest_requests_and_why(populated):
    res = CliRunner().invoke(cli, ["stats", "--ledger", str(populated), "--recent", "2"])
    assert res.exit_code == 0, res.output
    lines = res.output.split("2 most recent:\n")[1].splitlines()
    assert len(lines) == 2
    assert "third party" in lines[0] and "400 tok" in lines[0] and "capability (score 0.20), consent given" in lines[0]
    assert "private cloud" in lines[1] and "difficulty (score 0.20), escalated" in lines[1]
    data = json.loads(CliRunner().invoke(cli, ["stats", "--ledger", str(populated), "--recent", "9",
                                               "--json"]).output)
    assert data["requests"] == 5 and [e["tier"] for e in data["recent"]] == [
        "third_party", "private_cloud", "device", "device", "device"]
    assert "recent" not in json.loads(CliRunner().invoke(cli, ["stats", "--ledger", str(populated), "--json"]).output)


def test_cli_stats_recent_keeps_to_the_window_and_refuses_a_bad_count(populated):
    Ledger(populated).record(entry(ts=time.time(), feature="chat"))
    res = CliRunner().invoke(cli, ["stats", "--ledger", str(populated), "--recent", "5", "--since-hours", "1"])
    assert res.exit_code == 0 and "1 most recent:" in res.output and " chat " in res.output
    for bad in ("0", "-3", "many"):
        res = CliRunner().invoke(cli, ["stats", "--ledger", str(populated), "--recent", bad])
        assert res.exit_code == 2 and "--recent" in res.output
    with pytest.raises(InputError):
        Ledger(populated).entries(0)


def test_cli_stats_a_loss_reads_as_a_negative_amount(tmp_path):
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as led:  # third-party tokens cost more than the all-cloud baseline
        led.record(entry(tier="third_party", reason="capability", prompt_tokens=1000, completion_tokens=200,
                         consent="given"))
    res = CliRunner().invoke(cli, ["stats", "--ledger", str(path)])
    assert res.exit_code == 0 and "(saved -$0.0028, " in res.output and "$-" not in res.output


@pytest.mark.parametrize("bad, why", [("/tmp/a\x00b.sqlite", "holds a NUL"), ("/tmp/\ud800.sqlite", "not valid Unicode")])
def test_a_ledger_path_no_file_system_takes_is_a_routing_error(bad, why):
    """A NUL or a lone surrogate (a JSON config's "\\ud800") was a ValueError traceback on open,
    and a reader took it for a ledger not written yet ("no requests yet")."""
    with pytest.raises(RoutingError, match=why):
        Ledger(bad).open()
    with pytest.raises(RoutingError, match=why):
        Ledger(bad, readonly=True).stats()
    with pytest.raises(RoutingError, match=why):
        Ledger(bad).record(entry())


@pytest.mark.parametrize("value, needle", [("/tmp/a\\u0000b", "NUL"), ("\\ud800", "valid Unicode"), (" ", "empty")])
def test_the_router_config_checks_its_ledger_path(tmp_path, value, needle):
    from tether.errors import RouterConfigError
    from tether.routing.config import RouterConfig

    config = tmp_path / "router.json"
    config.write_text('{"ledger": "%s"}' % value)
    with pytest.raises(RouterConfigError, match=f"ledger: .*{needle}"):
        RouterConfig.load(config)


def test_relative_paths_in_the_router_config_are_from_its_folder_not_the_working_one(tmp_path, monkeypatch):
    from tether.routing.config import RouterConfig

    folder = tmp_path / "conf"
    (folder / "data").mkdir(parents=True)
    config = folder / "router.toml"
    config.write_text('ledger = "data/ledger.sqlite"\n[private_cloud]\nrelay_url = "http://127.0.0.1:9"\n'
                      'state_path = "cloud.json"\n')
    Ledger(folder / "data" / "ledger.sqlite").record(entry())
    for cwd, named in ((tmp_path, "conf/router.toml"), (tmp_path / "conf" / "data", str(config))):
        monkeypatch.chdir(cwd)
        loaded = RouterConfig.load(named)
        assert loaded.ledger == str(folder / "data" / "ledger.sqlite")
        assert loaded.private_cloud.state_file() == folder / "cloud.json"
        monkeypatch.setenv("TETHER_ROUTER_CONFIG", named)
        res = CliRunner().invoke(cli, ["stats", "--json"])  # reads the file the router writes
        assert res.exit_code == 0 and json.loads(res.output)["requests"] == 1, res.output
    config.write_text(f'ledger = "{tmp_path / "abs.sqlite"}"\n')  # absolute, or from home: as written
    assert RouterConfig.load(config).ledger == str(tmp_path / "abs.sqlite")
    config.write_text('ledger = "~/tether-ledger.sqlite"\n')
    assert RouterConfig.load(config).ledger == "~/tether-ledger.sqlite"


def test_stats_skip_rows_whose_numbers_no_entry_could_hold_and_say_how_many(tmp_path):
    """Text in latency_ms was a TypeError traceback in percentile(); infinity made every total and
    `stats --json` Infinity, which is not JSON. Such rows are left out and counted."""
    path = tmp_path / "ledger.sqlite"
    ledger = Ledger(path)
    for ms in (100.0, 200.0, 300.0):
        ledger.record(entry(latency_ms=ms))
    con = sqlite3.connect(path)
    bad = [("latency_ms", "'slow'"), ("latency_ms", "9e999"), ("cost_usd", "9e999"), ("prompt_tokens", "'many'"),
           ("energy_j", "-1"), ("ts", "'yesterday'"), ("completion_tokens", "2.5")]
    for column, value in bad:
        con.execute("INSERT INTO entries SELECT NULL, ts, feature, tier, reason, score, latency_ms, prompt_tokens, "
                    "completion_tokens, cost_usd, energy_j, degraded, escalated, consent FROM entries WHERE id = 1")
        con.execute(f"UPDATE entries SET {column} = {value} WHERE id = last_insert_rowid()")
    con.commit()
    con.close()
    st = ledger.stats()
    assert (st.requests, st.unreadable) == (3, len(bad))
    assert st.by_tier["device"].p50_latency_ms == 200.0 and st.by_tier["device"].p95_latency_ms == pytest.approx(290.0)
    assert st.cost_usd == pytest.approx(0.0) and st.tokens == 450
    res = CliRunner().invoke(cli, ["stats", "--ledger", str(path), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert data["requests"] == 3 and data["unreadable"] == len(bad)
    res = CliRunner().invoke(cli, ["stats", "--ledger", str(path)])
    assert res.exit_code == 0 and "3 requests" in res.output and f"skipped {len(bad)} unreadable ledger rows" in res.output
    since = ledger.stats(since=time.time() + 3600)  # rows dated before the window are not counted as skipped
    assert (since.requests, since.unreadable) == (0, 1)  # only the one whose time cannot be read


def test_a_ledger_whose_folder_is_a_file_says_so(tmp_path):
    """mkdir(exist_ok=True) on a parent that is a file raises FileExistsError: the ledger said
    "cannot open the routing ledger (File exists)"."""
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    with pytest.raises(RoutingError, match=f"{blocker} is a file, not a folder") as info:
        Ledger(blocker / "ledger.sqlite").open()
    assert "File exists" not in str(info.value)
    assert blocker.read_text() == "a file, not a folder"


def _copy_row(con: sqlite3.Connection, column: str, value: str, ts: float | None = None) -> None:
    """Append a copy of row 1 (at ``ts`` if given) with ``column`` set to the SQL literal ``value``,
    as another tool might."""
    con.execute("INSERT INTO entries SELECT NULL, ts, feature, tier, reason, score, latency_ms, prompt_tokens, "
                "completion_tokens, cost_usd, energy_j, degraded, escalated, consent FROM entries WHERE id = 1")
    if ts is not None:
        con.execute("UPDATE entries SET ts = ? WHERE id = last_insert_rowid()", (ts,))
    con.execute(f"UPDATE entries SET {column} = {value} WHERE id = last_insert_rowid()")


def test_a_time_no_calendar_can_show_is_refused_and_recent_never_a_traceback(tmp_path):
    """ts=1e20 was OverflowError and ts=1e17 OSError (errno 75) out of time.localtime() in
    `tether stats --recent`, and LedgerEntry accepted both, so even Ledger.record could write them."""
    from tether.cli.stats import _row
    from tether.routing.ledger import MAX_TS

    for bad in (1e20, 1e17, MAX_TS + 1, -1.0):
        with pytest.raises(ValidationError):
            entry(ts=bad)
    assert entry(ts=MAX_TS).ts == MAX_TS and entry(ts=0).ts == 0
    path = tmp_path / "ledger.sqlite"
    ledger = Ledger(path)
    for i in range(3):
        ledger.record(entry(ts=1000.0 + i))
    con = sqlite3.connect(path)
    for ts in ("1e20", "1e17", "-1"):
        _copy_row(con, "ts", ts)
    con.commit()
    con.close()
    res = CliRunner().invoke(cli, ["stats", "--ledger", str(path), "--recent", "5"])
    assert res.exit_code == 0 and "Traceback" not in res.output, res.output
    assert "3 requests" in res.output and "skipped 3 unreadable ledger rows" in res.output
    assert "3 most recent:" in res.output and time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(1002.0)) in res.output
    # A time the platform cannot show (a 32-bit time_t past 2038) is a raw number, not a traceback.
    beyond = LedgerEntry.model_construct(**{**entry().model_dump(), "ts": 1e20})
    assert _row(beyond).startswith("  ts 100000000000000000000  summarize")


def test_recent_lists_the_newest_readable_rows_and_the_totals_count_those(tmp_path):
    """LIMIT was applied in SQL and unreadable rows dropped afterwards: with a newer unreadable row,
    `--recent 1` listed nothing though the summary said 3 requests. Rows with feature "Chat" or tier
    "edge" were counted in the totals but never listed."""
    path = tmp_path / "ledger.sqlite"
    ledger = Ledger(path)
    for i, feature in enumerate(("first", "second", "third")):
        ledger.record(entry(ts=1000.0 + i, feature=feature))
    con = sqlite3.connect(path)
    for column, value in (("latency_ms", "-5"), ("feature", "'Chat'"), ("tier", "'edge'")):
        _copy_row(con, column, value, ts=2000.0)  # newer than every good row
    con.commit()
    con.close()
    assert [e.feature for e in ledger.entries(limit=1)] == ["third"]
    assert [e.feature for e in ledger.entries(limit=2)] == ["third", "second"]
    st = ledger.stats()
    assert (st.requests, st.unreadable) == (3, 3) and set(st.by_tier) == {"device", "private_cloud", "third_party"}
    for n in (1, 2):
        res = CliRunner().invoke(cli, ["stats", "--ledger", str(path), "--recent", str(n)])
        assert res.exit_code == 0, res.output
        assert res.output.startswith("3 requests") and len(res.output.split(f"{n} most recent:\n")[1].splitlines()) == n
    data = json.loads(CliRunner().invoke(cli, ["stats", "--ledger", str(path), "--recent", "10", "--json"]).output)
    assert data["requests"] == len(data["recent"]) == 3 and data["unreadable"] == 3


@pytest.mark.parametrize("column, value", [
    ("feature", "'Chat'"), ("feature", "''"), ("feature", "'x' || char(0) || 'y'"), ("feature", "'café'"),
    ("feature", f"'{'x' * 49}'"), ("feature", "X'63686174'"), ("feature", "7"), ("reason", "'two words'"),
("tier", "'edge'"), ("tier", "'Device'"), ("consent", "'maybe'"), ("consent", "''"),
    ("score", "'high'"), ("score", "9e999"), ("score", "X'00'"), ("ts", "1e20"), ("ts", "-1"),
    ("latency_ms", "-0.5"), ("degraded", "2"), ("escalated", "'yes'"), ("prompt_tokens", "1e13"),
])
def test_the_totals_count_exactly_the_rows_the_list_can_show(tmp_path, column, value):
    """One rule for both: each kind of damaged row is left out of the totals and the list alike."""
    path = tmp_path / "ledger.sqlite"
    ledger = Ledger(path)
    ledger.record(entry(ts=1000.0, score=0.5, consent="given"))
    con = sqlite3.connect(path)
    _copy_row(con, column, value, ts=2000.0)  # newer, so a list that took it would show it first
    con.commit()
    con.close()
    st = ledger.stats()
    assert (st.requests, st.unreadable) == (1, 1)
    assert [e.ts for e in ledger.entries(limit=1)] == [1000.0]
    assert len(ledger.entries(limit=10)) == st.requests
