"""The private cloud's transparency log, and what a device checks against it.

An append-only Merkle log (RFC 6962/9162 style, via pymerkle's SQLite tree)
of two kinds of entry: *releases* (measurements a node may run) and *nodes*
(signed attestations). The log signs its tree head with an Ed25519 key that
survives restarts, so a device can pin the key, prove that an entry is in the
tree it was shown, and prove that today's tree extends yesterday's. A log that
rewrites or drops history fails those proofs; that is the whole point.

The verification functions are pure: they need only the JSON the server sent
and the pinned log key.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import math
import os
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_private_key
from pymerkle import ConsistencyProof, InclusionProof, InvalidChallenge, InvalidProof, SqliteTree
from pymerkle.hasher import MerkleHasher

from tether.cloud.attestation import (
    CLOCK_SKEW,
    MAX_ATTESTATION_AGE,
    Measurement,
    b64,
    canonical_json,
    check_attestation_age,
    unb64,
    verify_attestation,
)
from tether.cloud.directory import EMPTY_ROOT, HASH_ALGORITHM, DirectoryIndex, ProvenDirectory
from tether.errors import AttestationError, InputError, LogUnreachableError, TransparencyLogError
from tether.sqlite_files import describe, foreign_tables
from tether.settings import header_token, http_url, mkdir_problem

MAX_STH_AGE = 600.0  # seconds; the log signs a fresh head per request
_HASHER = MerkleHasher(HASH_ALGORITHM)


def leaf_hash(entry: dict[str, Any]) -> bytes:
    """RFC 6962 leaf hash: sha256(0x00 || canonical JSON of the entry)."""
    return _HASHER.hash_buff(canonical_json(entry))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads_strict(data: bytes | str) -> Any:
    """``json.loads`` without NaN/Infinity, which canonical JSON cannot carry round trip."""
    return json.loads(data, parse_constant=_reject_constant)


def encode_entry(entry: Any) -> bytes:
    """Canonical bytes of an entry, checked to decode back to the same bytes.

    A leaf is only verifiable if the client, given the decoded JSON, can
    rebuild the exact bytes that were hashed.
    """
    if not isinstance(entry, dict):
        raise InputError("a log entry must be a JSON object")
    try:
        data = canonical_json(entry)
        decoded = loads_strict(data)
        if decoded != entry or canonical_json(decoded) != data:
            raise ValueError("entry does not survive a JSON round trip")
    except (TypeError, ValueError, RecursionError) as exc:
        raise InputError(f"entry cannot be logged: {exc}") from None
    return data


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# ----------------------------------------------------------------- the log

class TransparencyLog:
    """Server side: the Merkle tree, its signing key, and directories of what it holds.

    Thread-safe: one lock serializes appends with their idempotency checks, so
    two concurrent releases of one measurement log it once.
    """

    def __init__(self, db_path: str | Path, key_path: str | Path, *, max_node_age: float = MAX_ATTESTATION_AGE,
                 clock: Callable[[], float] = time.time):
        self.max_node_age = max_node_age
        self.clock = clock
        self.db_path = Path(db_path)
        self.key_path = Path(key_path)
        try:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TransparencyLogError(f"cannot open transparency log {self.db_path}: {mkdir_problem(exc)}") from None
        self._new_key = not self.key_path.exists()
        self._key = _load_or_create_key(self.key_path)
        self.public_key = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self._lock = threading.RLock()
        foreign = foreign_tables(self.db_path, {"leaf", "tether_log_meta"})
        if foreign:
            raise TransparencyLogError(f"cannot open transparency log {self.db_path}: {describe(foreign)}")
        self._writer = _exclusive(self.db_path)
        try:
            self._tree = SqliteTree(str(self.db_path), algorithm=HASH_ALGORITHM)
        except Exception as exc:  # sqlite3.DatabaseError, ValueError on a broken table
            self._writer.close()
            raise TransparencyLogError(f"cannot open transparency log {self.db_path}: {exc}") from exc
        self._check_key()
        self._directory = DirectoryIndex()  # releases and each node's latest attestation
        self._seen: dict[str, int] = {}  # sha256 of an attestation -> its index
        try:
            self._check_not_rolled_back()
            for index, entry in self.entries(1, self.size):
                self._index(index, entry)
        except Exception as exc:
            self.close()
            if isinstance(exc, TransparencyLogError):
                raise
            raise TransparencyLogError(f"cannot open transparency log {self.db_path}: an entry is unreadable "
                                       f"({type(exc).__name__}: {exc})") from None

    def _check_not_rolled_back(self) -> None:
        """SQLite remembers the highest leaf id ever given: a log whose newest rows were deleted
        (a rollback devices that saw them would catch) is refused rather than extended."""
        import sqlite3

        with contextlib.closing(sqlite3.connect(self.db_path)) as con:
            row = con.execute("SELECT seq FROM sqlite_sequence WHERE name = 'leaf'").fetchone()
        highest = int(row[0]) if row else 0
        if highest > self.size:
            raise TransparencyLogError(
                f"transparency log {self.db_path} was rolled back: it once held {highest} entries and now holds "
                f"{self.size}; devices that saw the removed entries would refuse it")

    def _check_key(self) -> None:
        """The log's key is part of its identity: devices pin it. The database records the key
        that signs it, and a different key file (a typo in ``--key``) is refused, not adopted."""
        import sqlite3

        try:
            with contextlib.closing(sqlite3.connect(self.db_path)) as con, con:
                con.execute("CREATE TABLE IF NOT EXISTS tether_log_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                row = con.execute("SELECT value FROM tether_log_meta WHERE key = 'public_key'").fetchone()
                if row is None:
                    con.execute("INSERT INTO tether_log_meta VALUES ('public_key', ?)", (self.public_key_b64,))
        except sqlite3.DatabaseError as exc:
            self.close()
            raise TransparencyLogError(f"cannot open transparency log {self.db_path}: {exc}") from exc
        if row is not None and row[0] != self.public_key_b64:
            self.close()
            if self._new_key:
                self.key_path.unlink(missing_ok=True)  # made just now for a log it does not sign
            raise TransparencyLogError(
                f"transparency log {self.db_path} is signed by key {row[0][:16]}…, but {self.key_path} holds key "
                f"{self.public_key_b64[:16]}…; devices that pinned the log would refuse it. Use the log's own key file")

    @property
    def public_key_b64(self) -> str:
        return b64(self.public_key)

    @property
    def size(self) -> int:
        return self._tree.get_size()

    def close(self) -> None:
        self._tree.close()
        self._writer.close()

    # -- appending

    def append(self, entry: dict[str, Any]) -> int:
        data = encode_entry(entry)
        with self._lock:
            expected = self.size + 1
            index = self._tree.append_entry(data)
            if index != expected:  # the database changed under us; never serve a tree with a gap
                raise TransparencyLogError(f"transparency log {self.db_path}: entry went to index {index}, "
                                           f"expected {expected}")
            self._index(index, loads_strict(data))
            return index

    def release(self, components: dict[str, Any]) -> int:
        """Log a measurement as released; the same measurement again returns its first index."""
        measurement = _measurement(components)
        with self._lock:
            released = self._directory.release_index(measurement.digest)
            if released is not None:
                return released
            return self.append({"type": "release", "measurement": measurement.digest,
                                "components": measurement.components(), "released_at": round(self.clock(), 3)})

    def announce(self, attestation: dict[str, Any]) -> int:
        """Log a node's attestation after checking its signature; an identical one returns its index."""
        try:
            canonical_json(attestation)
        except (TypeError, ValueError, RecursionError) as exc:
            node = attestation.get("node_id", "?") if isinstance(attestation, dict) else "?"
            raise AttestationError(str(node), f"malformed attestation: {exc}") from None
        verify_attestation(attestation)
        check_attestation_age(attestation, now=self.clock(), max_age=self.max_node_age)
        with self._lock:
            seen = self._seen.get(_digest(attestation))
            if seen is not None:
                return seen
            node = str(attestation["node_id"])
            latest = self._directory.latest_issued(node)
            if latest is not None and attestation["issued_at"] <= latest:
                # A replayed older attestation must not displace the node's current one.
                raise AttestationError(node, "older than this node's latest attestation in the log")
            return self.append({"type": "node", "attestation": attestation})

    def _index(self, index: int, entry: dict[str, Any]) -> None:
        self._directory.add(index, entry)
        if entry.get("type") == "node" and isinstance(entry.get("attestation"), dict):
            self._seen.setdefault(_digest(entry["attestation"]), index)

    # -- reading

    def entry(self, index: int) -> dict[str, Any]:
        with self._lock:
            if not (_is_int(index) and 1 <= index <= self.size):
                raise InputError(f"no entry {index!r}: the log has {self.size} entries")
            return loads_strict(self._tree.get_entry(index))

    def entries(self, start: int, end: int) -> list[tuple[int, dict[str, Any]]]:
        """Entries ``start..end`` inclusive, 1-based; ``end`` past the tail is clipped."""
        if not (_is_int(start) and _is_int(end)) or start < 1 or end < 0:
            raise InputError(f"bad entry range {start!r}..{end!r}")
        with self._lock:
            end = min(end, self.size)
            return [(i, loads_strict(self._tree.get_entry(i))) for i in range(start, end + 1)]

    def releases(self) -> dict[str, int]:
        with self._lock:
            return self._directory.releases()

    def nodes(self) -> list[dict[str, Any]]:
        """Latest attestation per live node running a released measurement, oldest first.

        A node that stopped re-attesting drops out of this directory once devices
        would refuse it anyway, and so does one whose measurement was never released:
        anyone may announce, and every relay and device reads this whole list, so
        announcements nobody would trust do not get to make it long. Their entries
        stay in the Merkle tree for audit.
        """
        with self._lock:
            return self._directory.nodes(now=self.clock(), max_age=self.max_node_age)

    # -- tree heads and proofs

    def root(self, size: int | None = None) -> str:
        with self._lock:
            size = self.size if size is None else size
            if size == 0:
                return EMPTY_ROOT
            return self._tree.get_root(size).hex()

    def tree_head(self) -> dict[str, Any]:
        with self._lock:
            size = self.size
            body = {"size": size, "root": self.root(size), "timestamp": round(self.clock(), 3)}
        return {**body, "signature": b64(self._key.sign(canonical_json(body)))}

    def inclusion_proof(self, index: int, size: int) -> dict[str, Any]:
        if not (_is_int(index) and _is_int(size)):
            raise InputError("index and size must be integers")
        try:
            return self._tree.prove_inclusion(index, size).serialize()
        except InvalidChallenge as exc:
            raise InputError(f"no inclusion proof for index {index} in size {size}: {exc}") from None

    def consistency_proof(self, prior: int, size: int) -> dict[str, Any]:
        if not (_is_int(prior) and _is_int(size)):
            raise InputError("prior and size must be integers")
        try:
            return self._tree.prove_consistency(prior, size).serialize()
        except InvalidChallenge as exc:
            raise InputError(f"no consistency proof from size {prior} to {size}: {exc}") from None


