"""``POST /v1/chat/completions``: OpenAI semantics, with Tether's router choosing where it runs.

On the device the request goes to ``run_chat`` (grammar-constrained JSON,
logprobs, usage); off the device it goes through the router, which
pseudonymizes and restores. Streams are generated on the engine's own thread
and cancelled (the engine's cancel Event) when the client goes away. Requests
with ``tools`` (or tool results) stay on the device: the device model picks
the call, the client runs it, and its results never leave the device.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse

from tether.errors import GenerationCancelledError, InputError, TetherError
from tether.features import calculator
from tether.gateway.core import (Gateway, cancellable, gateway, in_thread, read_json, route_block, route_headers,
                                 unless_disconnected)
from tether.gateway.embeddings import EMBEDDING_MODEL
from tether.gateway.errors import GatewayError, error_body
from tether.models import catalog
from tether.models.engine import cancel_this_thread
from tether.models.openai_chat import ChatMessage, ChatRequest, run_chat
from tether.routing.conversation import conversation_prompt
from tether.routing.router import Decision, RoutedResponse, RoutedStream, RouteRequest, _Spent
from tether.routing.tiers import DEVICE, PRIVATE_CLOUD, THIRD_PARTY

TIER_NAMES = {"device": DEVICE, "private-cloud": PRIVATE_CLOUD, "third-party": THIRD_PARTY,
              "private_cloud": PRIVATE_CLOUD, "third_party": THIRD_PARTY}
_DONE = object()


def model_ids(gw: Gateway | None = None) -> list[str]:
    """Tier names, auto, the catalog and, when it is no catalog model (a .gguf file, hf:…), the
    gateway's own device model under the name its answers carry."""
    return ["auto", "device", "private-cloud", "third-party", *(gw.model_names() if gw is not None else catalog.CATALOG)]


def target(model: str | None, gw: Gateway | None = None) -> tuple[str, str | None]:
    """(tier for the router, device model or None) for the request's ``model``."""
    if model in (None, "", "auto"):
        return "auto", None
    if model in TIER_NAMES:
        return TIER_NAMES[model], None
    if model in catalog.CATALOG:
        return DEVICE, model
    own = gw.own_model(model) if gw is not None else None
    if own is not None:
        return DEVICE, own
    if model == EMBEDDING_MODEL:
        raise GatewayError(f"{model!r} is an embedding model: send it to POST /v1/embeddings; for a chat use one "
                           f"of: {', '.join(model_ids(gw))}", 404, "model_not_found", param="model")
    raise GatewayError(f"the model {model!r} does not exist; use one of: {', '.join(model_ids(gw))}", 404,
                       "model_not_found", param="model")


def parse_chat(body: Any) -> ChatRequest:
    try:
        return ChatRequest.parse(body)
    except InputError as exc:  # "invalid chat request: <field>: <why>": name the field for OpenAI clients
        parts = str(exc).split(": ")
        param = parts[1] if len(parts) > 2 else None
        raise GatewayError(str(exc), 400, "invalid_request", param=param) from None


def _checked_max_tokens(chat: ChatRequest, cap: int) -> int:
    """The answer's token budget, once ``response_format`` and the sampling fields are known good:
    a bad one is a 400 naming it in ``param``, as OpenAI's are."""
    try:
        chat.json_schema()
    except InputError as exc:
        raise GatewayError(str(exc), 400, "invalid_request", param="response_format") from None
    try:
        return chat.sampling(cap).max_tokens
    except InputError as exc:  # Sampling's messages start with the field's name
        name = str(exc).split(" ", 1)[0]
        raise GatewayError(str(exc), 400, "invalid_request",
                           param=name if name in ChatRequest.model_fields else None) from None


def consent_header(request: Request) -> bool | None:
    raw = request.headers.get("x-tether-consent")
    if raw is None:
        return None
    value = raw.strip().lower()
    if value in ("yes", "true", "1"):
        return True
    if value in ("no", "false", "0"):
        return False
    raise GatewayError("X-Tether-Consent must be yes or no", 400, "invalid_header", param="X-Tether-Consent")


