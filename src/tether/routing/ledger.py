"""The routing ledger: one metadata row per routed request, in a local SQLite file.

It exists so a user can check the on-device-first promise with numbers: how
much ran on the device, what it cost against sending everything to the private
cloud, and how much energy that took. It deliberately holds no content: the
entry model has no field that could carry a prompt, an answer or an entity
value, refuses unknown fields, and restricts its free strings (``feature``,
``reason``) to short identifiers, so text cannot be smuggled in by mistake.

The file is opened like the search index: WAL mode (``tether stats`` can read
while the router writes), a schema version in a ``meta`` table, and a typed
error naming the path when the file is not a usable ledger.
"""

from __future__ import annotations

import math
import os
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tether.errors import InputError, RoutingError
from tether.sqlite_files import describe, foreign_tables
from tether.settings import mkdir_problem, path_problem
from tether.routing.tiers import DEVICE, PRIVATE_CLOUD, THIRD_PARTY

TIERS = (DEVICE, PRIVATE_CLOUD, THIRD_PARTY)
SCHEMA_VERSION = 1

# A short identifier: room for "summarize" or "privacy.ssn", not for a sentence.
IDENTIFIER = re.compile(r"[a-z][a-z0-9_.\-]{0,47}")
# 9999-12-31T00:00Z: still the year 9999 in every time zone, so any entry's time can be shown as a date.
MAX_TS = 253_402_214_400.0


class TierPrice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Bounded so that cost and energy stay finite for any request a ledger can hold.
    usd_per_mtok: float = Field(ge=0, le=1e6, allow_inf_nan=False)
    joules_per_token: float = Field(ge=0, le=1e6, allow_inf_nan=False)


class Prices(BaseModel):
    """What a token costs per tier, in dollars (input and output blended) and joules.

    The defaults are rough estimates, good for comparing tiers, not for billing:
    the device is free in dollars and ~0.3 J/token is a phone-NPU-class figure
    for a sub-1B model; the private cloud is priced like a small self-hosted GPU
    model; the third party like a hosted frontier-lab mid-size model.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    device: TierPrice = TierPrice(usd_per_mtok=0.0, joules_per_token=0.3)
    private_cloud: TierPrice = TierPrice(usd_per_mtok=0.20, joules_per_token=2.0)
    third_party: TierPrice = TierPrice(usd_per_mtok=2.50, joules_per_token=4.0)

    def for_tier(self, tier: str) -> TierPrice:
        if tier not in TIERS:
            raise InputError(f"unknown tier {tier!r}; expected one of {', '.join(TIERS)}")
        return getattr(self, tier)

    def cost(self, tier: str, tokens: int) -> float:
        """Dollars for ``tokens`` (prompt + completion) on ``tier``."""
        return _check_tokens(tokens) * self.for_tier(tier).usd_per_mtok / 1e6

    def energy(self, tier: str, tokens: int) -> float:
        """Joules for ``tokens`` (prompt + completion) on ``tier``."""
        return _check_tokens(tokens) * self.for_tier(tier).joules_per_token


def _check_tokens(tokens: int) -> int:
    if tokens < 0:
        raise InputError(f"token count must be >= 0, got {tokens}")
    return tokens


class LedgerEntry(BaseModel):
    """One routed request, as metadata only. There is no field for content, on purpose."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # From 1970 to the year 9999: past that, time.localtime() fails and `tether stats --recent` could not show it.
    ts: float = Field(default_factory=time.time, ge=0, le=MAX_TS)
    feature: str
    tier: Literal["device", "private_cloud", "third_party"]
    reason: str
    score: float | None = None
    latency_ms: float = Field(ge=0)
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    cost_usd: float = Field(default=0.0, ge=0)
    energy_j: float = Field(default=0.0, ge=0)
    degraded: bool = False
    escalated: bool = False
    consent: Literal["given", "refused"] | None = None

    @field_validator("feature", "reason")
    @classmethod
    def _identifier(cls, v: str) -> str:
        if not IDENTIFIER.fullmatch(v):
            raise ValueError("must be a short lowercase identifier (a-z, 0-9, _ . -; at most 48 chars), "
                             "never request text")
        return v

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def priced(cls, prices: Prices | None = None, **fields: Any) -> LedgerEntry:
        """An entry whose ``cost_usd`` and ``energy_j`` come from ``prices`` (default ``Prices()``)."""
        prices = prices or Prices()
        tokens = int(fields.get("prompt_tokens", 0)) + int(fields.get("completion_tokens", 0))
        tier = str(fields.get("tier"))
        return cls(**fields, cost_usd=prices.cost(tier, tokens), energy_j=prices.energy(tier, tokens))