def _digest(value: Any) -> str:
    return hashlib.sha256(canonical_json(value)).hexdigest()


def _measurement(components: Any) -> Measurement:
    if not isinstance(components, dict):
        raise InputError("measurement components must be a JSON object")
    code, model, config = components.get("code"), components.get("model_sha256"), components.get("config")
    if not (isinstance(code, str) and code and isinstance(model, str) and model and isinstance(config, dict)):
        raise InputError('measurement components need "code" and "model_sha256" strings and a "config" object')
    for name, value in (("code", code), ("model_sha256", model)):
        if not _HEX64.fullmatch(value):
            raise InputError(f'measurement component "{name}" must be a sha256: 64 lower-case hex digits')
    measurement = Measurement.from_components(components)
    encode_entry(measurement.components())  # config must be loggable
    return measurement


def _exclusive(db_path: Path):  # type: ignore[no-untyped-def]
    """Hold ``<db>.lock`` for as long as the log is open: two writers would each keep their own
    index of the same tree, and their directories would drift apart."""
    import fcntl

    lock_path = db_path.with_name(db_path.name + ".lock")
    try:
        handle = lock_path.open("a")
    except OSError as exc:
        raise TransparencyLogError(f"cannot open transparency log {db_path}: cannot create {lock_path} "
                                   f"({exc.strerror or exc})") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise TransparencyLogError(f"transparency log {db_path} is already open in another process "
                                   "(another `tether log serve`?)") from None
    return handle