def route_request(chat: ChatRequest, tier: str, consent: bool | None, max_tokens: int) -> RouteRequest:
    """System messages → instructions; the last user message → prompt, earlier turns as a transcript.

    As OpenAI's API does, a request need not end in (or have) a user message with text: empty
    messages are left out, and with no user text the last system message (else the last assistant
    message) is what is answered."""
    system = [m.text() for m in chat.messages if m.role in ("system", "developer") and m.text().strip()]
    turns = [m for m in chat.messages if m.role in ("user", "assistant") and m.text().strip()]
    last = max((i for i, m in enumerate(turns) if m.role == "user"), default=None)
    if last is None and not system and not turns:
        raise GatewayError("messages: every message is empty; there is nothing to answer", 400, "invalid_request",
                           param="messages")
    if last is None and system:
        turns, last = [*turns, ChatMessage(role="user", content=system.pop())], len(turns)
    elif last is None:  # assistant messages only
        turns, last = [*turns[:-1], ChatMessage(role="user", content=turns[-1].text())], len(turns) - 1
    prompt = turns[last].text()
    question = prompt
    prompt = conversation_prompt([(m.role, m.text()) for m in turns[:last]], prompt)
    return RouteRequest(prompt, instructions="\n\n".join(system) or None, kind="auto", kind_text=question, feature="chat",
                        max_tokens=max_tokens, tier=tier, consent=consent, json_schema=chat.json_schema(),
                        sampling=chat.sampling(max_tokens), fit_window=not chat.asked_max_tokens)


def _tool_count(chat: ChatRequest) -> int | None:
    """How many tools the request offers, or None when it involves none (no tools, no tool turns)."""
    try:
        specs = chat.tool_specs()
        mode = chat.tool_mode(specs)
        chat.engine_messages()  # tool turns must answer calls that were made
    except InputError as exc:
        raise GatewayError(str(exc), 400, "invalid_request", param="tools") from None
    involved = mode != "none" or any(m.role == "tool" or m.tool_calls for m in chat.messages)
    return len(specs) if involved else None


def _device_only(chat: ChatRequest, tier: str) -> Decision | None:
    """Requests whose answer is defined by the device model: ``logprobs`` (only the device tier
    returns them) and ``logit_bias`` (token ids of the device model's vocabulary); and ``n`` > 1,
    several answers, which the device writes (a cloud call per answer would send the text n times)."""
    asks = [name for name, on in (("logprobs", chat.logprobs), ("logit_bias", bool(chat.logit_bias)),
                                  ("n", chat.n > 1)) if on]
    if not asks:
        return None
    if tier == "auto":
        tokens = [a for a in asks if a != "n"]
        why = ([f"{' and '.join(tokens)} refer to the device model's tokens"] if tokens else []) + (
            [f"{chat.n} answers (n) are written on the device"] if chat.n > 1 else [])
        return Decision(DEVICE, asks[0], f"{'; '.join(why)}, so it answers", {"asked": asks})
    if tier != DEVICE and (chat.logprobs or chat.n > 1):
        param = "logprobs" if chat.logprobs else "n"
        what = "logprobs are returned" if chat.logprobs else "n > 1 (several answers) is served"
        raise GatewayError(f"{what} by the device tier only; use model auto or device", 400, "invalid_request",
                           param=param)
    return None


def fingerprint(engine: Any) -> str:
    """``system_fingerprint`` of a device answer: a short hash of what a seeded answer depends on
    (the model file, llama.cpp's version, the context window and the threads)."""
    try:
        st = os.stat(engine.path)
        file = f"{st.st_size}:{st.st_mtime_ns}"
    except (AttributeError, OSError, ValueError):
        file = ""
    version = getattr(getattr(engine, "_llama_cpp", None), "__version__", "")
    key = "|".join(str(x) for x in (engine.name, file, version, getattr(engine, "context_window", ""),
                                    getattr(engine, "n_threads", "")))
    return "fp_" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def sse(item: Any) -> bytes:
    return b"data: " + json.dumps(item, ensure_ascii=False).encode("utf-8") + b"\n\n"