class TierStats(BaseModel):
    requests: int = 0
    share: float = 0.0
    tokens: int = 0
    cost_usd: float = 0.0
    energy_j: float = 0.0
    p50_latency_ms: float | None = None
    p95_latency_ms: float | None = None


class LedgerStats(BaseModel):
    """Totals over the ledger (or the part after ``since``).

    ``cost_usd`` and ``energy_j`` sum what each entry recorded. The all-cloud
    baseline prices every recorded token at the private-cloud rate of the
    ``Prices`` given, i.e. what the same traffic would have cost had nothing
    run on the device. ``saved_usd`` can be negative when third-party traffic
    costs more than the baseline; ``saved_share`` is None when the baseline is 0.
    """

    since: float | None = None
    requests: int = 0
    by_tier: dict[str, TierStats] = Field(default_factory=lambda: {t: TierStats() for t in TIERS})
    device_share: float = 0.0
    tokens: int = 0
    cost_usd: float = 0.0
    all_cloud_cost_usd: float = 0.0
    saved_usd: float = 0.0
    saved_share: float | None = None
    energy_j: float = 0.0
    all_cloud_energy_j: float = 0.0
    degraded: int = 0
    escalated: int = 0
    # rows left out, from another tool or damage: a value no entry could hold (text, infinity, a negative
    # number, a time past the year 9999, a tier or feature name this version does not know)
    unreadable: int = 0


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default), ``q`` in [0, 100]."""
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def default_path() -> Path:
    """``$TETHER_LEDGER``, else ``ledger.sqlite`` in the per-user data dir."""
    override = os.environ.get("TETHER_LEDGER")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("tether")) / "ledger.sqlite"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    feature TEXT NOT NULL,
    tier TEXT NOT NULL,
    reason TEXT NOT NULL,
    score REAL,
    latency_ms REAL NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    energy_j REAL NOT NULL,
    degraded INTEGER NOT NULL,
    escalated INTEGER NOT NULL,
    consent TEXT
);
CREATE INDEX IF NOT EXISTS entries_ts ON entries(ts);
"""

# A row ``stats`` can count and ``entries`` can list: exactly the rows ``LedgerEntry`` accepts
# (numbers finite and in range, the tier and consent it knows, identifiers), so the totals count
# the rows ``tether stats --recent`` could show. A row another tool or damage left with text or
# infinity in latency_ms would otherwise break the percentiles, or make every total infinite.
# Stricter than pydantic's lax parsing ("100" as a number): a row passing here always validates.
_MAX = "1.7976931348623157e308"


def _identifier_sql(c: str) -> str:
    """IDENTIFIER in SQL: GLOB is case-sensitive; length() stops at a NUL, so a NUL is checked for."""
    return (f"typeof({c}) = 'text' AND length({c}) BETWEEN 1 AND 48 AND {c} GLOB '[a-z]*' "
            f"AND {c} NOT GLOB '*[^a-z0-9_.-]*' AND instr({c}, char(0)) = 0")


