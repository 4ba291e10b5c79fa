"""An OHTTP-style relay (after RFC 9458): it knows who asks, never what.

Devices send sealed requests here. The relay forwards the opaque bytes to the
first reachable node among the request's targets and streams the sealed answer
back. Nodes see the relay's address, never the device's; the relay sees only
ciphertext and node ids. It forwards no client header and routes only to nodes
listed in the transparency log, so it is not an open proxy.

It also mirrors the log's read-only endpoints, so a device can audit the log
without the log operator learning its address either. The relay cannot forge
what it mirrors: tree heads are signed with the device's pinned log key, and
entries come with Merkle proofs against them.

When the log cannot be read, the relay keeps routing on the directory it last
read, says so once on stderr (and once more when the log is back), and its
``/healthz`` reports the directory as stale with its age.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any, AsyncIterator, Awaitable, Callable

import anyio
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tether.cloud.attestation import verify_attestation
from tether.cloud.node import MAX_BODY, MAX_BODY_HEADER, SEALED_MEDIA_TYPE
from tether.cloud.serving import MAX_CONNECTIONS, BodyError, json_http_errors, read_body
from tether.errors import AttestationError
from tether.settings import http_url

MAX_TARGETS = 8
NODE_HEADER = "x-tether-node"
REJECTED_HEADER = "x-tether-rejected"  # the targets that rejected the envelope, so the device can cool them
LOG_READS = ("key", "sth", "entries", "proof/inclusion", "proof/consistency", "releases", "nodes")
MAX_LOG_RESPONSE = 8 * 1024 * 1024
MAX_PROBE_RESPONSE = 64 * 1024  # a node's /healthz is a line of JSON
_FORCED_GAP = 0.25  # least seconds between directory refreshes forced by unknown node ids

logger = logging.getLogger("tether.relay")


class Relay:
    def __init__(self, log_url: str | None, nodes: dict[str, str] | None = None, *, cooldown: float = 10.0,
                 directory_ttl: float = 2.0, connect_timeout: float = 3.0, read_timeout: float = 120.0,
                 header_timeout: float = 10.0, probe_interval: float = 2.0, max_forwarded: int = MAX_CONNECTIONS,
                 busy_timeout: float = 5.0):
        self.probe_interval = probe_interval
        self.log_url = http_url(log_url, "--log") if log_url else None
        self.static = dict(nodes or {})
        self.directory: dict[str, str] = dict(self.static)
        self.cooldown = cooldown
        self.directory_ttl = directory_ttl
        self.header_timeout = header_timeout  # a node answers with headers at once, even while it queues
        self._fetched = 0.0
        self._read_at: float | None = None  # when the log's directory was last read (monotonic)
        self._log_down_since: float | None = None  # the current outage, if any
        self._log_error: str | None = None
        self._refreshing = asyncio.Lock()
        self._down_until: dict[str, float] = {}
        self.inflight: dict[str, int] = {}
        self.forwarded = 0
        # Forwarding has a pool of its own, as large as the connections the relay admits (one node
        # connection per request), and a slot is taken before the node's header deadline starts: a
        # relay with every connection in use answers 503 "relay busy" and blames no node for it.
        self.max_forwarded = max(1, max_forwarded)
        self.busy_timeout = busy_timeout  # the longest a request waits for a free connection
        self._forwarding: asyncio.Semaphore | None = None  # made in the serving loop
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
                                      limits=httpx.Limits(max_connections=self.max_forwarded,
                                                          max_keepalive_connections=min(64, self.max_forwarded)))
        # The log's directory and mirrored reads, and the health probes, each on their own pool, so
        # answers in flight never make the relay call a node down or the log unreadable.
        self.log_http = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=connect_timeout),
                                          limits=httpx.Limits(max_connections=64, max_keepalive_connections=16))
        self.probe_http = httpx.AsyncClient(timeout=httpx.Timeout(1.0, connect=connect_timeout),
                                            limits=httpx.Limits(max_connections=32, max_keepalive_connections=32))

    async def _refresh(self, asked_at: float | None = None) -> None:
        """Re-read the log's directory: nodes with a valid attestation for a **released** measurement.

        Anyone may announce a self-signed attestation; routing only to released measurements
        (and only to bare ``http(s)://host:port`` addresses, checked with the attestation)
        keeps an announcement from turning the relay into a proxy to other services.

        A refresh forced by an unknown node id (``asked_at``: when its request came) is done
        unless a read began after that moment, waiting out ``_FORCED_GAP`` since the last read
        first: a node announced just after a read is found a moment later, not refused, and
        unknown ids still cannot make the relay read the log more than a few times a second.
        """
        if not self.log_url:
            return
        async with self._refreshing:  # a refresh in flight is waited for, not skipped
            if asked_at is None:
                if time.monotonic() - self._fetched < self.directory_ttl:
                    return
            elif self._fetched >= asked_at:
                return  # read since the request came: an id still unknown is not in the log
            else:
                await asyncio.sleep(max(0.0, self._fetched + _FORCED_GAP - time.monotonic()))
            self._fetched = time.monotonic()
            try:
                _, body = await _get_capped(self.log_http, f"{self.log_url}/v1/log/nodes", MAX_LOG_RESPONSE, 5.0)
                nodes = json.loads(body)["nodes"]
                _, body = await _get_capped(self.log_http, f"{self.log_url}/v1/log/releases", MAX_LOG_RESPONSE, 5.0)
                released = json.loads(body)["releases"]
                if not isinstance(nodes, list) or not isinstance(released, dict):
                    raise ValueError("malformed directory")
            except (httpx.HTTPError, httpx.InvalidURL, ValueError, KeyError, TypeError, RecursionError) as exc:
                self._log_unreadable(exc)  # keep the last directory; the log may be restarting
                return
            self._log_readable()
            found: dict[str, str] = {}
            for n in nodes:  # one malformed entry costs only itself
                try:
                    att = verify_attestation(n.get("attestation") if isinstance(n, dict) else None)
                except AttestationError:
                    continue
                if att["measurement"] in released:
                    found[att["node_id"]] = att["url"].rstrip("/")
            self.directory = {**found, **self.static}

    def _log_unreadable(self, exc: BaseException) -> None:
        """One warning per outage, not one per refresh: the relay goes on routing on the old directory."""
        self._log_error = f"{type(exc).__name__}: {exc}"[:300] if str(exc) else type(exc).__name__
        if self._log_down_since is not None:
            return
        self._log_down_since = time.monotonic()
        age = "never read" if self._read_at is None else f"read {time.monotonic() - self._read_at:.0f} s ago"
        logger.warning("transparency log %s unreadable (%s): routing on the last node directory (%s) "
                       "until it is back", self.log_url, self._log_error, age)

    def _log_readable(self) -> None:
        self._read_at = time.monotonic()
        if self._log_down_since is not None:
            logger.warning("transparency log %s readable again after %.0f s; node directory refreshed",
                           self.log_url, self._read_at - self._log_down_since)
        self._log_down_since = None
        self._log_error = None

    def log_health(self) -> dict | None:
        """What ``/healthz`` says about the mirrored log: reachable, or stale since when and why."""
        if not self.log_url:
            return None
        now = time.monotonic()
        stale = self._log_down_since is not None or self._read_at is None
        return {"url": self.log_url, "stale": stale,
                "directory_age_s": None if self._read_at is None else round(now - self._read_at, 1),
                "unreadable_for_s": None if self._log_down_since is None else round(now - self._log_down_since, 1),
                "error": self._log_error}

    async def _probe_forever(self, interval: float) -> None:
        """Health-check every listed node, so dead ones (say, a restarted node's old entry) are known early."""
        while True:
            try:
                await self._refresh()
                await asyncio.gather(*(self._probe(nid, url) for nid, url in list(self.directory.items())))
            except Exception:  # noqa: BLE001 - the prober must outlive any one bad round
                pass
            await asyncio.sleep(interval)

    async def _probe(self, node_id: str, url: str) -> None:
        """Healthy only when the address answers as *this* node: a restarted node (new id, same URL)
        leaves a stale entry that answers for someone else, and an announcement aimed at any other
        service never passes, so ``/v1/relay/load`` says nothing about whether that service is up.
        Nodes given with ``--node`` (the operator's own) may leave ``node_id`` out."""
        try:
            status, body = await _get_capped(self.probe_http, f"{url}/healthz", MAX_PROBE_RESPONSE, 1.0)
            ok = status == 200
            if ok:
                said = json.loads(body).get("node_id")
                ok = said == node_id or (said is None and node_id in self.static)
        except (httpx.HTTPError, httpx.InvalidURL, ValueError, AttributeError, RecursionError):
            ok = False
        if ok:
            self._down_until.pop(node_id, None)
        else:
            self._down_until[node_id] = time.monotonic() + self.cooldown

    async def _url(self, node_id: str, asked_at: float) -> str | None:
        if node_id not in self.directory:
            await self._refresh(asked_at)  # a node announced since the last refresh
        return self.directory.get(node_id)

    def app(self) -> Starlette:
        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            prober = asyncio.create_task(self._probe_forever(self.probe_interval))
            yield
            prober.cancel()
            for client in (self.http, self.log_http, self.probe_http):
                await client.aclose()

        return Starlette(routes=[
            Route("/v1/relay", self._relay, methods=["POST"]),
            Route("/v1/relay/load", self._load, methods=["GET"]),
            *[Route(f"/v1/log/{path}", self._mirror_log, methods=["GET"]) for path in LOG_READS],
            Route("/healthz", self._health, methods=["GET"]),
        ], lifespan=lifespan, exception_handlers=json_http_errors())

    async def _health(self, request: Request) -> Response:
        """Up (200) while it can route; ``log.stale`` says the node directory is not being refreshed."""
        log = self.log_health()
        return JSONResponse({"ok": True} if log is None else {"ok": True, "log": log})

    async def _load(self, request: Request) -> Response:
        """In-flight counts and health per listed node. ``healthy`` is false for any address that has
        not answered the prober as its own node (see ``_probe``), reachable or not: no port-scan oracle."""
        await self._refresh()
        now = time.monotonic()
        return JSONResponse({"nodes": {nid: {"inflight": self.inflight.get(nid, 0),
                                             "healthy": self._down_until.get(nid, 0) <= now}
                                       for nid in self.directory}})

    async def _mirror_log(self, request: Request) -> Response:
        """GET the same path from the log, with the query string only: no device header goes on."""
        if not self.log_url:
            return JSONResponse({"error": "this relay mirrors no transparency log"}, status_code=404)
        url = f"{self.log_url}{request.url.path}"
        try:
            status, body = await _get_capped(self.log_http, url, MAX_LOG_RESPONSE, 10.0, params=request.query_params)
        except _TooLarge:
            return JSONResponse({"error": "transparency log answer too large"}, status_code=502)
        except httpx.HTTPError as exc:
            return JSONResponse({"error": f"transparency log unreachable: {type(exc).__name__}"}, status_code=502)
        return Response(body, status_code=status, media_type="application/json")

    async def _relay(self, request: Request) -> Response:
        try:
            raw = await read_body(request, MAX_BODY)
        except BodyError as exc:
            # A too-large request is the device's to shorten: say so, with the limit, so it is not retried.
            extra = {"limit": MAX_BODY, "by": "relay"} if exc.status == 413 else {}
            return JSONResponse({"error": exc.message, **extra}, status_code=exc.status)
        try:
            message = json.loads(raw)
            targets = message["targets"]
            ciphertext = message["ct"]
            if not (isinstance(targets, list) and 0 < len(targets) <= MAX_TARGETS and isinstance(ciphertext, str)):
                raise ValueError
            targets = [{"node": str(t["node"]), "enc": str(t["enc"]), "key": str(t["key"])} for t in targets]
        except (ValueError, KeyError, TypeError, RecursionError):
            return JSONResponse({"error": "malformed relay request"}, status_code=400)

        asked_at = time.monotonic()
        tried = 0
        rejected: list[str] = []
        too_large: list[int | None] = []  # the limit each target that answered 413 named
        now = time.monotonic()
        # Healthy targets first, in the device's order; nodes in cooldown only as a last resort.
        ordered = sorted(targets, key=lambda t: self._down_until.get(t["node"], 0) > now)
        for target in ordered:
            url = await self._url(target["node"], asked_at)
            if url is None:
                continue
            if not await self._take_connection():
                return _busy()  # another target would wait for the same pool
            tried += 1
            upstream_req = self.http.build_request("POST", f"{url}/v1/envelope",
                                                   content=json.dumps({**target, "ct": ciphertext}).encode(),
                                                   headers={"content-type": "application/json"})
            try:
                upstream = await asyncio.wait_for(self.http.send(upstream_req, stream=True), self.header_timeout)
            except httpx.PoolTimeout:  # not expected with a slot held; the pool's fault, never the node's
                self._give_back_connection()
                return _busy()
            except (httpx.HTTPError, httpx.InvalidURL, asyncio.TimeoutError):
                self._give_back_connection()
                self._down_until[target["node"]] = time.monotonic() + self.cooldown
                continue
            except BaseException:  # cancelled: the slot goes back all the same
                self._give_back_connection()
                raise
            if upstream.status_code == 200 and not _sealed(upstream):
                # Not a node's answer (a node sends only sealed frames with a 200): whatever an
                # announcement aimed the relay at, its body is never read or passed on.
                await self._close(upstream)
                self._down_until[target["node"]] = time.monotonic() + self.cooldown
                continue
            if upstream.status_code != 200:
                await self._close(upstream)  # its body is not read: a node's rejection says nothing more
                if upstream.status_code == 413:  # a node with a smaller body limit than this relay's
                    limit = upstream.headers.get(MAX_BODY_HEADER, "")
                    too_large.append(int(limit) if limit.isdigit() and len(limit) < 16 else None)
                if upstream.status_code == 400:
                    # Another target may still open it: a restarted node's stale entry (new keys, same
                    # URL), or an announcement that points at someone else's node, rejects every wrap.
                    rejected.append(target["node"])
                continue
            node_id = target["node"]
            self.forwarded += 1
            self.inflight[node_id] = self.inflight.get(node_id, 0) + 1
            return _Piped(self._pipe(upstream, node_id), self._done_piping(upstream, node_id),
                          media_type=SEALED_MEDIA_TYPE, headers={NODE_HEADER: node_id})
        if too_large and len(too_large) == tried:  # no target takes a body this large
            limits = [n for n in too_large if n is not None]
            return JSONResponse({"error": "request body larger than the nodes accept",
                                 "limit": min(limits) if limits else None, "by": "nodes"}, status_code=413)
        if rejected and len(rejected) == tried:  # every target that answered rejected it
            return JSONResponse({"error": "rejected"}, status_code=400,
                                headers={REJECTED_HEADER: ",".join(rejected)})
        return JSONResponse({"error": "no target node reachable", "tried": tried}, status_code=503,
                            headers={REJECTED_HEADER: ",".join(rejected)} if rejected else None)

    async def _pipe(self, upstream: httpx.Response, node_id: str) -> AsyncIterator[bytes]:
        try:
            # If the node dies mid-answer our answer just ends: without its final sealed frame,
            # which the device reads as a truncated stream (it cools the node and fails over).
            async for chunk in upstream.aiter_raw():
                yield chunk
        except httpx.HTTPError as exc:
            self._down_until[node_id] = time.monotonic() + self.cooldown
            logger.warning("node %s failed mid-answer (%s); the answer ends truncated", node_id, type(exc).__name__)

    def _done_piping(self, upstream: httpx.Response, node_id: str) -> Callable[[], Awaitable[None]]:
        """What ends a forwarded answer, once, however it ends: its node connection closed and its
        slot given back, also for a device that left before the answer's first byte."""
        done = False

        async def finish() -> None:
            nonlocal done
            if done:
                return
            done = True
            self.inflight[node_id] -= 1
            await self._close(upstream)

        return finish

    async def _take_connection(self) -> bool:
        """A slot of the forwarding pool, waited for at most ``busy_timeout`` seconds."""
        if self._forwarding is None:
            self._forwarding = asyncio.Semaphore(self.max_forwarded)
        try:
            await asyncio.wait_for(self._forwarding.acquire(), self.busy_timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def _give_back_connection(self) -> None:
        assert self._forwarding is not None
        self._forwarding.release()

    async def _close(self, upstream: httpx.Response) -> None:
        try:
            with anyio.CancelScope(shield=True):
                await upstream.aclose()
        finally:
            self._give_back_connection()


class _Piped(StreamingResponse):
    """A forwarded answer whose ``finish`` runs however the response ends: streamed whole, cut by
    the node, or abandoned by the device (a generator that never started has no ``finally``)."""

    def __init__(self, content: AsyncIterator[bytes], finish: Callable[[], Awaitable[None]], **kwargs: Any):
        super().__init__(content, **kwargs)
        self._finish = finish

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self._finish()


class _TooLarge(httpx.DecodingError):
    """An answer over the limit its reader set."""


async def _get_capped(client: httpx.AsyncClient, url: str, limit: int, seconds: float,
                      params: Any = None) -> tuple[int, bytes]:
    """GET ``url`` within ``seconds`` for the whole answer and at most ``limit`` bytes of it.

    httpx's timeout is per read: an announced address (anyone may announce) whose ``/healthz``
    trickled or never ended held the whole probe round and was read into memory to its end."""
    try:
        with anyio.fail_after(seconds):
            async with client.stream("GET", url, params=params, timeout=seconds) as resp:
                body = bytearray()
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    if len(body) > limit:
                        raise _TooLarge(f"answer over {limit} bytes", request=resp.request)
                return resp.status_code, bytes(body)
    except TimeoutError:
        raise httpx.ReadTimeout(f"no whole answer within {seconds:g} s") from None


def _busy() -> Response:
    """Every forwarding connection is in use: the relay's state, not the node's."""
    return JSONResponse({"error": "relay busy: every connection to the nodes is in use; try again"}, status_code=503,
                        headers={"retry-after": "1"})


def _sealed(resp: httpx.Response) -> bool:
    media_type = resp.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media_type == SEALED_MEDIA_TYPE
