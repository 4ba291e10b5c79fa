"""The device side of the private cloud: verify nodes, seal, send through the relay.

A node is used only when all of these hold: its attestation's signature and
measurement check out and it was issued recently (nodes re-attest while they
run), the measurement is a release in the transparency log, and the attestation
itself is in the log. The device reads every entry of a fresh signed tree head
(consistent with every tree head seen before), checks that they hash to its root,
and builds the directory from them (``tether.cloud.directory``): a mirror that
leaves a node out of a list cannot leave it out of the tree.

Each request is sealed to a random subset of ``k`` verified nodes, weighted by
advertised speed, current load and measured latency. The device never talks to
a node directly: only through the relay, so no node learns its address. By
default it reads the transparency log through the relay too (``log_url=None``),
so the log operator does not learn it either; the signed root over every entry makes
the relay's mirror as trustworthy as the log itself, and reading all entries tells
it nothing about which nodes the device cares for.

Every request has an overall ``deadline`` across all its attempts: a node that
never answers costs one attempt's ``read_timeout``, and however many nodes hang,
the request ends with ``CloudDeadlineError`` once the deadline passes. A request
over the relay's body limit is ``RequestTooLargeError`` at once, never retried.

A log that cannot be read (``LogUnreachableError``: no connection, HTTP 5xx) does
not take the private cloud down at once: the nodes verified against the last tree
head stay in use while that head is younger than ``max_sth_age`` (the limit a fresh
head gets anyway) and each node's attestation is younger than ``max_attestation_age``.
The log is append-only, so an outage hides only what was added since; any failed
check (signature, proof, a rewound head) still refuses at once. ``log_outage`` says
since when and why.
"""

from __future__ import annotations

import json
import logging
import math
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx

from tether.cloud.attestation import MAX_ATTESTATION_AGE, check_attestation_age, unb64, verify_attestation
from tether.cloud.envelope import ResponseOpener, SealedRequest, seal_request
from tether.cloud.node import MAX_BODY
from tether.cloud.relay import NODE_HEADER, REJECTED_HEADER
from tether.cloud.transparency import MAX_STH_AGE, LogClient, LogDeadlineError, read_capped
from tether.errors import (
    AttestationError,
    CloudDeadlineError,
    CloudError,
    EnvelopeError,
    GenerationCancelledError,
    LogUnreachableError,
    NodeRejectedError,
    NoNodeAvailableError,
    RequestTooLargeError,
    TransparencyLogError,
)
from tether.models.engine import current_cancel
from tether.settings import http_url

logger = logging.getLogger("tether.cloud")

@dataclass
class VerifiedNode:
    node_id: str
    hpke_key: bytes
    model: str
    measurement: str
    tokens_per_second: float
    hardware: dict[str, Any]
    latency_ewma: float | None = None  # seconds to first frame, as this device measured

    def score(self, inflight: int) -> float:
        # Self-reported speed is capped: anyone may announce a released measurement with any number,
        # and an uncapped 9e6 would put that announcement first in every request.
        speed = min(max(self.tokens_per_second, 1.0), MAX_ADVERTISED_SPEED)
        latency = self.latency_ewma if self.latency_ewma is not None else 0.5
        return speed / (1 + inflight) / (0.05 + latency)


MAX_ADVERTISED_SPEED = 300.0  # tokens/s; above this, measured latency alone tells nodes apart
MAX_RELAY_LOAD = 8  # in-flight requests the relay may report for a node, as far as choosing goes
RELAY_LOAD_SECONDS = 2.0  # for the relay's whole load answer: it is advisory, so never worth a wait
DEADLINE = 150.0  # seconds one request may take, every attempt and the whole answer included
MAX_CHUNK_BYTES = 64 * 1024  # one sealed frame of a streamed answer: a token's chunk is a few hundred bytes
MAX_ANSWER_BYTES = 16 * 1024 * 1024  # one answer on the wire, at least (see _byte_budget)


@dataclass
class Verdict:
    node_id: str
    trusted: bool
    reason: str
    model: str = ""


@dataclass
class _Attempt:
    node_id: str
    opener: ResponseOpener