_HEX64 = re.compile(r"[0-9a-f]{64}")


def read_capped(response: httpx.Response, limit: int, deadline: float = math.inf) -> tuple[bytes, str | None]:
    """A streamed answer's body, read until ``limit`` bytes or the monotonic ``deadline``:
    ``(what came before the cut, "size" | "time")``, or ``(body, None)`` when it came whole.
    httpx's timeout is per read, so an answer trickled a byte at a time would hold the reader."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            return b"".join(chunks), "size"
        if time.monotonic() > deadline:
            return b"".join(chunks), "time"
        chunks.append(chunk)
    return b"".join(chunks), None


def _load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """Read the log key (raw 32 bytes or PEM), or make one readable only by its owner."""
    if path.exists():
        try:
            data = path.read_bytes()
            if data.lstrip().startswith(b"-----BEGIN"):
                key = load_pem_private_key(data, password=None)
                if not isinstance(key, Ed25519PrivateKey):
                    raise ValueError("not an Ed25519 key")
                return key
            if len(data) == 32:
                return Ed25519PrivateKey.from_private_bytes(data)
            raise ValueError(f"{len(data)} bytes, expected a raw 32-byte key or PEM")
        except (OSError, ValueError, TypeError) as exc:
            raise TransparencyLogError(f"cannot read log key {path}: {exc}") from None
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes_raw()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file where the folder should be, a read-only disk
        raise TransparencyLogError(f"cannot create log key {path}: {mkdir_problem(exc)}") from None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race: use its key
        return _load_or_create_key(path)
    except OSError as exc:
        raise TransparencyLogError(f"cannot create log key {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
    except OSError as exc:  # a full disk: leave no empty key behind to be read next time
        path.unlink(missing_ok=True)
        raise TransparencyLogError(f"cannot create log key {path}: {exc.strerror or exc}") from None
    return key


# ----------------------------------------------------------------- verification

def _check_sth_shape(sth: Any) -> dict[str, Any]:
    if not isinstance(sth, dict):
        raise TransparencyLogError("malformed tree head: not a JSON object")
    size, root, ts = sth.get("size"), sth.get("root"), sth.get("timestamp")
    if not (_is_int(size) and size >= 0):
        raise TransparencyLogError(f"malformed tree head: size {size!r}")
    if not (isinstance(root, str) and len(root) == 64 and all(c in "0123456789abcdef" for c in root)):
        raise TransparencyLogError(f"malformed tree head: root {root!r}")
    if not (isinstance(ts, (int, float)) and not isinstance(ts, bool)):
        raise TransparencyLogError(f"malformed tree head: timestamp {ts!r}")
    if size == 0 and root != EMPTY_ROOT:
        raise TransparencyLogError("malformed tree head: an empty tree with a non-empty root")
    return sth


def _public_key(log_public_key_b64: str) -> Ed25519PublicKey:
    try:
        raw = unb64(log_public_key_b64)
        if len(raw) != 32:
            raise ValueError("not 32 bytes")
        return Ed25519PublicKey.from_public_bytes(raw)
    except (TypeError, ValueError, AttributeError) as exc:
        raise TransparencyLogError(f"malformed log public key: {exc}") from None


class _WrongSignature(TransparencyLogError):
    """A well-formed tree head signed by another key: a replaced log, which the client names as such."""


def verify_tree_head(sth: dict[str, Any], log_public_key_b64: str) -> dict[str, Any]:
    """Check a signed tree head's shape and signature; return it unchanged."""
    _check_sth_shape(sth)
    key = _public_key(log_public_key_b64)
    try:
        signature = unb64(sth.get("signature"))
    except (TypeError, ValueError, AttributeError):
        raise TransparencyLogError("malformed tree head: signature is not base64") from None
    body = {"size": sth["size"], "root": sth["root"], "timestamp": sth["timestamp"]}
    try:
        key.verify(signature, canonical_json(body))
    except InvalidSignature:
        raise _WrongSignature(f"tree head signature is wrong (size {sth['size']})") from None
    return sth


