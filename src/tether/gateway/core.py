"""Gateway state and the helpers every endpoint shares: body reading, route blocks, engine threads."""

from __future__ import annotations

import asyncio
import functools
import json
import re
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping, TypeVar

import anyio
from starlette.requests import ClientDisconnect, Request

from tether.cloud.serving import BODY_TIMEOUT  # seconds a client may take to send its body, as on the cloud services
from tether.gateway.errors import GatewayError
from tether.routing.router import Decision, Router


@dataclass
class Metrics:
    requests: int = 0
    streams_open: int = 0
    streams_rejected: int = 0
    cancelled: int = 0  # generations stopped because the client went away
    errors: int = 0


@dataclass
class Gateway:
    """What the app keeps on ``app.state.gateway``."""

    router: Router
    max_body: int = 1_000_000
    max_streams: int = 4
    max_tokens_cap: int = 1024
    body_timeout: float = BODY_TIMEOUT
    search_index: str | None = None  # the index /v1/search and /v1/ask read; None: personal search is off
    index: Any = None  # that index once opened (tether.search.Index), used on the embedder's thread only
    index_id: tuple[int, int] | None = None  # its file's (device, inode): a rebuilt index is opened again
    metrics: Metrics = field(default_factory=Metrics)
    _executors: dict[str, ThreadPoolExecutor] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _gen_locks: dict[str, anyio.Lock] = field(default_factory=dict)
    _load_lock: threading.Lock = field(default_factory=threading.Lock)
    _cancels: weakref.WeakSet[threading.Event] = field(default_factory=weakref.WeakSet)
    _cancels_lock: threading.RLock = field(default_factory=threading.RLock)  # re-entered by the signal handler
    stopping: bool = False

    @property
    def device_model(self) -> str:
        return self.router.config.device_model

    def own_model(self, model: str | None) -> str | None:
        """``device_model`` when ``model`` names it (as given or as its engine names it, e.g. a
        ``~/x.gguf`` path expanded), else None: a file or hf: model served here is no catalog name."""
        if model is None:
            return None
        if model == self.device_model:
            return model
        return self.device_model if model == self.device_model_name else None

    @functools.cached_property
    def device_model_name(self) -> str:
        """The name the device model's engine (and so every answer's ``model``) uses; resolved
        once, as the router's device model is fixed for the gateway's life."""
        from tether.models import catalog

        try:
            return catalog.resolve(self.device_model).name
        except Exception:  # noqa: BLE001 - an unusable spec fails at load with its reason
            return self.device_model

    def model_names(self) -> list[str]:
        """The device models a request may name: the catalog's and, when it is none of them (a
        .gguf file, hf:…), the gateway's own under the name its answers carry."""
        from tether.models import catalog

        own = [self.device_model_name] if self.device_model_name not in catalog.CATALOG else []
        return [*catalog.CATALOG, *own]

    def cancel_event(self) -> threading.Event:
        """The event that stops one request's generations: set when its client goes away, or
        when the server stops (``stop_generations``); already set once it is stopping."""
        cancel = threading.Event()
        with self._cancels_lock:
            self._cancels.add(cancel)
            if self.stopping:
                cancel.set()
        return cancel

    def stop_generations(self) -> None:
        """Ctrl-C: stop every running generation, so an open stream ends now with a "cancelled"
        frame instead of holding the shutdown until uvicorn cancels it (and logs a traceback).
        Called from the signal handler: it only sets events."""
        with self._cancels_lock:
            self.stopping = True
            cancels = list(self._cancels)
        for cancel in cancels:
            cancel.set()

    def executor(self, engine: str) -> ThreadPoolExecutor:
        """One thread per engine: llama.cpp's OpenMP team belongs to the thread that generates,
        so moving generation between threads makes it several times slower."""
        with self._lock:
            ex = self._executors.get(engine)
            if ex is None:
                ex = self._executors[engine] = ThreadPoolExecutor(1, thread_name_prefix=f"gen-{engine}")
            return ex

    async def on(self, engine: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` on ``engine``'s generation thread."""
        return await asyncio.get_running_loop().run_in_executor(self.executor(engine), fn, *args)

    async def engine(self, name: str, *, check_memory: bool = True):
        """The loaded engine for a catalog model. A model not loaded yet must fit in the memory
        free now (the router's memory rule, for a model the client names): 503, not an OOM kill."""
        from tether.models import engine

        if engine.is_loaded(name):
            return await self.on(name, engine.load, name)  # at once: no check, no wait
        return await self.on(name, self._load_checked if check_memory else engine.load, name)

    def _load_checked(self, name: str):
        """Check and load as one step, one model at a time: two models that each fit alone must
        not both pass the check against the same free memory."""
        from tether.errors import ModelUnavailableError
        from tether.models import engine

        with self._load_lock:
            if not engine.is_loaded(name):
                try:
                    need: float | None = engine.memory_estimate(name).total / 2**20
                except ModelUnavailableError:
                    need = None  # loading will say why
                free = self.router.state.snapshot().available_memory_mb()
                if need is not None and need > free:
                    raise GatewayError(f"the model {name!r} needs about {need:,.0f} MiB to load and {free:,.0f} MiB "
                                       "are free; use a smaller model or free memory", 503, "insufficient_memory",
                                       param="model", type_="server_error")
            return engine.load(name)

    async def generate(self, engine: str, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on ``engine``'s generation thread, holding its generation lock throughout."""
        async with self.gen_lock(engine):
            return await self.on(engine, fn, *args)

    def gen_lock(self, engine: str) -> anyio.Lock:
        """Held for a whole generation: the engine keeps its own lock across a stream's tokens, so a
        second generation queued on the same single thread would wait on it forever."""
        lock = self._gen_locks.get(engine)
        if lock is None:
            lock = self._gen_locks[engine] = anyio.Lock()
        return lock

    def close(self) -> None:
        for ex in self._executors.values():
            ex.shutdown(wait=False, cancel_futures=True)
        if self.index is not None:
            self.index.close()


def gateway(request: Request) -> Gateway:
    return request.app.state.gateway


async def read_json(request: Request, max_body: int) -> Any:
    """The JSON body, enforcing the content type, the size limit and the gateway's deadline while
    reading: a client that sends its body slowly, or never, must not hold a connection for good."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise GatewayError(f"expected Content-Type application/json, got {ctype or 'none'}", 415,
                           "unsupported_media_type")
    declared = request.headers.get("content-length", "")
    too_big = GatewayError(f"the request body is over the {max_body:,}-byte limit", 413, "request_too_large")
    if declared.isdigit() and int(declared) > max_body:
        raise too_big
    buf = bytearray()
    seen = 0
    timeout = gateway(request).body_timeout
    try:
        with anyio.fail_after(timeout):
            async for chunk in request.stream():
                seen += len(chunk)
                if seen <= max_body:
                    buf += chunk
                elif seen > 8 * max_body:  # stop draining: a client this far over is not worth a clean answer
                    break
    except TimeoutError:
        raise GatewayError(f"the request body was not received within {timeout:g} s", 408, "request_timeout") from None
    except ClientDisconnect:  # nobody will read the answer: a quiet cancelled request, not a 500
        gateway(request).metrics.cancelled += 1
        raise GatewayError("the client closed the connection before sending its whole body", 499,
                           "client_closed_request") from None
    if seen > max_body:
        raise too_big
    try:
        # UTF-8 only (RFC 8259; a BOM is ignored): json.loads would also take UTF-16 and UTF-32, which
        # the surrogate check below, on the raw bytes, cannot read.
        body = json.loads(bytes(buf).decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise GatewayError(f"the request body is not valid UTF-8 JSON: {exc}", 400, "invalid_json") from None
    except (ValueError, RecursionError) as exc:
        raise GatewayError(f"the request body is not valid JSON: {exc}", 400, "invalid_json") from None
    # JSON may escape a lone surrogate ("\ud800"): no text that reaches a model may hold one. Only a
    # body that escapes a surrogate at all is checked, so ordinary requests are not serialized again.
    if _SURROGATE_ESCAPE.search(buf):
        try:
            json.dumps(body, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise GatewayError(f"the request body holds text that is not valid Unicode (an unpaired surrogate, "
                               f"{exc.object[exc.start:exc.end]!a})", 400, "invalid_json") from None
    return body


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _ascii(text: str, limit: int = 300) -> str:
    """Header-safe: printable ASCII only, no line breaks."""
    clean = "".join(c if 32 <= ord(c) < 127 else "?" for c in text)
    return clean[:limit]


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


def route_block(decision: Decision, *, tier: str | None = None, degraded: bool = False, escalated: bool = False,
                notes: list[str] | None = None, user: str | None = None) -> dict[str, Any]:
    block = {"tier": tier or decision.tier, "rule": decision.rule, "reason": decision.reason,
             "values": _jsonable(decision.values), "degraded": degraded, "escalated": escalated,
             "notes": list(notes or [])}
    if user is not None:
        block["user"] = user
    return block


def route_headers(block: Mapping[str, Any]) -> dict[str, str]:
    return {"X-Tether-Tier": _ascii(block["tier"]), "X-Tether-Rule": _ascii(block["rule"]),
            "X-Tether-Reason": _ascii(block["reason"])}


FEATURE_DECISION = Decision("device", "feature", "features run on the device")


def tiers_configured(router: Router) -> dict[str, bool]:
    """Which tiers a request can reach: the playground offers, and asks consent for, only those. A
    tier the config names is off under ``preference = "device-only"``, which wins over any request."""
    off = router.config.preference == "device-only"
    return {"device": True, "private_cloud": router.private_cloud is not None and not off,
            "third_party": router.third_party is not None and not off}


def record_feature(router: Router, feature: str, seconds: float) -> list[str]:
    """A ledger row for a feature call (``Router.record_on_device``, reason "feature"); a row that
    cannot be written is a note: the answer is made, and is not thrown away for it."""
    return router.record_on_device(feature, "feature", seconds)


T = TypeVar("T")


async def unless_disconnected(request: Request, gw: Gateway, cancel: threading.Event, work: Awaitable[T], *,
                              abandon: bool = False) -> T:
    """Await ``work``; if the client goes away first, set ``cancel`` so its generation stops now
    instead of holding the model for an answer nobody will read.

    ``abandon``: also stop awaiting ``work`` (this task is cancelled where ``work`` waits, so its own
    handlers clean up) and raise ``GenerationCancelledError``: work still waiting for the model must
    not keep its place, or its stream slot, for nobody. ``work`` runs in this task, not another,
    because the model's lock belongs to the task that takes it."""
    owner = asyncio.current_task()
    left = False

    async def watch() -> None:
        nonlocal left
        while (await request.receive())["type"] != "http.disconnect":
            pass
        cancel.set()
        gw.metrics.cancelled += 1
        if abandon and owner is not None:
            left = True
            owner.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        return await work
    except asyncio.CancelledError:
        if left and owner is not None and owner.uncancel() == 0:  # only the client left, not a shutdown
            from tether.errors import GenerationCancelledError

            raise GenerationCancelledError() from None
        raise
    finally:
        watcher.cancel()


def cancellable(cancel: threading.Event, fn: Callable[..., T], *args: Any) -> Callable[[], T]:
    """``fn(*args)`` with every generation it starts stopped by ``cancel`` (on whatever thread runs it)."""
    from tether.models.engine import cancellation

    def run() -> T:
        with cancellation(cancel):
            return fn(*args)

    return run


async def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """Blocking work that is not generation (privacy scan, routing, the ledger)."""
    return await anyio.to_thread.run_sync(fn, *args)