class _ClosingStream(StreamingResponse):
    """Runs ``on_close`` however the response ends (even if the body never started), so the
    generation is cancelled and its slot freed at once when the client goes away."""

    def __init__(self, content: Any, *, on_close: Callable[[], Awaitable[None]], **kwargs: Any):
        super().__init__(content, **kwargs)
        self.on_close = on_close

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self.body_iterator.aclose()  # type: ignore[attr-defined]
                await self.on_close()


def _resumed(head: Any, it: Iterator[Any]) -> Iterator[Any]:
    """``it`` again with its first item (already read) in front; closing this closes ``it``."""
    try:
        if head is not _DONE:
            yield head
            yield from it
    finally:
        _close(it)


def _close(it: Iterator[Any]) -> None:
    try:
        it.close()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - a generator that failed while closing has nothing left to free
        pass


async def chat_completions(request: Request) -> JSONResponse | StreamingResponse:
    """Create a chat completion (OpenAI-compatible; `model` may be auto, a tier, or a catalog model)."""
    gw = gateway(request)
    gw.metrics.requests += 1
    body = await read_json(request, gw.max_body)
    chat = parse_chat(body)
    tier, model = target(chat.model, gw)
    consent = consent_header(request)
    max_tokens = _checked_max_tokens(chat, gw.max_tokens_cap)
    tools = _tool_count(chat)
    if tools is not None and tier not in ("auto", DEVICE):
        raise GatewayError("tools and tool results are handled on the device tier only; use model auto or device",
                           400, "invalid_request", param="tools")
    pinned = _device_only(chat, tier)
    rreq = route_request(chat, tier, consent, max_tokens)
    user = body.get("user") if isinstance(body.get("user"), str) else None
    user = user[:64] if user else None
    notes = []
    if (chat.asked_max_tokens or 0) > gw.max_tokens_cap:
        notes.append(f"max_tokens {chat.asked_max_tokens} is over this gateway's cap: the answer may use "
                     f"{gw.max_tokens_cap} tokens (tether serve --max-tokens-cap)")
    start = time.perf_counter()
    calculated = _sum_asked(chat, tier, model, tools)
    if calculated is not None:
        return await _calculator(gw, chat, calculated, user, notes, time.perf_counter() - start)
    if chat.stream:
        if gw.metrics.streams_open >= gw.max_streams:
            gw.metrics.streams_rejected += 1
            raise GatewayError(f"too many open streams (the limit is {gw.max_streams}); retry shortly", 429,
                               "rate_limit_exceeded", type_="rate_limit_error")
        gw.metrics.streams_open += 1
    try:
        if model is not None:
            decision = Decision(DEVICE, "requested", f"the caller asked for {model} on the device", {"model": model})
        elif tools is not None:
            decision = Decision(DEVICE, "tools", "function calling runs on the device model; the client runs the "
                                "functions, so their results stay on the device", {"tools": tools})
        elif pinned is not None:
            decision = pinned
        else:
            decision = await in_thread(partial(gw.router.decide, streaming=chat.stream), rreq)
        if decision.tier == DEVICE and decision.rule != "cascade":
            return await _device(request, gw, chat, rreq, decision, model or gw.device_model, user, notes)
        return await _via_router(request, gw, chat, rreq, decision, user, notes)
    except BaseException:
        if chat.stream:
            gw.metrics.streams_open -= 1
        raise


CALCULATOR = Decision(DEVICE, "calculator", calculator.REASON)


def _sum_asked(chat: ChatRequest, tier: str, model: str | None, tools: int | None) -> Any:
    """The ``Calculation`` when the last message is a sum and nothing else and the request leaves
    the choice of model to Tether (auto or device; plain text: no schema, tools, logprobs or n);
    else None."""
    last = chat.messages[-1]
    if (tier not in ("auto", DEVICE) or model is not None or tools is not None or last.role != "user"
            or chat.response_format is not None or chat.logprobs or chat.logit_bias or chat.n != 1):
        return None
    return calculator.calculate(last.text())