def verify_inclusion(entry: dict[str, Any], index: int, proof: dict[str, Any], sth: dict[str, Any]) -> None:
    """Prove that ``entry`` is leaf ``index`` of the tree ``sth`` describes (signature not checked here)."""
    _check_sth_shape(sth)
    if not (_is_int(index) and 1 <= index <= sth["size"]):
        raise TransparencyLogError(f"entry {index!r} is outside a tree of size {sth['size']}")
    try:
        leaf = leaf_hash(entry)
    except (TypeError, ValueError, RecursionError) as exc:
        raise TransparencyLogError(f"malformed log entry {index}: {exc}") from None
    try:
        parsed = InclusionProof.deserialize(proof)
        parsed.verify(leaf, bytes.fromhex(sth["root"]), index=index, size=sth["size"],
                      algorithm=HASH_ALGORITHM, security=True)
    except InvalidProof as exc:
        raise TransparencyLogError(f"inclusion proof for entry {index} in tree size {sth['size']} fails: {exc}") from None
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise TransparencyLogError(f"malformed inclusion proof for entry {index}: {exc}") from None


def verify_consistency(old_sth: dict[str, Any], new_sth: dict[str, Any], proof: dict[str, Any] | None) -> None:
    """Prove that ``new_sth``'s tree extends ``old_sth``'s: history kept, only appended to."""
    _check_sth_shape(old_sth)
    _check_sth_shape(new_sth)
    old, new = old_sth["size"], new_sth["size"]
    if new < old:
        raise TransparencyLogError(f"tree head went backwards: size {new} < {old}")
    if new == old:
        if not hmac.compare_digest(new_sth["root"], old_sth["root"]):
            raise TransparencyLogError(f"tree head has the same size {new} but a different root: history was rewritten")
        return
    if old == 0:
        return  # every tree extends the empty one
    if proof is None:
        raise TransparencyLogError(f"no consistency proof from size {old} to {new}")
    try:
        parsed = ConsistencyProof.deserialize(proof)
        parsed.verify(bytes.fromhex(old_sth["root"]), bytes.fromhex(new_sth["root"]), prior_size=old,
                      later_size=new, algorithm=HASH_ALGORITHM, security=True)
    except InvalidProof as exc:
        raise TransparencyLogError(f"consistency proof from size {old} to {new} fails: {exc}") from None
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise TransparencyLogError(f"malformed consistency proof from size {old} to {new}: {exc}") from None