class CloudClient:
    """Thread-safe. One per device; reuse it so tree heads and cooldowns carry over."""

    def __init__(
        self,
        log_url: str | None,
        relay_url: str,
        *,
        log_key: str | None = None,
        state_path: Path | None = None,
        k: int = 2,
        attempts: int = 3,
        connect_timeout: float = 3.0,
        read_timeout: float = 60.0,
        deadline: float | None = DEADLINE,
        max_request_bytes: int = MAX_BODY,
        cooldown: float = 30.0,
        directory_ttl: float = 30.0,
        model: str | None = None,
        max_attestation_age: float = MAX_ATTESTATION_AGE,
        max_sth_age: float = MAX_STH_AGE,
        clock: Callable[[], float] = time.time,
    ):
        self.relay_url = http_url(relay_url, "relay URL")
        self.k = max(1, k)
        self.attempts = max(1, attempts)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout  # per attempt: the longest wait for the relay's answer or the next frame
        self.deadline = deadline  # per request, across attempts; None: no overall limit
        self.max_request_bytes = max_request_bytes  # the relay's body limit, checked before anything is sent
        self.cooldown = cooldown
        self.directory_ttl = directory_ttl
        self.model = model
        self.max_attestation_age = max_attestation_age
        self.clock = clock
        self.http = httpx.Client(timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
                                 limits=httpx.Limits(max_connections=64, max_keepalive_connections=32))
        self.log = LogClient(log_url or self.relay_url, log_key, state_path=state_path, timeout=10.0, max_sth_age=max_sth_age,
                             clock=clock, via=None if log_url else "relay")
        self._lock = threading.RLock()  # the client's state; never held across network I/O
        self._refreshing = threading.Lock()  # held by the one thread re-reading the log
        self._nodes: dict[str, VerifiedNode] = {}
        self._verdicts: list[Verdict] = []
        self._verified_entries: dict[int, dict[str, Any]] = {}  # index → the entry its inclusion proof proved
        self._fetched = 0.0
        self._attestations: dict[str, dict[str, Any]] = {}  # node id → the attestation verified
        self._directory_sth: dict[str, Any] | None = None  # the tree head the current nodes were verified against
        self.log_outage: dict[str, Any] | None = None  # {"since", "error"} while the nodes come from an older head
        self._cooling: dict[str, float] = {}
        self._rng = random.SystemRandom()
        self.last_node: str | None = None

    # ------------------------------------------------------------- discovery

    def refresh(self, deadline_at: float = math.inf) -> list[Verdict]:
        """Re-read the log and re-verify every node it lists; through an outage, keep the last
        verified nodes while their tree head and attestations are young enough.

        One thread re-reads at a time (others wait for it, at most until ``deadline_at``); past
        ``deadline_at`` (monotonic), ``CloudDeadlineError``, and the nodes verified before stay."""
        if not self._acquire_refresh(deadline_at):
            raise self._reading_log_past_deadline()
        try:
            return self._reread(deadline_at)
        finally:
            self._refreshing.release()

    def _acquire_refresh(self, deadline_at: float) -> bool:
        if deadline_at == math.inf:
            return self._refreshing.acquire()
        return self._refreshing.acquire(timeout=max(0.0, deadline_at - time.monotonic()))

    def _reading_log_past_deadline(self) -> CloudDeadlineError:
        return CloudDeadlineError(self.deadline or 0, ["the transparency log was still being read"])

    def _reread(self, deadline_at: float) -> list[Verdict]:
        """``refresh`` with ``self._refreshing`` held. Network I/O happens outside ``self._lock``."""
        try:
            verdicts = self._refresh(deadline_at)
        except LogDeadlineError:
            raise self._reading_log_past_deadline() from None
        except LogUnreachableError as exc:
            with self._lock:
                self._keep_directory_through(exc)
                return list(self._verdicts)
        with self._lock:
            if self.log_outage is not None:
                logger.warning("transparency log readable again after %.0f s; nodes re-verified",
                               self.clock() - self.log_outage["since"])
                self.log_outage = None
        return verdicts

    def _keep_directory_through(self, exc: LogUnreachableError) -> None:
        """Serve the last verified nodes while that is as safe as a fresh read; otherwise raise ``exc``."""
        now = self.clock()
        if self._directory_sth is None:
            raise exc
        age = now - float(self._directory_sth["timestamp"])
        limit = self.log.max_sth_age
        if age > limit:
            raise LogUnreachableError(f"{exc}; the nodes were verified against a tree head {age:.0f} s old, "
                                      f"past the {limit:.0f} s a tree head is trusted") from None
        self._nodes = self._still_trusted(now)
        self._fetched = time.monotonic()  # retry the log after directory_ttl, not on every request
        if self.log_outage is None:
            self.log_outage = {"since": now, "error": str(exc)}
            logger.warning("%s: using the %d node(s) verified %.0f s ago until the log is back (at most %.0f s more)",
                           exc, len(self._nodes), age, limit - age)
        else:
            self.log_outage["error"] = str(exc)

    def _still_trusted(self, now: float) -> dict[str, VerifiedNode]:
        """The verified nodes whose tree head and attestations are still young enough to use
        without a fresh read of the log (hold ``self._lock``)."""
        if self._directory_sth is None or now - float(self._directory_sth["timestamp"]) > self.log.max_sth_age:
            return {}
        kept = {}
        for node_id, node in self._nodes.items():
            try:
                check_attestation_age(self._attestations[node_id], now=now, max_age=self.max_attestation_age)
            except AttestationError:
                continue
            kept[node_id] = node
        return kept

    def _refresh(self, deadline_at: float = math.inf) -> list[Verdict]:
        # The directory is rebuilt from every entry of the signed tree, never taken from the log's
        # (or its mirror's) lists: a relay could leave nodes out of a list, not out of the tree.
        sth = self.log.tree_head(deadline_at=deadline_at)
        directory = self.log.directory(sth, deadline_at=deadline_at)
        releases = directory.releases()
        # Cut where the log cuts its own list, so a node past this device's age limit gets a verdict that says so.
        listed = directory.nodes(now=self.clock(), max_age=max(self.max_attestation_age, MAX_ATTESTATION_AGE))
        proven = directory.entries()  # proven with the tree: no inclusion proof to fetch
        verdicts: list[Verdict] = []
        nodes: dict[str, VerifiedNode] = {}
        attestations: dict[str, dict[str, Any]] = {}
        for entry in listed:
            entry = entry if isinstance(entry, dict) else {}
            att = entry.get("attestation")
            att = att if isinstance(att, dict) else {}
            node_id = str(att.get("node_id", "?"))
            try:
                verify_attestation(att)
                check_attestation_age(att, now=self.clock(), max_age=self.max_attestation_age)
                # Before any proof is fetched: a device that wants one model does not prove every node.
                if self.model and att.get("model") != self.model:
                    raise AttestationError(node_id, f"serves {att.get('model')}, not {self.model}")
                measurement = att["measurement"]
                release_index = releases.get(measurement) if isinstance(measurement, str) else None
                if release_index is None:
                    raise AttestationError(node_id, "its measurement is not a release in the transparency log")
                if not isinstance(release_index, int) or isinstance(release_index, bool):
                    raise AttestationError(node_id, f"release entry index {release_index!r:.40} is not a number")
                self._check_entry(release_index, sth, lambda e: e.get("measurement") == att["measurement"],
                                  node_id, "release entry", deadline_at, proven)
                index = entry.get("index")
                if not isinstance(index, int) or isinstance(index, bool):
                    raise AttestationError(node_id, f"log entry index {index!r} is not a number")
                self._check_entry(index, sth, lambda e: e.get("attestation") == att, node_id, "attestation entry",
                                  deadline_at, proven)
            except AttestationError as exc:
                verdicts.append(Verdict(node_id, False, exc.reason, str(att.get("model", ""))))
                continue
            nodes[node_id] = VerifiedNode(node_id, unb64(att["hpke_key"]), att["model"], att["measurement"],
                                          float(att.get("tokens_per_second") or 0), att.get("hardware") or {})
            attestations[node_id] = att
            verdicts.append(Verdict(node_id, True, "verified", att["model"]))
        # Proofs are kept only for entries this directory still names: each re-attestation is a new
        # entry, so keeping every one ever proven grew a long-running client without bound.
        named = [e.get("index") for e in listed if isinstance(e, dict)] + list(releases.values())
        listed_at = {i for i in named if isinstance(i, int)}  # a mirror's odd index (a list) is no key
        self._verified_entries = {i: e for i, e in self._verified_entries.items() if i in listed_at}
        with self._lock:
            for node_id, node in nodes.items():  # what this device measured carries over
                old = self._nodes.get(node_id)
                node.latency_ewma = old.latency_ewma if old else None
            self._nodes = nodes
            self._attestations = attestations
            self._directory_sth = sth
            self._verdicts = verdicts
            self._fetched = time.monotonic()
        return verdicts

    def _check_entry(self, index: int, sth: dict[str, Any], matches: Any, node_id: str, what: str,
                     deadline_at: float = math.inf, proven: dict[int, dict[str, Any]] | None = None) -> None:
        """``matches`` always runs against the entry the log proved at ``index`` (in ``proven``, the
        directory's entries, when it is there): a forged attestation pointed at an index proven
        before gets the proven entry compared."""
        entry = self._verified_entries.get(index)
        if entry is None and proven is not None and index in proven:
            entry = self._verified_entries[index] = proven[index]
        if entry is None:
            try:
                entry = self.log.verified_entry(index, sth, deadline_at=deadline_at)
            except LogUnreachableError:
                raise  # an outage mid-refresh says nothing against this node
            except TransparencyLogError as exc:
                raise AttestationError(node_id, f"{what} failed its inclusion proof: {exc}") from None
            self._verified_entries[index] = entry  # later tree heads are proven consistent with this one
        if not matches(entry):
            raise AttestationError(node_id, f"{what} in the log does not match what the node presents")

    def nodes(self, *, refresh: bool = False, deadline_at: float = math.inf) -> list[VerifiedNode]:
        """The verified nodes; re-read from the log once ``directory_ttl`` has passed.

        Only one thread re-reads the log at a time. While it does, the others go on with the nodes
        verified before (those whose tree head and attestation are still young enough) and wait for
        it only when they have none; every wait and read ends at ``deadline_at``."""
        asked = time.monotonic()
        with self._lock:
            if not refresh and self._fetched and asked - self._fetched <= self.directory_ttl:
                return list(self._nodes.values())
            standing = list(self._still_trusted(self.clock()).values()) if self._fetched and not refresh else []
        if self._refreshing.acquire(blocking=False):
            pass  # this thread re-reads
        elif standing:
            return standing  # another thread is re-reading: go on with what was verified
        elif not self._acquire_refresh(deadline_at):
            raise self._reading_log_past_deadline()
        try:
            with self._lock:
                done = self._fetched >= asked  # re-read by another thread while this one waited
            if not done:
                self._reread(deadline_at)
        finally:
            self._refreshing.release()
        with self._lock:
            return list(self._nodes.values())

    def verdicts(self) -> list[Verdict]:
        with self._lock:
            fetched = self._fetched
        if not fetched:
            self.refresh()
        with self._lock:
            return list(self._verdicts)

    # ------------------------------------------------------------- selection

    def _relay_load(self, deadline_at: float = math.inf) -> dict[str, dict[str, Any]]:
        """The relay's view of each node: in-flight requests and whether it answers health checks."""
        try:
            # httpx's timeout is per read: a relay trickling a byte a second held chat() 25 s past
            # a 3 s deadline, so the whole answer gets 2 s (and 64 KiB) at most, and never more
            # than the request has left, or the view is dropped.
            wait = min(RELAY_LOAD_SECONDS, deadline_at - time.monotonic())
            if wait <= 0:
                return {}
            done_by = time.monotonic() + wait
            with self.http.stream("GET", f"{self.relay_url}/v1/relay/load", timeout=wait) as resp:
                raw, cut = read_capped(resp, ERROR_BODY_MAX, done_by)
            if cut:
                return {}
            data = json.loads(raw)["nodes"]
            return {nid: {"inflight": int(v.get("inflight", 0)), "healthy": bool(v.get("healthy", True))}
                    for nid, v in data.items()}
        # OverflowError: an "inflight" of 1e999 (infinity); the view is advisory, so it is dropped
        except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError, OverflowError):
            return {}

    def _choose(self, exclude: set[str], deadline_at: float = math.inf) -> list[VerifiedNode]:
        listed = self.nodes(deadline_at=deadline_at)
        now = time.monotonic()
        with self._lock:
            cooling = dict(self._cooling)
        nodes = [n for n in listed if n.node_id not in exclude and cooling.get(n.node_id, 0) <= now]
        if not nodes:
            return []
        # The relay's view is advisory: nodes it calls down are drawn only to fill the k a request is
        # sealed to, never left out below k, and the load it reports is capped. So calling every other
        # node down or busy cannot make a relay's favourite the only one that can open a request.
        status = self._relay_load(deadline_at)
        load = {nid: min(max(v["inflight"], 0), MAX_RELAY_LOAD) for nid, v in status.items()}
        weights = {n.node_id: n.score(load.get(n.node_id, 0)) for n in nodes}

        def sample(group: list[VerifiedNode]) -> list[VerifiedNode]:
            # Weighted sampling without replacement (Efraimidis–Spirakis), so every node can be picked.
            return sorted(group, key=lambda n: math.log(self._rng.random() or 1e-12) / weights[n.node_id], reverse=True)

        healthy = [n for n in nodes if status.get(n.node_id, {}).get("healthy", True)]
        chosen = (sample(healthy) + sample([n for n in nodes if n not in healthy]))[: self.k]
        return sorted(chosen, key=lambda n: weights[n.node_id], reverse=True)

    def _cool(self, node_id: str) -> None:
        with self._lock:
            self._cooling[node_id] = time.monotonic() + self.cooldown

    def _observe(self, node_id: str, seconds: float) -> None:
        with self._lock:
            node = self._nodes.get(node_id)
            if node:
                node.latency_ewma = seconds if node.latency_ewma is None else 0.7 * node.latency_ewma + 0.3 * seconds

    # ------------------------------------------------------------- sending

    def seal(self, body: dict[str, Any], nodes: list[VerifiedNode]) -> tuple[SealedRequest, dict[str, ResponseOpener]]:
        return seal_request(body, [(n.node_id, n.hpke_key) for n in nodes])

    def _deadline_at(self) -> float:
        return time.monotonic() + self.deadline if self.deadline is not None else math.inf

    def _past_deadline(self, attempts_log: list[str], *happening: str) -> CloudDeadlineError:
        return CloudDeadlineError(self.deadline or 0, [*attempts_log, *happening])

    def check_size(self, body: dict[str, Any]) -> None:
        """Raise ``RequestTooLargeError`` before any network: a body whose JSON alone is over the limit
        is over it sealed (base64 grows it)."""
        size = len(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))
        if size > self.max_request_bytes:
            raise RequestTooLargeError(None, self.max_request_bytes)

    def _frames(self, body: dict[str, Any], exclude: set[str], attempts_log: list[str],
                deadline_at: float = math.inf) -> Iterator[tuple[str, dict[str, Any]]]:
        """One attempt: choose nodes, send, yield (node_id, opened frame). Raises on failure.

        Every wait is bounded by what is left of ``deadline_at``; past it, ``CloudDeadlineError``."""
        if time.monotonic() >= deadline_at:
            raise self._past_deadline(attempts_log)
        try:
            nodes = self._choose(exclude, deadline_at)
            if not nodes:
                if not attempts_log and self.model is not None and not self.nodes(deadline_at=deadline_at):
                    raise NoNodeAvailableError([f"no verified node serves {self.model}"])
                raise NoNodeAvailableError(attempts_log or ["no verified node outside cooldown"])
        except CloudDeadlineError as exc:  # the log was still being read
            raise self._past_deadline(attempts_log, *exc.attempts) from None
        sealed, openers = self.seal(body, nodes)
        content = json.dumps(sealed.to_json(), separators=(",", ":")).encode()
        if len(content) > self.max_request_bytes:
            raise RequestTooLargeError(len(content), self.max_request_bytes)
        left = deadline_at - time.monotonic()
        if left <= 0:
            raise self._past_deadline(attempts_log)
        wait = min(self.read_timeout, left)
        timeout = httpx.Timeout(wait, connect=min(self.connect_timeout, left))
        ids = ", ".join(openers)
        start = time.perf_counter()
        request = self.http.stream("POST", f"{self.relay_url}/v1/relay", content=content, timeout=timeout,
                                   headers={"content-type": "application/json"})
        try:
            resp = request.__enter__()
        except httpx.HTTPError as exc:
            if time.monotonic() >= deadline_at:
                raise self._past_deadline(attempts_log, f"no answer for {ids}") from None
            if not isinstance(exc, httpx.ReadTimeout):
                raise  # the relay itself is unreachable
            # The relay tries each target for a while before it answers: this node set may be what
            # is slow, so the next attempt goes to others. Not cooled: the relay may be the slow one.
            exclude.update(openers)
            raise _Retryable(f"no answer from the relay within {wait:g} s for {ids}") from None
        watchdog = _Watchdog(resp, deadline_at)
        try:
            yield from self._answer(resp, openers, start, exclude, deadline_at, attempts_log, watchdog,
                                    _frame_budget(body), bool(body.get("stream")), _byte_budget(body))
        finally:
            watchdog.cancel()
            request.__exit__(None, None, None)

    def _answer(self, resp: httpx.Response, openers: dict[str, ResponseOpener], start: float, exclude: set[str],
                deadline_at: float, attempts_log: list[str], watchdog: "_Watchdog",
                budget: int, streaming: bool = False,
                byte_budget: int = MAX_ANSWER_BYTES) -> Iterator[tuple[str, dict[str, Any]]]:
        if resp.status_code == 413:  # no node takes it: not retried
            raise _too_large(resp)
        if resp.status_code == 400:
            _drain(resp)
            # Every target that answered rejected the envelope. A restarted node's stale entry or
            # a rogue announcement at a real node's address does that; other nodes may not. Only
            # the relay says so, unsigned: the nodes are left out of this request's next attempt
            # but not cooled, or a relay could reject its way to its favourite for every request.
            named = [n for n in resp.headers.get(REJECTED_HEADER, "").split(",") if n in openers]
            exclude.update(named or openers)
            raise _Retryable(f"{', '.join(named or openers)} rejected the sealed request", rejected=True)
        if resp.status_code != 200:
            _drain(resp)
            exclude.update(openers)
            raise _Retryable(f"relay answered HTTP {resp.status_code} for {', '.join(openers)}")
        node_id = resp.headers.get(NODE_HEADER, "")
        opener = openers.get(node_id)
        if opener is None:
            raise EnvelopeError(f"relay named node {node_id!r}, which this request was not sealed to")
        self.last_node = node_id
        if streaming:
            opener.max_frame = MAX_CHUNK_BYTES
        first = True
        received = 0
        try:
            for data in resp.iter_raw():
                if time.monotonic() >= deadline_at:  # the watchdog's backstop
                    raise self._past_deadline(attempts_log, f"node {node_id} was still answering")
                received += len(data)
                if received > byte_budget:  # frames are counted below; bytes here, whatever their size
                    raise EnvelopeError(f"the answer passed the {byte_budget:,} bytes it may take")
                for frame in opener.feed(data):
                    if not isinstance(frame, dict):
                        raise EnvelopeError(f"response frame is a JSON {type(frame).__name__}, not an object")
                    problem = _frame_problem(frame, streaming, opener.finished)
                    if problem:  # sealed by the node: its fault, so another node is tried
                        what = "chat completion chunk" if streaming else "chat completion"
                        raise EnvelopeError(f"response frame is no {what}: {problem}")
                    budget -= 1
                    if budget < 0:
                        raise EnvelopeError("the node sent more chunks than the answer's max_tokens allows")
                    frame.pop("x_tether", None)  # ours to set, never the node's
                    if first:
                        self._observe(node_id, time.perf_counter() - start)
                        first = False
                    err = frame.get("error")
                    if isinstance(err, dict) and err.get("fault") == "node":
                        # The node, not the request, failed (its engine is down): another node may not.
                        exclude.add(node_id)
                        self._cool(node_id)
                        raise _Retryable(f"node {node_id} failed: {_error_text(err)}", node_id)
                    yield node_id, frame
            opener.close()
        except (httpx.HTTPError, EnvelopeError) as exc:
            if watchdog.fired or time.monotonic() >= deadline_at:
                raise self._past_deadline(attempts_log, f"node {node_id} was still answering") from None
            exclude.add(node_id)
            self._cool(node_id)
            raise _Retryable(f"node {node_id} failed mid-answer: {exc}", node_id) from exc

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """Send one chat-completions request; return the completion object.

        Under an ambient cancel (``tether.models.engine.cancellation``: the gateway sets one for
        a client that may go away) the answer is streamed and assembled here, so a cancel closes
        the connection and the node stops generating; a plain request would run to its end."""
        cancel = current_cancel()
        if cancel is not None:
            return self._chat_streamed(body, cancel)
        body = {**body, "stream": False}
        self.check_size(body)
        deadline_at = self._deadline_at()
        exclude: set[str] = set()
        attempts_log: list[str] = []
        rejections = 0
        for _ in range(self.attempts):
            try:
                for node_id, frame in self._frames(body, exclude, attempts_log, deadline_at):
                    _raise_if_error(frame)
                    frame["x_tether"] = {"node": node_id}
                    return frame
            except (NoNodeAvailableError, _Retryable, httpx.HTTPError) as exc:
                rejections += _failed_attempt(exc, attempts_log, rejections)
        raise _give_up(attempts_log, rejections)

    def _chat_streamed(self, body: dict[str, Any], cancel: threading.Event) -> dict[str, Any]:
        if cancel.is_set():
            raise GenerationCancelledError()
        stream = CloudStream(self, {**body, "stream": True, "stream_options": {"include_usage": True}})
        text: list[str] = []
        logprobs: list[Any] = []
        out: dict[str, Any] = {"finish_reason": "stop", "usage": None, "model": "", "id": ""}
        frames = iter(stream)
        try:
            for frame in frames:
                if cancel.is_set():
                    raise GenerationCancelledError()
                _raise_if_error(frame)
                if (frame.get("x_tether") or {}).get("restart"):  # a failover re-sent it: start over
                    text.clear()
                    logprobs.clear()
                out["model"] = frame.get("model") or out["model"]
                out["id"] = frame.get("id") or out["id"]
                if isinstance(frame.get("usage"), dict):
                    out["usage"] = frame["usage"]
                for choice in frame.get("choices") or []:
                    text.append((choice.get("delta") or {}).get("content") or "")
                    logprobs += ((choice.get("logprobs") or {}).get("content")) or []
                    out["finish_reason"] = choice.get("finish_reason") or out["finish_reason"]
        finally:
            frames.close()  # closes the connection: a node still generating stops
        if cancel.is_set():
            raise GenerationCancelledError()
        choice = {"index": 0, "message": {"role": "assistant", "content": "".join(text)},
                  "finish_reason": out["finish_reason"],
                  "logprobs": {"content": logprobs} if body.get("logprobs") or body.get("top_logprobs") else None}
        return {"id": out["id"], "object": "chat.completion", "created": int(time.time()), "model": out["model"],
                "choices": [choice], "usage": out["usage"] or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
                "x_tether": {"node": stream.nodes[-1] if stream.nodes else None, "failovers": stream.failovers}}

    def stream(self, body: dict[str, Any]) -> "CloudStream":
        return CloudStream(self, {**body, "stream": True})

    def close(self) -> None:
        self.http.close()
        self.log.close()