_READABLE = " AND ".join([
    f"typeof(ts) IN ('integer', 'real') AND ts BETWEEN 0 AND {MAX_TS!r}",
    *(f"typeof({c}) IN ('integer', 'real') AND {c} BETWEEN 0 AND {_MAX}" for c in ("latency_ms", "cost_usd", "energy_j")),
    # at most a trillion tokens a request: no request has more, and sums stay inside SQLite's integers
    *(f"typeof({c}) = 'integer' AND {c} BETWEEN 0 AND 1000000000000" for c in ("prompt_tokens", "completion_tokens")),
    "degraded IN (0, 1) AND escalated IN (0, 1)",
    _identifier_sql("feature"),
    _identifier_sql("reason"),
    f"tier IN ({', '.join(repr(t) for t in TIERS)})",
    f"(score IS NULL OR (typeof(score) IN ('integer', 'real') AND score BETWEEN -{_MAX} AND {_MAX}))",
    "(consent IS NULL OR consent IN ('given', 'refused'))",
])

_BUSY_MS = 30_000  # how long a statement waits for another writer, unless a caller asks for less

_COLUMNS = ("ts", "feature", "tier", "reason", "score", "latency_ms", "prompt_tokens", "completion_tokens",
            "cost_usd", "energy_j", "degraded", "escalated", "consent")