async def _calculator(gw: Gateway, chat: ChatRequest, calc: Any, user: str | None, notes: list[str],
                      seconds: float) -> JSONResponse | StreamingResponse:
    """The calculator's answer as a chat completion (or its stream: the whole text in one delta)."""
    notes = [*notes, *await in_thread(gw.router.record_on_device, "chat", "calculator", seconds)]
    block = route_block(CALCULATOR, user=user, notes=notes)
    rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    if not chat.stream:
        return JSONResponse({"id": rid, "object": "chat.completion", "created": created, "model": "calculator",
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": calc.text},
                                          "finish_reason": "stop", "logprobs": None}],
                             "usage": usage, "tether": block}, headers=route_headers(block))

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        out = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": "calculator",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
        if chat.include_usage:
            out["usage"] = None
        return out

    frames = [{**chunk({"role": "assistant", "content": ""}), "tether": block}, chunk({"content": calc.text}),
              {**chunk({}, "stop"), "tether": block}]
    if chat.include_usage:
        frames.append({**frames[-1], "choices": [], "usage": usage})
    body = b"".join(sse(f) for f in frames) + b"data: [DONE]\n\n"
    return StreamingResponse(iter([body]), media_type="text/event-stream",
                             headers={**route_headers(block), "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _device(request: Request, gw: Gateway, chat: ChatRequest, rreq: RouteRequest, decision: Decision, model: str,
                  user: str | None, notes: list[str]) -> JSONResponse | StreamingResponse:
    block = route_block(decision, tier=DEVICE, user=user, notes=notes)
    headers = route_headers(block)
    cancel = gw.cancel_event()
    start = time.perf_counter()
    recorded = False

    async def unfinished(outcome: str, deltas: int = 0) -> None:
        """The ledger row of a request that ended without its answer, as the router writes one for
        the requests it runs: reason ``<rule>.<outcome>``, and the tokens of the deltas it sent."""
        nonlocal recorded
        if recorded:
            return
        recorded = True
        spent = _Spent(DEVICE)
        if deltas:  # one token a delta, the prompt estimated as on the router's streams
            spent.add(DEVICE, max(1, len((rreq.instructions or "") + rreq.prompt) // 4), deltas)
        await in_thread(gw.router._record_failed, rreq, decision, spent, start, outcome)

    if not chat.stream:
        try:
            engine = await gw.engine(model)
            out = await unless_disconnected(request, gw, cancel, gw.generate(
                engine.name, lambda: next(run_chat(engine, chat, max_tokens_cap=gw.max_tokens_cap, cancel=cancel))))
        except Exception as exc:
            await unfinished(_outcome(exc, 0))
            raise
        out["system_fingerprint"] = fingerprint(engine)
        out["tether"] = block
        u = out["usage"]
        recorded = True
        block["notes"] += await _record(gw, rreq, decision, engine.name, u["prompt_tokens"], u["completion_tokens"],
                                        start)
        return JSONResponse(out, headers=headers)

    try:
        engine = await gw.engine(model)
    except Exception as exc:
        await unfinished(_outcome(exc, 0))
        raise
    used: dict[str, int] = {}  # the ledger needs usage whether or not the client asked for it
    it = run_chat(engine, chat, max_tokens_cap=gw.max_tokens_cap, cancel=cancel, usage_out=used)
    lock = gw.gen_lock(engine.name)

    async def first_chunk() -> dict[str, Any]:
        """The model's lock, then the first chunk (context-window errors surface here, as a 4xx).
        ``it`` is closed before the lock goes, so no other generation is queued ahead of its close."""
        try:
            await lock.acquire()
        except BaseException:
            _close(it)  # never started: nothing runs, so no need for the engine's thread
            raise
        try:
            return await gw.on(engine.name, next, it)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await gw.on(engine.name, _close, it)
            lock.release()
            raise

    # A client that leaves while queued behind another stream gives back its slot at once, and
    # its first chunk (for tools, the whole decision) is never generated.
    try:
        first = await unless_disconnected(request, gw, cancel, first_chunk(), abandon=True)
    except Exception as exc:
        await unfinished(_outcome(exc, 0))
        raise
    first["tether"] = block

    async def finish(last: dict[str, Any]) -> None:
        nonlocal recorded
        recorded = True
        block["notes"] += await _record(gw, rreq, decision, engine.name, used.get("prompt_tokens", 0),
                                        used.get("completion_tokens", 0), start)
        last["tether"] = block  # first and last chunk carry the route, as on routed streams

    stream = _Stream(gw, gw.executor(engine.name), it, first, cancel, finish, lock.release, unfinished,
                     fingerprint=fingerprint(engine))
    return _ClosingStream(stream.frames(), on_close=stream.close, media_type="text/event-stream",
                          headers={**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _outcome(exc: BaseException, deltas: int) -> str:
    """A ledger reason's suffix for a request that ended in ``exc``, as the router names it."""
    if isinstance(exc, GenerationCancelledError):
        return "abandoned"
    return "cut" if deltas else "failed"


class _Stream:
    """SSE frames from ``it`` (read on ``executor``); the last item goes through ``finish`` first.
    ``unfinished(outcome, deltas)``, if given, is told of a stream that fails or is left before
    its end, with the content deltas sent by then. ``fingerprint``, if given, goes in every chunk."""

    def __init__(self, gw: Gateway, executor: Any, it: Iterator[dict[str, Any]], first: dict[str, Any],
                 cancel: threading.Event, finish: Callable[[dict[str, Any]], Awaitable[None]],
                 release: Callable[[], None] | None = None,
                 unfinished: Callable[[str, int], Awaitable[None]] | None = None, *, fingerprint: str | None = None):
        self.gw, self.executor, self.it, self.first = gw, executor, it, first
        self.cancel, self.finish, self.release, self.unfinished = cancel, finish, release, unfinished
        self.fingerprint = fingerprint
        self.done = self.closed = False
        self.deltas = 0  # chunks with content sent

    async def frames(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        try:
            if self.fingerprint is not None:
                self.first["system_fingerprint"] = self.fingerprint
            yield sse(self.first)
            pending = await loop.run_in_executor(self.executor, next, self.it, _DONE)
            while pending is not _DONE:
                try:
                    item = await loop.run_in_executor(self.executor, next, self.it, _DONE)
                except Exception:
                    yield self._frame(pending)  # what came before the failure still reaches the client
                    raise
                if item is _DONE:
                    await self.finish(pending)
                yield self._frame(pending)
                pending = item
            self.done = True
            yield b"data: [DONE]\n\n"
        except Exception as exc:  # mid-stream failure: tell the client in-band, the headers are gone
            self.done = True
            if isinstance(exc, RuntimeError) and getattr(self.executor, "_shutdown", False):
                # the server is shutting down and took the engine thread between two tokens: the
                # stream was cut short by the shutdown, not by a bug
                exc = GenerationCancelledError()
            self.gw.metrics.errors += 1
            if not isinstance(exc, TetherError):  # a bug: name it in the server log, never with content
                logging.getLogger("tether.gateway").error("stream failed: %s", type(exc).__name__)
            if self.unfinished is not None:
                await self.unfinished(_outcome(exc, self.deltas), self.deltas)
            yield sse(error_body(exc)[1])

    def _frame(self, chunk: dict[str, Any]) -> bytes:
        if self.fingerprint is not None:
            chunk["system_fingerprint"] = self.fingerprint
        self.deltas += any((c.get("delta") or {}).get("content") for c in chunk.get("choices") or ())
        return sse(chunk)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.cancel.set()
        if not self.done:
            self.gw.metrics.cancelled += 1
        try:
            await asyncio.get_running_loop().run_in_executor(self.executor, _close, self.it)
        except RuntimeError:
            if not getattr(self.executor, "_shutdown", False):
                raise
            # the server is shutting down and took the engine thread with it; cancel is set, so
            # whatever ran there has stopped: nothing is left to close
        finally:
            if self.release is not None:
                self.release()
            self.gw.metrics.streams_open -= 1
        if not self.done and self.unfinished is not None:  # after the model's lock is given back
            await self.unfinished("abandoned", self.deltas)


async def _record(gw: Gateway, rreq: RouteRequest, decision: Decision, model: str, prompt_tokens: int,
                  completion_tokens: int, start: float) -> list[str]:
    """Write the ledger row of a device answer; returns the router's notes on it ("ledger not written")."""
    resp = RoutedResponse("", decision, DEVICE, model, prompt_tokens, completion_tokens, time.perf_counter() - start)
    await in_thread(gw.router._record, rreq, resp)
    return resp.notes


async def _via_router(request: Request, gw: Gateway, chat: ChatRequest, rreq: RouteRequest, decision: Decision,
                      user: str | None, notes: list[str]) -> JSONResponse | StreamingResponse:
    rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    if not chat.stream:
        cancel = gw.cancel_event()  # stops the device's part and a private-cloud call (a third party's ends its retries)
        out: RoutedResponse = await unless_disconnected(
            request, gw, cancel, in_thread(cancellable(cancel, gw.router.respond, rreq, decision)))
        block = route_block(out.decision, tier=out.tier, degraded=out.degraded, escalated=out.escalated,
                            notes=[*notes, *out.notes], user=user)
        body = {"id": rid, "object": "chat.completion", "created": created, "model": out.model or out.tier,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": out.text},
                             "finish_reason": out.finish_reason, "logprobs": None}],
                "usage": {"prompt_tokens": out.prompt_tokens, "completion_tokens": out.completion_tokens,
                          "total_tokens": out.prompt_tokens + out.completion_tokens},
                "tether": block}
        return JSONResponse(body, headers=route_headers(block))

    routed = RoutedStream(gw.router, rreq, decision)

    def serving() -> str:
        """The tier streaming now: the decision's until a fallback (known before its first text)."""
        return getattr(routed, "_tier", decision.tier)

    def chunk(delta: dict[str, Any], finish: str | None = None, model: str = decision.tier) -> dict[str, Any]:
        out = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
        if chat.include_usage:
            out["usage"] = None
        return out

    def chunks() -> Iterator[dict[str, Any]]:
        """Until the answer ends, ``model`` names the tier; the last chunks name the model that answered."""
        for text in routed:
            yield chunk({"content": text}, model=serving())
        r = routed.response
        assert r is not None  # set once the last delta was read
        last = chunk({}, r.finish_reason, r.model or r.tier)
        last["tether"] = route_block(decision, tier=r.tier, degraded=r.degraded, notes=[*notes, *r.notes], user=user)
        yield last
        if chat.include_usage:
            yield {**last, "choices": [], "usage": {"prompt_tokens": r.prompt_tokens,
                                                    "completion_tokens": r.completion_tokens,
                                                    "total_tokens": r.prompt_tokens + r.completion_tokens}}

    async def finish(last: dict[str, Any]) -> None:
        return None

    # One thread per routed stream: a generator must be advanced and closed on one thread in turn
    # (a close queued on another pool thread fails while a `next` runs), and a device fallback
    # inside it holds the engine while suspended. The thread's ambient cancel stops that fallback.
    cancel = gw.cancel_event()
    executor = ThreadPoolExecutor(1, thread_name_prefix="routed-stream", initializer=cancel_this_thread,
                                  initargs=(cancel,))
    # The first text decides the status: a tier that fails before it (and its fallbacks) is an
    # HTTP error the client can retry, as on the device path, not a 200 with an error event.
    it = chunks()
    loop = asyncio.get_running_loop()
    try:
        head = await unless_disconnected(request, gw, cancel, loop.run_in_executor(executor, next, it, _DONE))
    except BaseException:
        with anyio.CancelScope(shield=True):
            await loop.run_in_executor(executor, _close, it)
        executor.shutdown(wait=False)
        raise
    # The headers and first chunk name the tier that sends the text: a tier that failed before its
    # first text was replaced by then (by the device, degraded), and is named in the last chunk's notes.
    block = route_block(decision, tier=serving(), degraded=getattr(routed, "_degraded", False), user=user,
                        notes=notes)
    first = {**chunk({"role": "assistant", "content": ""}, model=serving()), "tether": block}
    stream = _Stream(gw, executor, _resumed(head, it), first, cancel, finish, lambda: executor.shutdown(wait=False))
    return _ClosingStream(stream.frames(), on_close=stream.close, media_type="text/event-stream",
                          headers={**route_headers(block), "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

