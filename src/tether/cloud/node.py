"""A private-cloud node: opens sealed requests, runs them, seals the answers.

The model runs in-process with llama.cpp, or the node fronts an existing
OpenAI-compatible engine on loopback (``upstream``): vLLM on an NVIDIA GPU or
on AWS Inferentia/Trainium, or the llama.cpp server on a Graviton CPU.

Stateless by construction: request content exists only in local variables of
one request; nothing is logged but counts and latencies, nothing is written to
disk, and keys are held in memory only: made at start-up, replaced at every
re-attestation, and dropped once no device may still seal to them.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Iterator

import anyio
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tether.cloud.attestation import (CLOCK_SKEW, MAX_ATTESTATION_AGE, Measurement, NodeIdentity, code_digest,
                                     describe_hardware, make_attestation, node_config)
from tether.cloud.envelope import KeyRing, ReplayGuard, ResponseSealer
from tether.cloud.serving import BodyError, json_http_errors, read_body
from tether.errors import EnvelopeError, GenerationError, InputError, TetherError, TransparencyLogError
from tether.settings import header_token, http_url

SEALED_MEDIA_TYPE = "application/tether-sealed"
MAX_BODY = 4 * 1024 * 1024
MAX_BODY_HEADER = "x-tether-max-body"  # on a 413: the node's body limit, which the relay passes on
REQUEST_FAULTS = (400, 413, 422)  # an upstream engine's answers that blame the request itself
_SHA256 = re.compile(r"[0-9a-f]{64}")
_DONE = object()


@dataclass
class NodeSettings:
    model: str = "qwen2.5-1.5b"
    n_ctx: int = 4096
    max_tokens: int = 1024
    upstream: str | None = None
    upstream_model: str | None = None
    model_sha256: str | None = None  # upstream mode: the operator states the served weights' hash
    # The node hands the plaintext request to the upstream engine over plain HTTP: only a loopback
    # address keeps it inside the machine. Another host needs the operator to say so.
    allow_remote_upstream: bool = False
    threads: int | None = None
    concurrency: int = 1  # generations at once (llama.cpp in-process serves one at a time)
    # /v1/info's counters (served, tokens, in flight) move with every request: whoever polls them
    # learns each answer's timing and length. Only a caller with this token sees them; None: no one.
    metrics_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        header_token(self.metrics_token, "metrics_token")  # InputError now, not a failed /v1/info later
        if self.model_sha256 is not None:
            self.model_sha256 = self.model_sha256.lower()
            if not _SHA256.fullmatch(self.model_sha256):
                raise InputError(f"--model-sha256 must be 64 hex digits, not {self.model_sha256[:80]!r}")
        if self.upstream is not None:
            http_url(self.upstream, "--upstream")
            if not self.allow_remote_upstream and not is_loopback_url(self.upstream):
                raise InputError(f"--upstream {self.upstream!r} is not a loopback address: the node would send "
                                 "decrypted requests over the network; run the engine on this machine "
                                 "(http://127.0.0.1:PORT) or pass --allow-remote-upstream")
            if self.model_sha256 is None and not _catalog_sha256(self.model):
                # The measurement would say "unstated": no release can match it (the log takes only
                # a sha256), so the node would serve but no device would ever use it.
                raise InputError(f"the catalog pins no sha256 for {self.model!r}: pass --model-sha256 with the "
                                 "sha256 of the weights the upstream engine serves")


def is_loopback_url(url: str) -> bool:
    """Whether ``url``'s host is this machine: ``localhost`` or a loopback IP (127.0.0.0/8, ::1)."""
    import ipaddress

    host = (httpx.URL(url).host or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Metrics:
    """Counts and latencies only. Never content."""

    served: int = 0
    rejected: int = 0
    failed: int = 0
    inflight: int = 0
    completion_tokens: int = 0
    latency_ms: list[float] = field(default_factory=list)

    def record(self, latency: float, tokens: int) -> None:
        self.served += 1
        self.completion_tokens += tokens
        self.latency_ms.append(latency * 1000)
        del self.latency_ms[:-1000]

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latency_ms)
        return {"served": self.served, "rejected": self.rejected, "failed": self.failed, "inflight": self.inflight,
                "completion_tokens": self.completion_tokens,
                "latency_ms_p50": round(lat[len(lat) // 2], 1) if lat else None}


class Backend:
    """Runs an OpenAI chat request and yields OpenAI objects (one, or stream chunks)."""

    name: str
    model_sha256: str

    def measure_tokens_per_second(self) -> float:
        raise NotImplementedError

    def health_problem(self) -> str | None:
        return None  # in-process: if the node answers, the engine is there


class LocalBackend(Backend):
    def __init__(self, settings: NodeSettings):
        from tether.models import catalog, engine

        spec = catalog.resolve(settings.model)
        self.engine = engine.load(settings.model, n_ctx=settings.n_ctx, n_threads=settings.threads)
        self.engine.isolate_requests = True  # stateless: no request's tokens outlive it or shape the next
        self.name = self.engine.name
        self.model_sha256 = spec.sha256 or catalog.sha256_file(self.engine.path)
        self.max_tokens = settings.max_tokens

    def run(self, body: dict[str, Any], cancel: threading.Event) -> Iterator[dict[str, Any]]:
        from tether.models.openai_chat import ChatRequest, run_chat

        return run_chat(self.engine, ChatRequest.parse(body), max_tokens_cap=self.max_tokens, cancel=cancel)

    def measure_tokens_per_second(self) -> float:
        from tether.models.engine import Message, Sampling

        done = self.engine.complete([Message("user", "Count from one to forty in words.")], Sampling.greedy(48))
        return done.tokens_per_second


class UpstreamBackend(Backend):
    """Fronts an OpenAI-compatible engine; the node adds the envelope, attestation and statelessness."""

    def __init__(self, settings: NodeSettings):
        self.url = http_url(settings.upstream, "--upstream")
        self.name = settings.upstream_model or settings.model
        self.model_sha256 = settings.model_sha256 or _catalog_sha256(settings.model) or ""
        if not self.model_sha256:  # NodeSettings checks this first; a measurement never says "unstated"
            raise InputError(f"the catalog pins no sha256 for {settings.model!r}: pass --model-sha256")
        self.max_tokens = settings.max_tokens
        self.http = httpx.Client(timeout=httpx.Timeout(300.0, connect=5.0))
        self._health: tuple[float, str | None] = (float("-inf"), None)

    def _body(self, body: dict[str, Any]) -> dict[str, Any]:
        """What goes to the engine: the validated request re-serialised, never the caller's own dict.

        Only fields ``ChatRequest`` knows get through (nested ones too), so an engine's own knobs
        (``best_of``, ``ignore_eos``, ``min_tokens``, ``priority``, ``id_slot``, ``cache_prompt``…)
        cannot get around the node's caps; ``model`` and ``max_tokens`` are the node's."""
        from tether.models.openai_chat import ChatRequest

        request = ChatRequest.parse(body)  # same validation as the local engine
        wanted = request.max_completion_tokens or request.max_tokens or self.max_tokens
        out = request.model_dump(mode="json", exclude_unset=True,
                                 exclude={"model", "max_tokens", "max_completion_tokens", "response_format",
                                          "functions", "function_call"})
        if request.response_format is not None:
            out["response_format"] = _response_format(request.response_format)
        return {**out, "model": self.name, "max_tokens": min(wanted, self.max_tokens)}

    def run(self, body: dict[str, Any], cancel: threading.Event) -> Iterator[dict[str, Any]]:
        payload = self._body(body)
        try:
            if not payload.get("stream"):
                resp = self.http.post(f"{self.url}/v1/chat/completions", json=payload)
                yield self._checked(resp)
                return
            with self.http.stream("POST", f"{self.url}/v1/chat/completions", json=payload) as resp:
                if resp.status_code != 200:
                    resp.read()
                    self._checked(resp)
                for line in resp.iter_lines():
                    if cancel.is_set():
                        return
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    yield _json_object(data)
        except httpx.HTTPError as exc:
            raise TetherError(f"upstream engine failed: {type(exc).__name__}") from None

    @staticmethod
    def _checked(resp: httpx.Response) -> dict[str, Any]:
        if resp.status_code in REQUEST_FAULTS:  # the engine refused this request; another node's would too
            raise InputError(f"upstream engine answered HTTP {resp.status_code}")
        if resp.status_code != 200:  # busy (429), timed out (408), down: another node may not be
            raise TetherError(f"upstream engine answered HTTP {resp.status_code}")
        return _json_object(resp.content)

    def health_problem(self) -> str | None:
        """Asked at most once a second, however often /healthz is."""
        now = time.monotonic()
        if now - self._health[0] > 1.0:
            try:
                ok = self.http.get(f"{self.url}/v1/models", timeout=2.0).status_code == 200
            except httpx.HTTPError:
                ok = False
            self._health = (now, None if ok else "upstream engine unreachable")
        return self._health[1]

    def measure_tokens_per_second(self) -> float:
        start = time.perf_counter()
        out = next(self.run({"messages": [{"role": "user", "content": "Count from one to forty in words."}],
                             "max_tokens": 48, "temperature": 0}, threading.Event()))
        tokens = (out.get("usage") or {}).get("completion_tokens") or 0
        return tokens / (time.perf_counter() - start)


def _response_format(fmt: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's three ``response_format`` shapes, rebuilt key by key; an engine's own types are refused."""
    kind = fmt.get("type")
    if kind in ("text", "json_object"):
        return {"type": kind}
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise InputError("response_format.json_schema.schema must be a JSON schema object")
        return {"type": kind, "json_schema": {k: spec[k] for k in ("name", "description", "schema", "strict")
                                              if k in spec}}
    raise InputError(f"unsupported response_format type {kind!r}")


def _json_object(data: str | bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        raise TetherError("upstream engine sent something that is not JSON") from None
    if not isinstance(value, dict):
        raise TetherError("upstream engine sent JSON that is not an object")
    return value


def _catalog_sha256(name: str) -> str | None:
    from tether.errors import UnknownModelError
    from tether.models import catalog

    try:
        return catalog.resolve(name).sha256
    except (UnknownModelError, TetherError):
        return None


class Node:
    """Everything one node process holds: backend, keys, attestation, metrics."""

    def __init__(self, settings: NodeSettings, url: str):
        self.settings = settings
        self.backend: Backend = UpstreamBackend(settings) if settings.upstream else LocalBackend(settings)
        # Rotated at every re-attestation; an old key is kept while its attestation may still be trusted.
        self.keyring = KeyRing(keep=MAX_ATTESTATION_AGE + CLOCK_SKEW)
        self.identity = NodeIdentity()
        self.measurement = Measurement(
            code=code_digest(),
            model_sha256=self.backend.model_sha256,
            config=node_config(settings.model, n_ctx=settings.n_ctx, max_tokens=settings.max_tokens,
                               upstream=settings.upstream),
        )
        # llama.cpp's OpenMP workers belong to the thread that calls it: generating on a
        # different worker thread per request builds new thread teams that then
        # compete for the cores (measured: 2.8x slower). One dedicated thread per slot.
        self._executor = ThreadPoolExecutor(max_workers=max(1, settings.concurrency), thread_name_prefix="generate")
        self.tokens_per_second = self._executor.submit(self.backend.measure_tokens_per_second).result()
        self.url = url
        self.hardware = describe_hardware()
        self.reattest()
        self.guard = ReplayGuard()
        self.metrics = Metrics()
        self._slots: anyio.Semaphore | None = None

    @property
    def node_id(self) -> str:
        return self.identity.node_id

    def reattest(self, *, rotate: bool = False) -> None:
        """Sign the attestation afresh (new ``issued_at``; devices refuse old ones), with a fresh
        request key if ``rotate`` (the old one is kept while a device may still seal to it)."""
        keys = self.keyring.rotate() if rotate else self.keyring.current
        self.attestation = make_attestation(
            self.identity, keys.public_bytes, self.measurement, url=self.url, model=self.backend.name,
            hardware=self.hardware, tokens_per_second=self.tokens_per_second,
        )

    def announce(self, log_url: str, token: str | None = None) -> int:
        """Put this node's attestation into the transparency log so devices can find and check it."""
        from tether.cloud.transparency import LogClient

        with LogClient(log_url, timeout=10) as log:
            reply = log.submit_attestation(self.attestation, token)
        index = reply.get("index") if isinstance(reply, dict) else None
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise TransparencyLogError(f"{log_url} answered the announcement without a log index: {reply!r:.200}")
        return index

    def keep_attested(self, log_url: str, every: float, stop: threading.Event,
                      token: str | None = None) -> threading.Thread:
        """Re-sign and re-announce every ``every`` seconds until ``stop`` is set.

        A failure (log down) is one line on stderr and is retried next period: the
        node keeps serving, and devices stop trusting it only once its last
        attestation ages out.
        """
        def loop() -> None:
            while not stop.wait(every):
                try:
                    self.reattest(rotate=True)
                    index = self.announce(log_url, token)
                    print(f"re-attested: log index {index}", file=sys.stderr, flush=True)
                except TetherError as exc:
                    print(f"re-attestation failed: {exc}", file=sys.stderr, flush=True)
                except Exception as exc:  # noqa: BLE001 - the thread must outlive any one odd answer
                    print(f"re-attestation failed: {type(exc).__name__}", file=sys.stderr, flush=True)

        thread = threading.Thread(target=loop, name="reattest", daemon=True)
        thread.start()
        return thread

    # ------------------------------------------------------------- HTTP

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/v1/attestation", self._attestation, methods=["GET"]),
            Route("/v1/info", self._info, methods=["GET"]),
            Route("/healthz", self._health, methods=["GET"]),
            Route("/v1/envelope", self._envelope, methods=["POST"]),
        ], exception_handlers=json_http_errors())

    async def _attestation(self, request: Request) -> Response:
        return JSONResponse(self.attestation)

    async def _info(self, request: Request) -> Response:
        """What the node is, for anyone; its live counters only for the operator (``metrics_token``)."""
        body = {"node_id": self.node_id, "model": self.backend.name, "measurement": self.measurement.digest,
                "hardware": self.attestation["hardware"], "tokens_per_second": self.tokens_per_second}
        if self._operator(request):
            body["metrics"] = self.metrics.summary()
        return JSONResponse(body)

    def _operator(self, request: Request) -> bool:
        token = self.settings.metrics_token
        given = request.headers.get("authorization", "")
        return bool(token) and hmac.compare_digest(given.encode(), f"Bearer {token}".encode())

    async def _health(self, request: Request) -> Response:
        """Unhealthy while the engine behind it is: the relay then sends requests elsewhere first.
        No request count: what is in flight now is the operator's to see (``/v1/info``)."""
        problem = await anyio.to_thread.run_sync(self.backend.health_problem)
        body = {"ok": problem is None, "node_id": self.node_id}
        if problem:
            return JSONResponse({**body, "error": problem}, status_code=503)
        return JSONResponse(body)

    async def _envelope(self, request: Request) -> Response:
        try:
            body = await read_body(request, MAX_BODY)
            message = json.loads(body)
            if not isinstance(message, dict):
                raise EnvelopeError("rejected")
            chat, sealer = self.keyring.open(message, self.node_id, self.guard)
        except BodyError as exc:
            self.metrics.rejected += 1
            if exc.status == 413:  # the size is no secret (the relay and the network see it): say so
                return JSONResponse({"error": exc.message}, status_code=413, headers={MAX_BODY_HEADER: str(MAX_BODY)})
            return _REJECTED()
        except (EnvelopeError, ValueError, RecursionError):  # deep JSON nesting too: the same bare "rejected"
            self.metrics.rejected += 1
            return _REJECTED()
        return StreamingResponse(self._frames(chat, sealer), media_type=SEALED_MEDIA_TYPE)

    async def _frames(self, chat: dict[str, Any], sealer: ResponseSealer) -> AsyncIterator[bytes]:
        if self._slots is None:
            self._slots = anyio.Semaphore(max(1, self.settings.concurrency))
        loop = asyncio.get_running_loop()
        cancel = threading.Event()
        start = time.perf_counter()
        tokens = 0
        streaming = bool(chat.get("stream"))
        self.metrics.inflight += 1
        it: Iterator[dict[str, Any]] | None = None
        try:
            async with self._slots:
                try:
                    it = self.backend.run(chat, cancel)
                    while True:
                        item = await loop.run_in_executor(self._executor, next, it, _DONE)
                        if item is _DONE:
                            break
                        tokens = _completion_tokens(item, tokens)
                        yield sealer.seal(item, final=not streaming)
                    if streaming:
                        yield sealer.seal({"done": True}, final=True)
                    self.metrics.record(time.perf_counter() - start, tokens)
                    _metric_line(streaming, tokens, time.perf_counter() - start)
                except Exception as exc:  # noqa: BLE001 - every failure becomes a sealed error, never a crash
                    self.metrics.failed += 1
                    message = str(exc) if isinstance(exc, TetherError) else "internal error"
                    # "request": another node would fail it too; "node": this node is at fault, try another.
                    # (A ValueError is the request's validation failing: what the engine sends is checked
                    # in _completion_tokens and _json_object, which raise TetherError, the node's fault.)
                    fault = "request" if isinstance(exc, (InputError, GenerationError, ValueError)) else "node"
                    yield sealer.seal({"error": {"type": type(exc).__name__, "message": message, "fault": fault}},
                                      final=True)
                finally:
                    cancel.set()
                    if it is not None:
                        with anyio.CancelScope(shield=True):
                            await loop.run_in_executor(self._executor, _close, it)
        finally:
            self.metrics.inflight -= 1


def _completion_tokens(item: dict[str, Any], so_far: int) -> int:
    """The answer's token count so far, for the metrics. What the engine sent is checked here:
    an answer that is no chat completion is the node's fault (``TetherError``), never the request's."""
    usage = item.get("usage")
    choices = item.get("choices", [])
    if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
        raise TetherError("the engine's answer has no list of choice objects")
    if usage:
        count = usage.get("completion_tokens") if isinstance(usage, dict) else None
        if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 0):
            raise TetherError("the engine's answer has a usage that is not a token count")
        return count or so_far
    if item.get("object") == "chat.completion.chunk" and any(
            isinstance(c.get("delta"), dict) and c["delta"].get("content") for c in choices):
        return so_far + 1
    return so_far


def _close(it: Iterator[Any]) -> None:
    close = getattr(it, "close", None)
    if close:
        try:
            close()
        except Exception:  # a generator that failed while closing has nothing left to free
            pass


def _metric_line(streaming: bool, tokens: int, seconds: float) -> None:
    print(f"served stream={int(streaming)} completion_tokens={tokens} latency_ms={seconds * 1000:.0f}",
          file=sys.stderr, flush=True)


def _REJECTED() -> Response:
    # One body for every reason: which check failed is nobody's business.
    return JSONResponse({"error": "rejected"}, status_code=400)
