"""The Starlette app behind ``tether serve``.

Existing OpenAI clients point their base URL here and get on-device-first
routing; every answer says where it ran and why (headers and a ``tether``
field). The route table below also builds ``/openapi.json``, so the document
cannot drift from the routes.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, get_args

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tether.errors import TetherError
from tether.gateway import features, search
from tether.gateway.chat import TIER_NAMES, chat_completions, model_ids
from tether.gateway.core import BODY_TIMEOUT, Gateway, gateway, in_thread, tiers_configured
from tether.gateway.device_state import DeviceStateBody, get_device_state, report_device_state
from tether.gateway.embeddings import EMBEDDING_MODEL, EmbeddingsBody, embeddings
from tether.gateway.errors import GatewayError, handle, handle_http
from tether.gateway.local_only import LocalOnly, cors_origin
from tether.gateway.playground import playground_routes
from tether.models.openai_chat import ChatRequest
from tether.routing.config import Preference
from tether.routing.router import Router


def all_model_ids(gw: Gateway | None = None) -> list[str]:
    """Chat's ids (catalog models, tier names, auto, the device model) and the embedding model's."""
    return [*model_ids(gw), EMBEDDING_MODEL]


async def list_models(request: Request) -> JSONResponse:
    """The catalog models, the tier names, "auto" and the embedding model, in OpenAI's list format."""
    return JSONResponse({"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "tether"}
                                                   for m in all_model_ids(gateway(request))]})


async def get_model(request: Request) -> JSONResponse:
    """One model by id, as ``client.models.retrieve(id)`` asks for it."""
    model_id = request.path_params["model_id"]
    if not model_id:  # "/v1/models/": the list, as Starlette's slash redirect gave it before {model_id:path}
        return await list_models(request)
    ids = all_model_ids(gateway(request))
    if model_id not in ids and model_id not in TIER_NAMES and gateway(request).own_model(model_id) is None:
        raise GatewayError(f"the model {model_id!r} does not exist; use one of: {', '.join(ids)}", 404,
                           "model_not_found", param="model")
    return JSONResponse({"id": model_id, "object": "model", "created": 0, "owned_by": "tether"})


async def recent_routes(request: Request) -> JSONResponse:
    """The last 50 routing decisions from the ledger: metadata only, never content."""
    ledger = gateway(request).router.ledger
    entries = await in_thread(ledger.entries, 50) if ledger is not None else []
    return JSONResponse({"object": "list", "data": [e.model_dump(mode="json") for e in entries]})


async def healthz(request: Request) -> JSONResponse:
    gw = gateway(request)
    cloud = gw.router.private_cloud
    private_cloud = None if cloud is None else {"log_outage": getattr(getattr(cloud, "client", None), "log_outage", None)}
    return JSONResponse({"status": "ok", "device_model": gw.device_model, "private_cloud": private_cloud,
                         "tiers_configured": tiers_configured(gw.router), "preference": gw.router.config.preference,
                         **vars(gw.metrics)})


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.state.openapi)


# (path, method, endpoint, summary, request body model or None, tags)
ROUTES: list[tuple[str, str, Callable[..., Any], str, Any, str]] = [
    ("/v1/chat/completions", "POST", chat_completions, "Create a chat completion (OpenAI-compatible, routed)",
     ChatRequest, "chat"),
    ("/v1/embeddings", "POST", embeddings, "Create embeddings (OpenAI-compatible, always on the device)",
     EmbeddingsBody, "embeddings"),
    ("/v1/models", "GET", list_models, "List models: catalog models, tier names, auto and the embedding model",
     None, "chat"),
    ("/v1/models/{model_id}", "GET", get_model, "One model by id", None, "chat"),
    ("/v1/notifications/summarize", "POST", features.notifications, "Summarize notifications into stacks",
     features.NotificationsBody, "features"),
    ("/v1/writing/proofread", "POST", features.proofread, "Proofread a text", features.ProofreadBody, "features"),
    ("/v1/writing/rewrite", "POST", features.rewrite, "Rewrite a text in a tone", features.RewriteBody, "features"),
    ("/v1/writing/summarize", "POST", features.summarize, "Summarize a text", features.SummarizeBody, "features"),
    ("/v1/replies", "POST", features.replies, "Suggest three short replies to a message", features.RepliesBody,
     "features"),
    ("/v1/emoji", "POST", features.emoji, "Make a new emoji from a description (PNG as base64, and SVG)",
     features.EmojiBody, "features"),
    ("/v1/search", "POST", search.search, "Search the user's indexed files (hybrid: BM25 and vectors, on the device)",
     search.SearchBody, "search"),
    ("/v1/ask", "POST", search.ask, "Answer a question from the user's indexed files (routed; excerpts pass the "
     "privacy guard before any tier off the device)", search.AskBody, "search"),
    ("/v1/privacy/scan", "POST", features.privacy_scan, "Show what the privacy guard finds and each tier would see",
     features.ScanBody, "privacy"),
    ("/v1/route/recent", "GET", recent_routes, "The last 50 routing decisions (no content)", None, "routing"),
    ("/v1/device/state", "GET", get_device_state, "What the router believes about the device (offline, "
     "low-power, busy, free memory)", None, "routing"),
    ("/v1/device/state", "POST", report_device_state, "Report the device's state; a field left out keeps its value",
     DeviceStateBody, "routing"),
    ("/healthz", "GET", healthz, "Liveness and gateway counters", None, "meta"),
    ("/openapi.json", "GET", openapi, "This OpenAPI document", None, "meta"),
]