def check_freshness(sth: dict[str, Any], previous: dict[str, Any] | None, *, now: float, max_age: float,
                    skew: float = CLOCK_SKEW) -> None:
    """Refuse a tree head that is too old, from the future, or older than one already seen.

    The log signs a fresh head on every request, so an old one means a frozen or
    replayed view: a log hiding entries (a new release, a revoked node) from this device.
    """
    ts = float(sth["timestamp"])
    if ts > now + skew:
        raise TransparencyLogError(f"tree head is dated {ts - now:.0f} s in the future: check the log's or this device's clock")
    if now - ts > max_age:
        raise TransparencyLogError(f"tree head is {now - ts:.0f} s old (limit {max_age:.0f} s): "
                                   "the log may be showing a frozen view")
    if previous is not None and ts < float(previous["timestamp"]):
        raise TransparencyLogError(f"tree head timestamp went backwards by {float(previous['timestamp']) - ts:.0f} s")


# ----------------------------------------------------------------- client

MAX_LOG_ANSWER = 8 * 2**20  # what the relay's mirror passes on


class LogDeadlineError(Exception):
    """The caller's ``deadline_at`` passed while the log was being read. Deliberately no
    ``TransparencyLogError``: running out of time is no evidence against the log or any node, and
    no outage either; the caller (a request with a deadline) turns it into its own error."""


