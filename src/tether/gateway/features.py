"""Feature endpoints: JSON in, the feature's pydantic result plus the ``tether`` route block out.

Features run on the device (their functions use a Session on the device
model), on that engine's generation thread. Notification summaries go through the
gateway's router (for its device model): a stack that fails the faithfulness check on
the device may be written on the private cloud; each stack says where. So do text
summaries: one the device cannot make usable may be written there.
"""

from __future__ import annotations

import asyncio
import queue
import re
import threading
import time
from typing import Any, Awaitable, Callable, Literal

import anyio
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse

from tether.errors import TetherError
from tether.gateway.core import (FEATURE_DECISION, cancellable, gateway, in_thread, read_json, record_feature, route_block,
                                 route_headers, tiers_configured, unless_disconnected)
from tether.gateway.errors import GatewayError
from tether.models import catalog
from tether.routing.router import Decision

DRAFT_INTERVAL = 0.05  # seconds between draft events: a few tokens each on the device


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str | None = None  # a catalog model or the gateway's own; default: the gateway's device model
    # Server-sent events: the device's drafts as they are written, then the checked result (see ``_streamed``)
    stream: bool = False


class TextBody(_Body):
    text: str = Field(min_length=1)


class ProofreadBody(TextBody):
    keep_wording: bool = True  # False: the model's rewording too, not only its corrections


class RewriteBody(TextBody):
    tone: Literal["friendly", "professional", "concise"] = "professional"


class SummarizeBody(TextBody):
    form: Literal["summary", "key_points", "list", "table"] = "summary"


class RepliesBody(_Body):
    message: str = Field(min_length=1)


class EmojiBody(_Body):
    description: str = Field(min_length=1, max_length=300)
    size: int = Field(default=256, ge=32, le=1024)
    png: bool = True  # false: the SVG only (no colour emoji font needed)


class NotificationsBody(_Body):
    notifications: list[dict[str, Any]] = Field(min_length=1)


class ScanBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1)


def parse(model: type[BaseModel], body: Any) -> Any:
    if not isinstance(body, dict):
        raise GatewayError("the request body must be a JSON object", 400, "invalid_request")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise GatewayError(f"invalid request: {where}: {first['msg']}", 400, "invalid_request", param=where) from None


def _run(name: str, body_model: type[_Body], call: Callable[..., BaseModel], *, routed: bool = False,
         prepare: Callable[[Any, Any], Awaitable[Any]] | None = None):
    """``routed``: ``call`` also takes the gateway's router (None for a model other than its device
    model) and the router writes the ledger rows; the route block comes from the result.
    ``prepare(gateway, body)``: awaited before the model loads; ``call`` takes what it returns last."""
    async def endpoint(request: Request) -> JSONResponse:
        gw = gateway(request)
        gw.metrics.requests += 1
        body = parse(body_model, await read_json(request, gw.max_body))
        model = gw.own_model(body.model or gw.device_model) or body.model  # the gateway's own model: any catalog or not
        if model not in catalog.CATALOG and model != gw.device_model:
            raise GatewayError(f"the model {model!r} does not exist; use one of: {', '.join(gw.model_names())}", 404,
                               "model_not_found", param="model")
        prepared = (await prepare(gw, body),) if prepare is not None else ()
        await gw.engine(model)
        start = time.perf_counter()
        cancel = gw.cancel_event()
        via_router = routed and model == gw.device_model
        calls = _RouterCalls(gw.router)  # what each of the router's answers said, for the route block's notes
        args = ((body, model, calls if via_router else None) if routed else (body, model)) + prepared
        drafts: queue.SimpleQueue[str | None] | None = queue.SimpleQueue() if body.stream else None
        run = call if drafts is None else _drafting(drafts, call)
        if via_router:  # may wait on the cloud: hold the model only while generating
            work = in_thread(cancellable(cancel, _on_generation_threads, gw, run, *args))
        else:
            work = gw.generate(model, cancellable(cancel, run, *args))

        async def answer(result: BaseModel) -> dict[str, Any]:
            if via_router:
                responses = list(calls.responses)
                block = (_stacks_block(result, responses, calls.failures) if hasattr(result, "stacks")
                         else _routed_block(result, responses))
            else:
                unrecorded = await in_thread(record_feature, gw.router, name, time.perf_counter() - start)
                block = route_block(FEATURE_DECISION, notes=unrecorded)
            return {**result.model_dump(mode="json"), "tether": block}

        if drafts is not None:
            return _streamed(work, answer, drafts, cancel, gw)
        payload = await answer(await unless_disconnected(request, gw, cancel, work))
        return JSONResponse(payload, headers=route_headers(payload["tether"]))

    endpoint.__name__ = name.replace(".", "_")
    return endpoint