_ERROR_SCHEMA = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["message", "type", "code"],
    "properties": {"message": {"type": "string"}, "type": {"type": "string"}, "code": {"type": "string"},
                   "param": {"type": ["string", "null"]}}}}}


# core.route_block: the "tether" field of every answer that ran something
_ROUTE_SCHEMA = {
    "type": "object", "description": "Where the request ran and why (also in the X-Tether-Tier, X-Tether-Rule and "
                                     "X-Tether-Reason headers; a stream has it on its first and last chunk)",
    "required": ["tier", "rule", "reason", "values", "degraded", "escalated", "notes"],
    "properties": {
        "tier": {"type": "string", "enum": ["device", "private_cloud", "third_party"],
                 "description": "where it was answered"},
        "rule": {"type": "string", "description": "the routing rule that decided (requested, cascade, difficulty, "
                                                  "no_cloud, privacy, feature, …)"},
        "reason": {"type": "string", "description": "why, on one line; a routed feature's also holds the notes below "
                                                    "and the rule's values, as text"},
        "values": {"type": "object", "description": "what the rule weighed (scores, thresholds, memory…)"},
        "degraded": {"type": "boolean", "description": "an off-device tier failed and the device answered instead"},
        "escalated": {"type": "boolean", "description": "the device answered first, then an off-device tier did"},
        "notes": {"type": "array", "items": {"type": "string"},
                  "description": "what happened after the decision, one note each: an escalation or its failure, a "
                                 "tier that failed, a fallback to the device, a capped max_tokens, a ledger row not "
                                 "written"},
        "user": {"type": "string", "description": "chat only: the request's user field"}}}

_TIERS_CONFIGURED_SCHEMA = {
    "type": "object", "required": ["device", "private_cloud", "third_party"],
    "description": "which tiers a request can reach: one the router config does not name, or every cloud tier "
                   "under preference = device-only, is never used or asked about",
    "properties": {t: {"type": "boolean"} for t in ("device", "private_cloud", "third_party")}}


def _ok_schema(path: str, tag: str) -> dict[str, Any]:
    """The 200 answer's JSON schema: every answer that ran something has the route block."""
    if path != "/v1/chat/completions" and tag not in ("features", "privacy", "embeddings", "search"):
        return {"type": "object"}
    props: dict[str, Any] = {"tether": {"$ref": "#/components/schemas/Route"}}
    if path == "/v1/privacy/scan":
        props["consent_policy"] = {"type": "string", "enum": ["ask", "always", "never"],
                                   "description": "the saved consent for tiers that need it"}
        props["tiers_configured"] = {"$ref": "#/components/schemas/TiersConfigured"}
        props["preference"] = {"type": "string", "enum": list(get_args(Preference)),
                               "description": "the saved routing preference; device-only turns every cloud tier off"}
    return {"type": "object", "properties": props}