class _Watchdog:
    """Ends a response's reads at the request's deadline: httpx bounds each read, not their sum, so a
    node that sends a frame now and then, each within the read timeout, would otherwise never end.
    It shuts the socket down (which wakes a blocked read); the connection is not reused."""

    def __init__(self, resp: httpx.Response, deadline_at: float):
        self.fired = False
        self._lock = threading.Lock()
        self._done = False
        self._timer: threading.Timer | None = None
        stream = resp.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket) and deadline_at != math.inf:
            self._sock = sock
            self._timer = threading.Timer(max(0.0, deadline_at - time.monotonic()), self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cancel(self) -> None:
        with self._lock:
            self._done = True
        if self._timer is not None:
            self._timer.cancel()


ERROR_BODY_MAX = 64 * 1024  # of a relay's error answer: enough for any message, never its whole stream


def _drain(resp: httpx.Response, limit: int = ERROR_BODY_MAX) -> bytes:
    """Up to ``limit`` bytes of an answer that carries no sealed frames; the rest is not read
    (a relay that sent 400 MiB with a 400 cost the device 800 MiB before)."""
    try:
        return read_capped(resp, limit)[0]
    except httpx.HTTPError:
        return b""


def _too_large(resp: httpx.Response) -> RequestTooLargeError:
    """The relay's 413: its own body limit, or every node it tried answered 413 (``by: nodes``)."""
    try:
        answer = json.loads(_drain(resp))
    except ValueError:
        answer = {}
    answer = answer if isinstance(answer, dict) else {}
    told = answer.get("limit")
    told = told if isinstance(told, int) and not isinstance(told, bool) and told > 0 else None
    where = "the nodes behind the relay" if answer.get("by") == "nodes" else "the relay"
    size = int(resp.request.headers.get("content-length") or 0) or None
    return RequestTooLargeError(size, told, where)


class _Retryable(CloudError):
    def __init__(self, message: str, node_id: str | None = None, *, rejected: bool = False):
        self.node_id = node_id
        self.rejected = rejected
        super().__init__(message)


def _give_up(attempts_log: list[str], rejections: int) -> CloudError:
    """Every attempt rejected: the envelope itself (say, this device's clock) is the likelier fault."""
    if rejections and rejections == len(attempts_log):
        return NodeRejectedError(f"every node rejected the sealed request ({'; '.join(attempts_log)})", status=400)
    return NoNodeAvailableError(attempts_log)


def _failed_attempt(exc: Exception, attempts_log: list[str], rejections: int) -> int:
    """Note one failed attempt and return the rejections it adds; raise when no retry can help
    (the deadline passed, or no node is left: after rejections, named as such)."""
    if isinstance(exc, CloudDeadlineError):
        raise exc
    if isinstance(exc, NoNodeAvailableError):
        raise (_give_up(attempts_log, rejections) if rejections else exc) from None
    if isinstance(exc, _Retryable):
        attempts_log.append(str(exc))
        return int(exc.rejected)
    attempts_log.append(f"relay unreachable: {type(exc).__name__}")
    return 0


def _error_text(err: Any) -> str:
    message = err.get("message", err) if isinstance(err, dict) else err
    return str(message)[:500]


def _raise_if_error(frame: dict[str, Any]) -> None:
    if "error" in frame:
        raise NodeRejectedError(f"the node could not run the request: {_error_text(frame['error'])}")


@dataclass
class CloudStream:
    """Chat-completion chunks as they arrive. Survives a node failing mid-answer.

    When a node dies, the request is re-sent to another node with the same seed.
    Text the caller already has is skipped; if the new node's text diverges, a
    chunk with ``x_tether.restart = True`` says "discard what you have, the
    answer starts again here".
    """

    client: CloudClient
    body: dict[str, Any]
    nodes: list[str] = field(default_factory=list)
    failovers: int = 0
    text: str = ""

    def __post_init__(self) -> None:
        if self.body.get("seed") is None:
            # Same seed on every retry, so a replacement node can regenerate the same text.
            self.body["seed"] = random.SystemRandom().randrange(2**31)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        client = self.client
        exclude: set[str] = set()
        attempts_log: list[str] = []
        rejections = 0
        cancel = current_cancel()
        client.check_size(self.body)
        deadline_at = client._deadline_at()
        for _ in range(client.attempts):
            if cancel is not None and cancel.is_set():
                raise GenerationCancelledError()  # a client that left gets no failover
            delivered = self.text  # what the caller already holds
            replayed = ""
            diverged = False
            try:
                for node_id, frame in client._frames(self.body, exclude, attempts_log, deadline_at):
                    if not self.nodes or self.nodes[-1] != node_id:
                        self.nodes.append(node_id)
                    _raise_if_error(frame)
                    if frame.get("done"):
                        return
                    piece = _delta_text(frame)
                    if len(replayed) < len(delivered) and not diverged:
                        replayed += piece
                        if delivered.startswith(replayed) and not _ends_answer(frame):
                            continue
                        if replayed.startswith(delivered):  # this chunk reaches the end of what we had
                            rest = replayed[len(delivered):]
                            _set_delta_text(frame, rest)
                            self.text += rest
                            yield frame
                            continue
                        diverged = True
                        self.text = replayed
                        frame.setdefault("x_tether", {})["restart"] = True
                        _set_delta_text(frame, replayed)
                        yield frame
                        continue
                    self.text += piece
                    yield frame
                return
            except (NoNodeAvailableError, _Retryable, httpx.HTTPError) as exc:
                rejections += _failed_attempt(exc, attempts_log, rejections)
                self.failovers += 1
        raise _give_up(attempts_log, rejections)


def _frame_budget(body: dict[str, Any]) -> int:
    """Frames one answer may take: a chunk per token of each of its ``n`` choices, plus role,
    finish and usage chunks."""
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    n = body.get("n")
    choices = n if isinstance(n, int) and 1 <= n <= 128 else 1
    return ((limit if isinstance(limit, int) and limit > 0 else 32768) + 4) * choices + 16


def _byte_budget(body: dict[str, Any]) -> int:
    """Bytes one answer may take on the wire: ``MAX_ANSWER_BYTES``, or more for a long answer
    (a KiB a frame of its budget; 16 KiB with logprobs, whose chunks carry the alternatives)."""
    per_frame = 16 * 1024 if body.get("logprobs") or body.get("top_logprobs") else 1024
    return max(MAX_ANSWER_BYTES, _frame_budget(body) * per_frame)


def _frame_problem(frame: dict[str, Any], streaming: bool = False, final: bool = True) -> str | None:
    """What makes an opened frame unusable, checked before any caller indexes into it.

    Not streamed: one final frame, a completion whose ``choices`` hold at least one object
    with a ``message`` object. Streamed: chunks whose choices each carry a ``delta`` object
    (the usage chunk's list may be empty), ended by ``{"done": true}``. An error may end either."""
    if "error" in frame:
        return None
    if frame.get("done") is True:
        return None if streaming and final else "a stream's end in an answer that is not streamed"
    if not streaming and not final:
        return "an answer that is not streamed came in more than one frame"
    choices = frame.get("choices")
    if not isinstance(choices, list):
        return "no choices list"
    if not streaming and not choices:
        return "an empty choices list"
    part_name = "delta" if streaming else "message"
    for choice in choices:
        if not isinstance(choice, dict):
            return "a choice is not an object"
        part = choice.get(part_name)
        if not isinstance(part, dict):
            return f"a choice has no {part_name} object"
        if not isinstance(part.get("content"), (str, type(None))):
            return "content is not text"
        if not isinstance(choice.get("logprobs"), (dict, type(None))):
            return "logprobs is not an object"
    usage = frame.get("usage")
    if not isinstance(usage, (dict, type(None))):
        return "usage is not an object"
    for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
        count = (usage or {}).get(name)
        if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 0):
            return f"usage.{name} is not a token count"
    return None


def _ends_answer(frame: dict[str, Any]) -> bool:
    """A finish_reason or usage chunk: a replacement answer that ends inside what was delivered diverged."""
    choices = frame.get("choices") or []
    return bool(frame.get("usage")) or any(isinstance(c, dict) and c.get("finish_reason") for c in choices)


def _delta_text(frame: dict[str, Any]) -> str:
    choices = frame.get("choices") or []
    return (choices[0].get("delta") or {}).get("content") or "" if choices else ""


def _set_delta_text(frame: dict[str, Any], text: str) -> None:
    choices = frame.get("choices") or []
    if choices:
        choices[0].setdefault("delta", {})["content"] = text