class Ledger:
    """The ledger file. One connection behind a lock, so the router can record from any thread.

    Nothing touches the disk until first use; reading a ledger that does not
    exist yet gives empty results without creating the file.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, readonly: bool = False):
        self.path = Path(path).expanduser() if path is not None else default_path()
        self.readonly = readonly  # for readers such as ``tether stats``: works on a file they cannot write
        self._lock = threading.Lock()
        self._con: sqlite3.Connection | None = None

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None

    def open(self) -> Ledger:
        """Open (creating if needed) now: ``RoutingError`` if the file is unusable, so a caller can
        fail before it spends a generation whose ledger row could not be written."""
        with self._lock:
            self._connect()
        return self

    def _check_path(self) -> None:
        """``RoutingError`` for a path no file system call can take (a NUL, a lone surrogate),
        before one fails with a ValueError deep in pathlib or sqlite3."""
        problem = path_problem(self.path)
        if problem:
            raise RoutingError(f"{ascii(str(self.path))}: cannot open the routing ledger (the path {problem})")

    def _connect(self, busy_ms: int = _BUSY_MS) -> sqlite3.Connection:
        """The connection, opened now if need be. ``busy_ms``: how long opening (its schema
        transaction) waits for another writer, so a ``record`` that asks for less waits no longer
        on its first row than on later ones."""
        if self._con is not None:
            return self._con
        self._check_path()
        try:
            foreign = foreign_tables(self.path, {"entries"})
        except (OSError, ValueError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise RoutingError(f"{ascii(str(self.path))}: cannot open the routing ledger ({why})") from None
        if foreign:
            raise RoutingError(f"{self.path}: not a routing ledger: {describe(foreign)}")
        try:
            if self.readonly:
                con = self._open_readonly()
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            try:
                con.execute(f"PRAGMA busy_timeout={busy_ms}")
                # Before WAL: a file this Tether will not use is left in the journal mode it had
                if con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone():
                    self._check_version(con)
                self._check_columns(con)
                if not self.readonly:
                    con.execute("PRAGMA journal_mode=WAL")
                    con.execute("PRAGMA synchronous=NORMAL")
                    self._migrate(con)
                con.execute(f"PRAGMA busy_timeout={_BUSY_MS}")
            except BaseException:
                con.close()
                raise
        except sqlite3.DatabaseError as exc:
            raise RoutingError(f"{self.path}: not a usable routing ledger ({exc})") from None
        except (FileExistsError, NotADirectoryError) as exc:  # mkdir(exist_ok=True) on a file says "File exists"
            raise RoutingError(f"{self.path}: cannot open the routing ledger ({mkdir_problem(exc)})") from None
        except OSError as exc:
            raise RoutingError(f"{self.path}: cannot open the routing ledger ({exc.strerror or exc})") from None
        except ValueError as exc:  # what _check_path did not foresee: one line, not a traceback
            raise RoutingError(f"{ascii(str(self.path))}: cannot open the routing ledger ({exc})") from None
        self._con = con
        return con

    def _open_readonly(self) -> sqlite3.Connection:
        """Read without writing; in a folder we cannot write (no room for WAL's shared-memory file),
        read the file as an immutable snapshot instead."""
        uri = self.path.absolute().as_uri()

        def open_(query: str) -> sqlite3.Connection:
            con = sqlite3.connect(f"{uri}?{query}", uri=True, timeout=30.0, isolation_level=None,
                                  check_same_thread=False)
            try:
                con.execute("SELECT 1 FROM sqlite_master").fetchone()
            except BaseException:
                con.close()
                raise
            return con

        try:
            return open_("mode=ro")
        except sqlite3.OperationalError:
            return open_("immutable=1")

    def _migrate(self, con: sqlite3.Connection) -> None:
        con.execute("BEGIN IMMEDIATE")
        try:  # statement by statement: executescript would commit mid-transaction
            for stmt in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                con.execute(stmt)
            if not self._check_version(con):
                con.execute("INSERT INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def _check_columns(self, con: sqlite3.Connection) -> None:
        """``RoutingError`` for an ``entries`` table without a ledger's columns: another program's
        (a diary's, a log's), which would otherwise be given our tables and lose every row."""
        have = {row[1] for row in con.execute("PRAGMA table_info(entries)")}
        missing = [c for c in _COLUMNS if c not in have]
        if have and missing:
            raise RoutingError(f"{self.path}: not a routing ledger: its entries table has no column "
                               f"{', '.join(missing[:3])}{'…' if len(missing) > 3 else ''}")

    def _check_version(self, con: sqlite3.Connection) -> bool:
        """False for a file with no version yet; ``RoutingError`` for one this Tether cannot read."""
        row = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            return False
        if not str(row[0]).isdigit():
            raise RoutingError(f"{self.path}: not a Tether ledger (schema version {row[0]!r})")
        if int(row[0]) > SCHEMA_VERSION:
            raise RoutingError(f"{self.path}: ledger schema v{row[0]} is newer than this Tether (v{SCHEMA_VERSION})")
        return True

    def _run(self, fn, *, create: bool, busy_ms: int = _BUSY_MS):  # type: ignore[no-untyped-def]
        """Run ``fn(con)`` under the lock; None when the file is absent and ``create`` is false."""
        with self._lock:
            if self._con is None and not create:
                self._check_path()  # exists() answers False for a path with a NUL: not "no ledger yet"
                try:
                    if not self.path.exists():
                        return None
                except OSError as exc:  # a name too long, a parent that is a file
                    raise RoutingError(f"{self.path}: cannot open the routing ledger ({exc.strerror or exc})") from None
            con = self._connect(busy_ms)
            try:
                return fn(con)
            except sqlite3.OperationalError as exc:
                if self.readonly and str(exc).startswith("no such table"):
                    return None  # an empty file nobody has written to yet
                raise RoutingError(f"{self.path}: routing ledger error ({exc})") from None
            except sqlite3.Error as exc:
                raise RoutingError(f"{self.path}: routing ledger error ({exc})") from None

    def record(self, entry: LedgerEntry, *, busy_timeout: float | None = None) -> int:
        """Append ``entry``; returns its row id. ``busy_timeout``: seconds to wait for another writer
        (default 30), e.g. less for a row whose request already has its answer."""
        if self.readonly:
            raise RoutingError(f"{self.path}: this ledger was opened read-only")
        if not isinstance(entry, LedgerEntry):
            raise InputError(f"expected a LedgerEntry, got {type(entry).__name__}")
        values = tuple(getattr(entry, c) for c in _COLUMNS)
        sql = f"INSERT INTO entries({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
        busy_ms = _BUSY_MS if busy_timeout is None else max(0, int(busy_timeout * 1000))

        def insert(con: sqlite3.Connection) -> int:
            if busy_timeout is None:
                return con.execute(sql, values).lastrowid
            con.execute(f"PRAGMA busy_timeout={busy_ms}")
            try:
                return con.execute(sql, values).lastrowid
            finally:
                con.execute(f"PRAGMA busy_timeout={_BUSY_MS}")

        return self._run(insert, create=True, busy_ms=busy_ms)  # the first row opens the file: no longer a wait

    def entries(self, limit: int = 100, since: float | None = None) -> list[LedgerEntry]:
        """The ``limit`` newest entries (at or after ``since`` if given), newest first."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InputError(f"limit must be a whole number >= 1, got {limit!r}")
        # The readable rule in SQL, not a LIMIT then a filter: dropping unreadable rows after the
        # LIMIT listed fewer than ``limit`` (or none) when the newest rows were unreadable.
        sql = f"SELECT {', '.join(_COLUMNS)} FROM entries WHERE ({_READABLE}) AND ts >= ? ORDER BY ts DESC, id DESC"
        low = 0.0 if since is None else since

        def query(con: sqlite3.Connection) -> list[LedgerEntry]:
            found: list[LedgerEntry] = []
            for r in con.execute(sql, (low,)):  # streamed newest first; stop once there are enough
                try:
                    found.append(LedgerEntry(**dict(zip(_COLUMNS, r))))
                except ValueError:  # _READABLE should have left it out; never let one row hide the rest
                    continue
                if len(found) == limit:
                    break
            return found

        return self._run(query, create=False) or []

    def stats(self, prices: Prices | None = None, since: float | None = None) -> LedgerStats:
        """Totals, shares, savings against all-cloud and latency percentiles per tier."""
        prices = prices or Prices()
        where, args = (f"WHERE ({_READABLE}) AND ts >= ?", (since,)) if since is not None else (f"WHERE {_READABLE}", ())
        # unreadable rows in the window: all of them, but for those whose time says they are older
        skipped = f"WHERE NOT ({_READABLE})" + (
            " AND NOT (typeof(ts) IN ('integer', 'real') AND ts < ?)" if since is not None else "")

        def query(con: sqlite3.Connection):  # type: ignore[no-untyped-def]
            unreadable = con.execute(f"SELECT COUNT(*) FROM entries {skipped}", args).fetchone()[0]
            totals = con.execute(
                "SELECT tier, COUNT(*), COALESCE(SUM(prompt_tokens + completion_tokens), 0), "
                f"COALESCE(SUM(cost_usd), 0), COALESCE(SUM(energy_j), 0), SUM(degraded), SUM(escalated) "
                f"FROM entries {where} GROUP BY tier", args).fetchall()
            latencies = con.execute(f"SELECT tier, latency_ms FROM entries {where} ORDER BY tier, latency_ms",
                                    args).fetchall()
            return totals, latencies, unreadable

        totals, latencies, unreadable = self._run(query, create=False) or ([], [], 0)
        out = LedgerStats(since=since, unreadable=unreadable)
        for tier, n, tokens, cost, energy, degraded, escalated in totals:
            ts = out.by_tier[tier]  # _READABLE admits only the tiers this version knows
            ts.requests, ts.tokens, ts.cost_usd, ts.energy_j = n, tokens, cost, energy
            out.requests += n
            out.tokens += tokens
            out.cost_usd += cost
            out.energy_j += energy
            out.degraded += degraded or 0
            out.escalated += escalated or 0
        by_tier_lat: dict[str, list[float]] = {}
        for tier, ms in latencies:
            by_tier_lat.setdefault(tier, []).append(ms)
        for tier, ts in out.by_tier.items():
            ts.share = ts.requests / out.requests if out.requests else 0.0
            ts.p50_latency_ms = percentile(by_tier_lat.get(tier, []), 50)
            ts.p95_latency_ms = percentile(by_tier_lat.get(tier, []), 95)
        out.device_share = out.by_tier[DEVICE].share
        out.all_cloud_cost_usd = prices.cost(PRIVATE_CLOUD, out.tokens)
        out.all_cloud_energy_j = prices.energy(PRIVATE_CLOUD, out.tokens)
        out.saved_usd = out.all_cloud_cost_usd - out.cost_usd
        out.saved_share = out.saved_usd / out.all_cloud_cost_usd if out.all_cloud_cost_usd else None
        return out
