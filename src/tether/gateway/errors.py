"""Tether errors as OpenAI-style JSON: ``{"error": {"message", "type", "code", "param"}}``.

The status comes from the nearest class in the error's MRO that has an entry,
so one entry per base class covers every subclass, and a new subclass gets a
sensible status without touching this table. A ``TierUnavailableError`` whose
``status`` is in ``TIER_STATUS`` answers that instead of 503: 404
``tier_not_configured`` (the request names a tier this gateway has no config for), 413
``request_too_large`` (too large for the tier, e.g. over the private cloud's body
limit: a retry cannot help) and 504 ``tier_timeout`` (the tier ran out of time,
e.g. past the private cloud's deadline). The router keeps that status only when
every tier it tried failed with it. An ``InvalidTierOutputError`` (every tier tried
answered, but broke the request's JSON schema) is 502 ``invalid_output``, like an
``InvalidOutputError`` on the device; it has its own class rather than a status,
since a provider's own HTTP 502 is no broken answer.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from tether import errors as e

# class → (HTTP status, OpenAI error type, code)
STATUS: dict[type[BaseException], tuple[int, str, str]] = {
    e.TetherError: (500, "server_error", "internal_error"),
    e.InputError: (400, "invalid_request_error", "invalid_request"),
    e.ModelError: (503, "server_error", "model_unavailable"),
    e.UnknownModelError: (404, "invalid_request_error", "model_not_found"),
    e.GenerationError: (500, "server_error", "generation_failed"),
    e.ContextWindowExceededError: (400, "invalid_request_error", "context_length_exceeded"),
    e.InvalidOutputError: (502, "server_error", "invalid_output"),
    e.GenerationCancelledError: (499, "server_error", "cancelled"),
    e.PrivacyError: (403, "permission_error", "privacy"),
    e.PolicyError: (500, "server_error", "privacy_config_invalid"),
    e.MustStayOnDeviceError: (403, "permission_error", "must_stay_on_device"),
    e.ConsentRequiredError: (403, "permission_error", "consent_required"),
    e.RoutingError: (503, "server_error", "routing_failed"),
    e.RouterConfigError: (500, "server_error", "router_config_invalid"),
    e.TierUnavailableError: (503, "server_error", "tier_unavailable"),
    e.InvalidTierOutputError: (502, "server_error", "invalid_output"),
    e.IndexStoreError: (500, "server_error", "index_unavailable"),
    e.EmojiFontUnavailableError: (503, "server_error", "emoji_font_unavailable"),
    e.CloudError: (502, "server_error", "cloud_error"),
}

# TierUnavailableError.status → what the gateway answers instead of 503 tier_unavailable
TIER_STATUS: dict[int, tuple[int, str, str]] = {
    404: (404, "invalid_request_error", "tier_not_configured"),  # OpenAI's SDKs retry a 503, in vain here
    413: (413, "invalid_request_error", "request_too_large"),
    504: (504, "server_error", "tier_timeout"),
}


class GatewayError(e.InputError):
    """A request the gateway refuses at the HTTP level (size, content type, load)."""

    def __init__(self, message: str, status: int, code: str, *, param: str | None = None,
                 type_: str = "invalid_request_error"):
        self.status, self.code, self.param, self.type = status, code, param, type_
        super().__init__(message)


def classify(exc: BaseException) -> tuple[int, str, str]:
    """(HTTP status, OpenAI error type, code) for ``exc``: a ``GatewayError``'s own, a tier's 413
    or 504 from ``TIER_STATUS``, else the ``STATUS`` entry of the nearest class in its MRO."""
    if isinstance(exc, GatewayError):
        return exc.status, exc.type, exc.code
    if isinstance(exc, e.TierUnavailableError) and exc.status in TIER_STATUS:
        return TIER_STATUS[exc.status]
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500, "server_error", "internal_error"


def error_body(exc: BaseException) -> tuple[int, dict[str, Any]]:
    status, type_, code = classify(exc)
    message = str(exc) if isinstance(exc, e.TetherError) else "internal error"
    return status, {"error": {"message": message, "type": type_, "code": code,
                              "param": getattr(exc, "param", None)}}


def error_response(exc: BaseException, headers: dict[str, str] | None = None) -> JSONResponse:
    status, body = error_body(exc)
    return JSONResponse(body, status_code=status, headers=headers)


async def handle(request: Request, exc: Exception) -> JSONResponse:
    """Starlette exception handler: registered once for ``TetherError`` (and ``Exception`` as a last resort)."""
    return error_response(exc)


_V1_PATHS = ("/chat/completions", "/models", "/completions", "/embeddings")
_NOT_SERVED = {"/v1/completions": "the legacy Completions API", "/v1/responses": "the Responses API"}


async def handle_http(request: Request, exc: HTTPException) -> JSONResponse:
    """Starlette's own 404/405 in the same JSON shape, so an OpenAI client sees a readable error."""
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    hint = ""
    if exc.status_code == 404 and not request.url.path.startswith("/v1/") and request.url.path.rstrip("/") in _V1_PATHS:
        hint = f"; did you mean /v1{request.url.path.rstrip('/')}? (a base URL ends in /v1)"
    path = request.url.path.rstrip("/")
    api = _NOT_SERVED.get(path, _NOT_SERVED.get(f"/v1{path}")) if exc.status_code == 404 else None
    if api:
        hint = f"; this gateway does not serve {api}: use POST /v1/chat/completions"
    body = {"error": {"message": f"{request.method} {request.url.path}: {exc.detail}{hint}",
                      "type": "invalid_request_error", "code": code, "param": None}}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)