def _drafting(drafts: "queue.SimpleQueue[str | None]", call: Callable[..., BaseModel]) -> Callable[..., BaseModel]:
    """``call`` with every device generation's text put on ``drafts`` as it is written (``None``
    when a generation starts), on whatever thread ``call`` runs."""
    from tether.models.engine import drafting

    def run(*args: Any) -> BaseModel:
        with drafting(drafts.put):
            return call(*args)

    return run


def _draft_events(drafts: "queue.SimpleQueue[str | None]") -> list[dict[str, Any]]:
    """What ``drafts`` holds now, as events: a new draft (``draft_reset``), then its text so far."""
    events: list[dict[str, Any]] = []
    text = ""
    while True:
        try:
            piece = drafts.get_nowait()
        except queue.Empty:
            break
        if piece is None:
            if text:
                events.append({"draft": text})
                text = ""
            events.append({"draft_reset": True})
        else:
            text += piece
    if text:
        events.append({"draft": text})
    return events


def _streamed(work: Awaitable[BaseModel], answer: Callable[[BaseModel], Awaitable[dict[str, Any]]],
              drafts: "queue.SimpleQueue[str | None]", cancel: threading.Event, gw: Any) -> StreamingResponse:
    """A feature as server-sent events: ``{"draft_reset": true}`` when the device starts writing
    (a try, a retry, the next piece or stack), ``{"draft": text}`` as it writes, then the result as
    the JSON answer would have it (checked: a draft the feature's checks refuse never becomes the
    result) or ``{"error": …}``, then ``[DONE]``. The drafts are the device's own text; what left
    the device is never a draft. A client that goes away stops the generation."""
    from tether.gateway.chat import sse
    from tether.gateway.errors import error_body

    async def events() -> Any:
        task = asyncio.ensure_future(work)
        try:
            while not task.done():
                for event in _draft_events(drafts):
                    yield sse(event)
                await asyncio.wait({task}, timeout=DRAFT_INTERVAL)
            for event in _draft_events(drafts):
                yield sse(event)
            try:
                payload = await answer(task.result())
            except Exception as exc:  # noqa: BLE001 - every failure is reported as the JSON answer would be
                payload = error_body(exc)[1]
            yield sse(payload)
            yield b"data: [DONE]\n\n"
        finally:
            if not task.done():  # the client went away: stop the generation, free the model
                cancel.set()
                gw.metrics.cancelled += 1
                task.cancel()
                task.add_done_callback(lambda t: t.cancelled() or t.exception())  # nobody reads it now

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _on_generation_threads(gw: Any, call: Callable[..., BaseModel], *args: Any) -> BaseModel:
    """``call(*args)`` on this worker thread, each device generation on its model's generation
    thread under the gateway's lock for it (as every other generation runs)."""
    from tether.models.engine import generations_on

    def run(engine: str, work: Callable[[], Any]) -> Any:
        return anyio.from_thread.run(gw.generate, engine, work)

    with generations_on(run):
        return call(*args)


def _proofread(b: ProofreadBody, model: str, router: Any) -> BaseModel:
    from tether.features.writing import proofread

    return proofread(b.text, model=model, keep_wording=b.keep_wording, router=router)


def _rewrite(b: RewriteBody, model: str, router: Any) -> BaseModel:
    from tether.features.writing import rewrite

    return rewrite(b.text, b.tone, model=model, router=router)


def _summarize(b: SummarizeBody, model: str, router: Any) -> BaseModel:
    from tether.features.writing import summarize

    return summarize(b.text, b.form, model=model, router=router)


def _replies(b: RepliesBody, model: str, router: Any) -> BaseModel:
    from tether.features.replies import smart_replies

    return smart_replies(b.message, model=model, router=router)


def _emoji(b: EmojiBody, model: str) -> BaseModel:
    from tether.features.genmoji import create_emoji

    return create_emoji(b.description, model=model, size=b.size, png=b.png)


def _notifications(b: NotificationsBody, model: str, router: Any) -> BaseModel:
    from tether.features.notifications import parse_notifications, summarize_notifications

    return summarize_notifications(parse_notifications(b.notifications), model=model, router=router)


class _RouterCalls:
    """The gateway's router as a feature sees it, keeping every answer its ``respond`` gives
    (``RoutedResponse``: the decision, the notes, whether it fell back): a feature's result has
    them only as one line of text (``route``), and a note may itself hold a "; "."""

    def __init__(self, router: Any):
        self._router = router
        self.responses: list[Any] = []
        self.failures: list[str] = []  # errors it raised, which a digest's stack may have taken in its stride

    def respond(self, *args: Any, **kwargs: Any) -> Any:
        try:
            response = self._router.respond(*args, **kwargs)
        except TetherError as exc:
            self.failures.append(str(exc))
            raise
        self.responses.append(response)
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._router, name)