class LogClient:
    """A device's view of one log: pins its key and never accepts a tree head that rewinds it.

    With ``state_path`` the pinned key and the last verified tree head outlive
    the process; without it, the first key seen is trusted for this object only.
    """

    def __init__(self, url: str, public_key_b64: str | None = None, *, state_path: Path | None = None,
                 http: httpx.Client | None = None, timeout: float = 5.0, max_sth_age: float = MAX_STH_AGE,
                 clock: Callable[[], float] = time.time, via: str | None = None):
        self.url = http_url(url, "transparency log URL")
        self.via = via  # "the relay": the log is read through it, so name it in errors
        self.max_sth_age = max_sth_age
        self.clock = clock
        self.state_path = Path(state_path) if state_path else None
        self._own_http = http is None
        self._http = http or httpx.Client(timeout=timeout)
        self._timeout = timeout
        self._key: str | None = None
        self.last_sth: dict[str, Any] | None = None
        self._directory: ProvenDirectory | None = None  # the entries proven for the last head read
        if public_key_b64 is not None:
            _public_key(public_key_b64)
            self._key = public_key_b64
        state = self._load_state()
        if state:
            stored = state.get("public_key")
            try:
                if stored is not None:
                    _public_key(stored if isinstance(stored, str) else repr(stored))
                sth = _check_sth_shape(state["sth"]) if state.get("sth") is not None else None
            except TransparencyLogError as exc:
                raise TransparencyLogError(f"cloud state {self.state_path} is damaged ({exc}); delete it to pin "
                                           f"the log afresh") from None
            if self._key is not None and stored is not None and stored != self._key:
                raise TransparencyLogError(f"the log key given for {self.url} differs from the one pinned in "
                                           f"{self.state_path}; {self._repin_hint()}")
            self._key = self._key or stored
            self.last_sth = sth

    def __enter__(self) -> "LogClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._own_http:
            self._http.close()

    # -- state

    def _load_state(self) -> dict[str, Any] | None:
        if not self.state_path or not self.state_path.exists():
            return None
        try:
            state = loads_strict(self.state_path.read_bytes())
            if not isinstance(state, dict):
                raise ValueError("not a JSON object")
            return state
        except (OSError, ValueError) as exc:
            raise TransparencyLogError(f"cannot read log state {self.state_path}: {exc}") from None

    def _save_state(self) -> None:
        """Write the pinned key and tree head through a temp file of this writer's own: the CLI and
        the gateway share the state file, and a shared temp name lets one rename the other's away."""
        if not self.state_path:
            return
        data = json.dumps({"url": self.url, "public_key": self._key, "sth": self.last_sth}, indent=2)
        tmp: str | None = None
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.state_path.parent, prefix=self.state_path.name + ".", suffix=".tmp")
            with os.fdopen(fd, "w") as fh:
                fh.write(data)
            os.replace(tmp, self.state_path)
        except OSError as exc:
            if tmp:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            raise TransparencyLogError(f"cannot save cloud state {self.state_path}: {mkdir_problem(exc)}") from None

    # -- transport

    def _request(self, method: str, path: str, *, deadline_at: float = math.inf, **kwargs: Any) -> Any:
        """One call with a size cap and a deadline for the whole answer: httpx's timeout is per
        read, so a log or relay that trickles a byte at a time would otherwise hold the device.
        ``deadline_at`` (monotonic) is the caller's own: past it, ``LogDeadlineError``."""
        url = self.url + path
        where = f"{self.via} {self.url} (the log is read through it)" if self.via else f"transparency log {self.url}"
        now = time.monotonic()
        if now >= deadline_at:
            raise LogDeadlineError(f"no time left to read {where}")
        deadline = min(now + 2 * self._timeout, deadline_at)
        timeout = min(self._timeout, deadline_at - now)
        try:
            with self._http.stream(method, url, timeout=timeout, **kwargs) as response:
                content, cut = read_capped(response, MAX_LOG_ANSWER, deadline)
                if cut == "size":
                    raise TransparencyLogError(f"{where} sent an answer over {MAX_LOG_ANSWER // 2**20} MiB")
                if cut == "time":
                    raise self._timed_out(where, deadline_at)
        except httpx.InvalidURL as exc:
            raise TransparencyLogError(f"transparency log URL {url} is invalid: {exc}") from None
        except httpx.HTTPError as exc:
            # A read that timed out on the caller's deadline (shorter than the log's own timeout) is not an outage.
            if time.monotonic() >= deadline_at or (isinstance(exc, httpx.TimeoutException) and timeout < self._timeout):
                raise LogDeadlineError(f"{where} was still answering") from None
            raise LogUnreachableError(f"{where} unreachable: {str(exc) or type(exc).__name__}") from None
        try:
            body = loads_strict(content)
        except (ValueError, RecursionError):
            body = None
            if response.status_code < 500:
                raise TransparencyLogError(f"transparency log {url} sent invalid JSON (HTTP {response.status_code})") from None
        if response.status_code >= 400:
            reason = body.get("error") if isinstance(body, dict) else None
            error = LogUnreachableError if response.status_code >= 500 else TransparencyLogError
            raise error(f"transparency log {url} answered HTTP {response.status_code}: {reason or 'no reason given'}")
        if not isinstance(body, dict):
            raise TransparencyLogError(f"transparency log {url} sent JSON that is not an object")
        return body

    def _timed_out(self, where: str, deadline_at: float) -> Exception:
        if time.monotonic() >= deadline_at:
            return LogDeadlineError(f"{where} was still answering")
        return LogUnreachableError(f"{where} unreachable: no whole answer in {2 * self._timeout:g} s")

    def _field(self, body: dict[str, Any], name: str, kind: type, path: str) -> Any:
        value = body.get(name)
        if not isinstance(value, kind):
            raise TransparencyLogError(f"transparency log {self.url}{path} sent no {name!r} {kind.__name__}")
        return value

    # -- API

    @property
    def public_key_b64(self) -> str:
        """The pinned key, fetched from the log on first use if none was given (trust on first use)."""
        return self._pinned_key()

    def _pinned_key(self, deadline_at: float = math.inf) -> str:
        if self._key is None:
            key = self._field(self._request("GET", "/v1/log/key", deadline_at=deadline_at), "public_key", str,
                              "/v1/log/key")
            _public_key(key)
            self._key = key
            self._save_state()
        return self._key

    def _repin_hint(self) -> str:
        """How to trust a log that was reset or replaced on purpose: one clause, the exact step."""
        if self.state_path:
            return (f"only if the log was reset or replaced on purpose, delete {self.state_path} and pin its new key "
                    "(tether cloud nodes --log-key KEY, or log_key in the router config)")
        return "only if the log was reset or replaced on purpose, pin its new key in a new client"

    def _mismatch(self, exc: TransparencyLogError) -> TransparencyLogError:
        """The log no longer matches what this device pinned: say what happened and how to repin, in one line."""
        pinned = f"pinned in {self.state_path}" if self.state_path else "pinned by this client"
        where = f"read through the {self.via} {self.url}" if self.via else f"at {self.url}"
        return TransparencyLogError(f"{exc}: the transparency log {where} is not the one {pinned} "
                                    f"(rolled back, forked or replaced); {self._repin_hint()}")

    def tree_head(self, *, deadline_at: float = math.inf) -> dict[str, Any]:
        """Fetch, verify and remember the latest tree head; raise if it does not extend the last one
        this client verified and the one the state file holds now (another process's, perhaps)."""
        key = self._pinned_key(deadline_at)
        priors = [self.last_sth] if self.last_sth is not None else []
        stored = self._stored_head(key)  # read before the new head, so it is never the later of the two
        if stored is not None and stored != self.last_sth:
            priors.append(stored)
        sth = _check_sth_shape(self._request("GET", "/v1/log/sth", deadline_at=deadline_at))
        try:
            verify_tree_head(sth, key)
        except _WrongSignature as exc:  # signed by another key; a malformed head is raised as it is
            raise self._mismatch(exc) from None
        check_freshness(sth, None, now=self.clock(), max_age=self.max_sth_age)
        for old in priors:
            try:
                check_freshness(sth, old, now=self.clock(), max_age=math.inf, skew=math.inf)  # went backwards?
            except TransparencyLogError as exc:
                raise self._mismatch(exc) from None
            proof = None
            if sth["size"] > old["size"] > 0:
                path = "/v1/log/proof/consistency"
                proof = self._field(self._request("GET", path, params={"prior": old["size"], "size": sth["size"]},
                                                  deadline_at=deadline_at), "proof", dict, path)
            try:
                verify_consistency(old, sth, proof)
            except TransparencyLogError as exc:
                raise self._mismatch(exc) from None
        self.last_sth = sth
        self._save_state()
        return sth

    def _stored_head(self, key: str) -> dict[str, Any] | None:
        """The head the state file holds now, if it is for this key. The CLI and the gateway share
        the file: checked only against the head it loaded at start-up, each process overwrote the
        other's, and a log that showed the two of them a fork went unnoticed."""
        try:
            state = self._load_state()
            if not state or state.get("public_key") != key or state.get("sth") is None:
                return None
            return _check_sth_shape(state["sth"])
        except TransparencyLogError:  # damaged since start-up: the head in memory still holds
            return None

    def directory(self, sth: dict[str, Any], *, deadline_at: float = math.inf) -> ProvenDirectory:
        """Every entry of the (signed) tree ``sth``, hashed into its root: the directory a mirror
        cannot narrow. Entries proven for an earlier head are kept; only the new ones are read."""
        verify_tree_head(sth, self._pinned_key(deadline_at))
        size = sth["size"]
        cached = self._directory if self._directory is not None and self._directory.size <= size else None
        for proven in ([cached] if cached is not None else []) + [ProvenDirectory()]:
            self._directory = None
            path = "/v1/log/entries"
            while proven.size < size:
                start = proven.size + 1
                listed = self._field(self._request("GET", path, params={"start": start, "end": size},
                                                   deadline_at=deadline_at), "entries", list, path)
                if not listed:
                    raise TransparencyLogError(f"transparency log {self.url} did not return entries {start}..{size}")
                for item in listed[:size - proven.size]:
                    if not isinstance(item, dict):
                        raise TransparencyLogError(f"transparency log {self.url} sent a malformed entry list")
                    proven.add(item.get("index"), item.get("entry"))
            if hmac.compare_digest(proven.root(), sth["root"]):
                self._directory = proven
                return proven
        raise TransparencyLogError(f"the {size} entries read from {self.url} do not hash to the tree head the "
                                   "log signed: an entry was left out, added or changed on the way")

    def releases(self, *, deadline_at: float = math.inf) -> dict[str, int]:
        return self._field(self._request("GET", "/v1/log/releases", deadline_at=deadline_at), "releases", dict,
                           "/v1/log/releases")

    def nodes(self, *, deadline_at: float = math.inf) -> list[dict[str, Any]]:
        return self._field(self._request("GET", "/v1/log/nodes", deadline_at=deadline_at), "nodes", list,
                           "/v1/log/nodes")

    def verified_entry(self, index: int, sth: dict[str, Any], *, deadline_at: float = math.inf) -> dict[str, Any]:
        """Entry ``index``, proven to be in the (signed) tree ``sth``."""
        verify_tree_head(sth, self._pinned_key(deadline_at))
        if not (_is_int(index) and 1 <= index <= sth["size"]):
            raise TransparencyLogError(f"entry {index!r} is outside a tree of size {sth['size']}")
        listed = self._field(self._request("GET", "/v1/log/entries", params={"start": index, "end": index},
                                           deadline_at=deadline_at), "entries", list, "/v1/log/entries")
        if len(listed) != 1 or not isinstance(listed[0], dict) or listed[0].get("index") != index \
                or not isinstance(listed[0].get("entry"), dict):
            raise TransparencyLogError(f"transparency log {self.url} did not return entry {index}")
        entry = listed[0]["entry"]
        path = "/v1/log/proof/inclusion"
        proof = self._field(self._request("GET", path, params={"index": index, "size": sth["size"]},
                                          deadline_at=deadline_at), "proof", dict, path)
        verify_inclusion(entry, index, proof, sth)
        return entry

    def submit_release(self, components: dict[str, Any], admin_token: str | None = None) -> dict[str, Any]:
        """POST a measurement to be logged as released; returns {"index", "measurement"}."""
        headers = {"Authorization": f"Bearer {header_token(admin_token, 'the admin token')}"} if admin_token else {}
        return self._request("POST", "/v1/log/releases", json=components, headers=headers)

    def submit_attestation(self, attestation: dict[str, Any], token: str | None = None) -> dict[str, Any]:
        """POST a node attestation to be logged (with the log's node token, if it wants one); returns {"index"}."""
        headers = {"Authorization": f"Bearer {header_token(token, 'the node token')}"} if token else {}
        return self._request("POST", "/v1/log/nodes", json=attestation, headers=headers)