def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.1 for ``ROUTES``; request schemas come from the pydantic models that validate them."""
    schemas: dict[str, Any] = {"Error": _ERROR_SCHEMA, "Route": _ROUTE_SCHEMA,
                               "TiersConfigured": _TIERS_CONFIGURED_SCHEMA}
    paths: dict[str, Any] = {}
    for path, method, endpoint, summary, body, tag in ROUTES:
        op: dict[str, Any] = {"operationId": endpoint.__name__, "summary": summary, "tags": [tag],
                              "responses": {"200": {"description": "OK",
                                                    "content": {"application/json": {"schema": _ok_schema(path, tag)}}},
                                            "4XX": {"description": "Client error",
                                                    "content": {"application/json": {
                                                        "schema": {"$ref": "#/components/schemas/Error"}}}},
                                            "5XX": {"description": "Server or tier error (model, cloud, third party)",
                                                    "content": {"application/json": {
                                                        "schema": {"$ref": "#/components/schemas/Error"}}}}}}
        if "{model_id}" in path:
            op["parameters"] = [{"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"}}]
        if path == "/v1/chat/completions":
            op["responses"]["200"]["content"]["text/event-stream"] = {"schema": {"type": "string"}}
            op["parameters"] = [{"name": "X-Tether-Consent", "in": "header", "required": False,
                                 "description": "yes or no: consent for a tier that needs it (a third party)",
                                 "schema": {"type": "string", "enum": ["yes", "no", "true", "false", "1", "0"]}}]
        if body is not None:
            template = "#/components/schemas/{model}"
            schema = (body.openapi_schema(template) if hasattr(body, "openapi_schema")
                      else body.model_json_schema(ref_template=template))
            schemas.update(schema.pop("$defs", {}))
            schemas[body.__name__] = schema
            op["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{body.__name__}"}}}}
        paths.setdefault(path, {})[method.lower()] = op
    paths["/"] = {"get": {"operationId": "playground", "summary": "The web playground (assets under /playground/)",
                          "tags": ["playground"],
                          "responses": {"200": {"description": "OK", "content": {"text/html": {"schema": {"type": "string"}}}}}}}
    return {"openapi": "3.1.0",
            "info": {"title": "Tether gateway", "version": "0.1.0",
                     "description": "On-device-first routing behind an OpenAI-compatible API."},
            "paths": paths, "components": {"schemas": schemas}}


def create_app(router: Router | None = None, *, max_body: int = 1_000_000, max_streams: int = 4,
               max_tokens_cap: int = 1024, prewarm: bool = True, allowed_hosts: tuple[str, ...] = (),
               api_key: str | None = None, cors_origins: tuple[str, ...] = (),
               body_timeout: float = BODY_TIMEOUT, search_index: str | os.PathLike[str] | None = None) -> Starlette:
    """The gateway app; ``prewarm`` loads the device model and the privacy guard before serving.

    It answers requests whose Host is an IP address, ``localhost`` or one of ``allowed_hosts``,
    no browser request from another origin than its own or one of ``cors_origins`` (each
    ``scheme://host[:port]``; those get CORS headers), and, with ``api_key``, no client on
    another machine without it (see ``local_only``). A request body must arrive within
    ``body_timeout`` seconds (408 otherwise). ``/v1/search`` and ``/v1/ask`` read the index at
    ``search_index`` (None: personal search is off)."""
    cors_origins = tuple(cors_origin(o) for o in cors_origins)  # InputError now, not at the first request
    router = router or Router.from_config()
    gw = Gateway(router, max_body=max_body, max_streams=max_streams, max_tokens_cap=max_tokens_cap,
                 body_timeout=body_timeout, search_index=None if search_index is None else str(search_index))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):  # type: ignore[no-untyped-def]
        if prewarm:
            if router.ledger is not None:
                await in_thread(router.ledger.open)  # an unusable ledger stops start-up with its reason
            await gw.engine(gw.device_model, check_memory=False)  # the gateway's own model: load it or fail
            await in_thread(lambda: router.guard)
        try:
            yield
        finally:
            gw.close()

    # {model_id:path}: a file model's id is a path ("/tmp/x.gguf"), an hf: one holds slashes too
    routes = [Route(p.replace("{model_id}", "{model_id:path}"), e, methods=[m]) for p, m, e, *_ in ROUTES]
    app = Starlette(routes=[*routes, *playground_routes()],
                    middleware=[Middleware(LocalOnly, allowed_hosts=allowed_hosts, api_key=api_key,
                                           cors_origins=cors_origins)],
                    exception_handlers={TetherError: handle, HTTPException: handle_http, Exception: handle}, lifespan=lifespan)
    app.state.gateway = gw
    app.state.router = router
    app.state.metrics = gw.metrics
    app.state.openapi = openapi_document()
    return app