def _route_notes(route: str, responses: list[Any], used: set[int]) -> list[str]:
    """The notes behind one ``route`` line: those of the router's answer it quotes (``explain()``,
    maybe after "part 2 of 3: "), then what the feature added after it ("its rewrite failed the
    check too"). That answer is marked ``used``."""
    for pick_used in (False, True):  # an answer not quoted yet first: two parts may read the same
        for i, response in enumerate(responses):
            if (i in used) != pick_used:
                continue
            head = response.explain()
            at = route.find(head)
            if at < 0:
                continue
            used.add(i)
            tail = route[at + len(head):]
            return [*response.notes, *([tail[2:]] if tail.startswith("; ") and tail[2:] else [])]
    return []


def _unique(notes: list[str]) -> list[str]:
    return list(dict.fromkeys(n for n in notes if n))


def _routed_block(result: Any, responses: list[Any]) -> dict[str, Any]:
    """The route block of a routed feature result, from its ``tier`` and ``route`` (a decision's
    ``explain()`` and its notes); ``notes`` lists the router's notes, as chat's block does: those of
    the answer the route names first, then any other part's; ``degraded`` if any part fell back to
    the device; ``values`` are what that answer's rule weighed."""
    found = re.match(r"\w+ \((\w+)\): ", result.route)
    rule = found.group(1) if found else "feature"
    used: set[int] = set()
    notes = _route_notes(result.route, responses, used)
    values = responses[min(used)].decision.values if used else {}
    notes += [n for i, r in enumerate(responses) if i not in used for n in r.notes]
    return route_block(Decision(result.tier, rule, result.route[found.end():] if found else result.route, values),
                       escalated="device answer escalated" in result.route,
                       degraded=any(r.degraded for r in responses), notes=_unique(notes))


def _stacks_block(digest: Any, responses: list[Any], failures: list[str]) -> dict[str, Any]:
    """The route block of a routed digest: each stack has its own tier and route; the block says
    whether any left the device, and lists the router's notes and errors (a stack whose cloud failed
    where the policy forbids a degraded answer keeps its own words), named by their stack when
    there are several."""
    used: set[int] = set()
    notes: list[str] = []
    for s in digest.stacks:
        label = ""
        if len(digest.stacks) > 1:
            label = f"{s.app}{' · ' + s.thread if s.thread and s.thread != s.app else ''}: "
        notes += [label + n for n in _route_notes(s.route, responses, used)]
        if s.route in failures:
            notes.append(label + s.route)
    notes += [n for i, r in enumerate(responses) if i not in used for n in r.notes]
    degraded = any(r.degraded for r in responses)
    away = [s for s in digest.stacks if s.tier != "device"]
    counts = {"stacks": len(digest.stacks), "off_device": len(away)}
    if not away:
        return route_block(Decision("device", "cascade", "every stack was summarized on the device", counts),
                           degraded=degraded, notes=_unique(notes))
    tiers = sorted({s.tier for s in away})
    return route_block(Decision(tiers[0], "cascade", f"{len(away)} of {len(digest.stacks)} stacks were written on "
                                f"{', '.join(tiers)}; each stack's route says why", counts),
                       escalated=any("escalated" in s.route for s in away), degraded=degraded, notes=_unique(notes))


proofread = _run("writing.proofread", ProofreadBody, _proofread, routed=True)
rewrite = _run("writing.rewrite", RewriteBody, _rewrite, routed=True)
summarize = _run("writing.summarize", SummarizeBody, _summarize, routed=True)
replies = _run("replies", RepliesBody, _replies, routed=True)
notifications = _run("notifications", NotificationsBody, _notifications, routed=True)
emoji = _run("emoji", EmojiBody, _emoji)


async def privacy_scan(request: Request) -> JSONResponse:
    """What the privacy guard finds in a text and what each tier would receive (nothing is sent),
    the saved consent policy (``consent_policy``: ask, always or never), which tiers a request can
    reach (``tiers_configured``) and the saved ``preference``, so a page asking for consent does not
    ask where the policy has already said no, nor for a tier that does not exist or is turned off."""
    gw = gateway(request)
    gw.metrics.requests += 1
    body = parse(ScanBody, await read_json(request, gw.max_body))
    report = await in_thread(gw.router.guard.scan, body.text)
    block = {**route_block(FEATURE_DECISION), "reason": "the privacy scan runs on the device"}
    return JSONResponse({**report.model_dump(mode="json"), "consent_policy": gw.router.config.consent,
                         "tiers_configured": tiers_configured(gw.router), "preference": gw.router.config.preference,
                         "tether": block},
                        headers=route_headers(block))
