"""HTTP front of the transparency log.

Reads are open to anyone: devices must be able to audit. Logging a release
takes the admin token (when one is set). Announcing a node takes the node token
(or the admin token) when one is set: a signature only proves that a node holds
its key, and anyone can copy a released measurement into an attestation, so an
open directory lets a stranger list a node that devices will send requests to.
Client mistakes always get a 4xx with {"error": ...}, never a 500; a full disk
is a 503.
"""

from __future__ import annotations

import hmac
import sqlite3
import sys
from typing import Any, Awaitable, Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tether.cloud.serving import BodyError, read_body
from tether.cloud.transparency import TransparencyLog, loads_strict
from tether.errors import AttestationError, InputError, TransparencyLogError

MAX_BODY = 256 * 1024
MAX_ENTRIES = 1000


class _ClientError(Exception):
    def __init__(self, status: int, message: str):
        self.status = status
        self.message = message


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    # a message may quote what the client sent, lone surrogates included, which JSON cannot encode
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _bearer_is(request: Request, *tokens: str | None) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and any(
        t and hmac.compare_digest(given.strip().encode(), t.encode()) for t in tokens)


def _int_param(request: Request, name: str, default: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        if default is None:
            raise _ClientError(400, f"missing query parameter {name!r}")
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _ClientError(400, f"query parameter {name!r} must be an integer") from None
    if not -(2 ** 63) < value < 2 ** 63:
        raise _ClientError(400, f"query parameter {name!r} is out of range")
    return value


async def _json_body(request: Request) -> Any:
    try:
        raw = await read_body(request, MAX_BODY)
    except BodyError as exc:
        raise _ClientError(exc.status, exc.message) from None
    try:
        return loads_strict(raw)
    except (ValueError, RecursionError) as exc:
        raise _ClientError(400, f"body is not valid JSON: {exc}") from None


def _handler(func: Callable[[Request], Awaitable[Any]]) -> Callable[[Request], Awaitable[JSONResponse]]:
    async def endpoint(request: Request) -> JSONResponse:
        try:
            return JSONResponse(await func(request))
        except _ClientError as exc:
            return _error(exc.status, exc.message)
        except AttestationError as exc:
            return _error(400, str(exc))
        except (InputError, TransparencyLogError) as exc:
            return _error(400, str(exc))
        except sqlite3.OperationalError as exc:  # "database or disk is full", a lost mount
            print(f"tether log: storage error: {exc}", file=sys.stderr, flush=True)
            return _error(503, f"log storage unavailable: {exc}")

    return endpoint


def create_log_app(log: TransparencyLog, admin_token: str | None, node_token: str | None = None) -> Starlette:
    def authorize(request: Request) -> None:
        if admin_token and not _bearer_is(request, admin_token):
            raise _ClientError(401, "logging a release needs the admin token (Authorization: Bearer ...)")

    def authorize_node(request: Request) -> None:
        if node_token and not _bearer_is(request, node_token, admin_token):
            raise _ClientError(401, "announcing a node needs the log's node token (Authorization: Bearer ...)")

    async def key(request: Request) -> Any:
        return {"public_key": log.public_key_b64}

    async def sth(request: Request) -> Any:
        return await run_in_threadpool(log.tree_head)

    async def entries(request: Request) -> Any:
        start = _int_param(request, "start", 1)
        end = _int_param(request, "end", start + MAX_ENTRIES - 1)
        if start < 1 or end < start - 1:
            raise _ClientError(400, f"bad entry range {start}..{end}")
        end = min(end, start + MAX_ENTRIES - 1)
        found = await run_in_threadpool(log.entries, start, end)
        return {"entries": [{"index": i, "entry": e} for i, e in found]}

    async def inclusion(request: Request) -> Any:
        index, size = _int_param(request, "index"), _int_param(request, "size", log.size)
        return {"proof": await run_in_threadpool(log.inclusion_proof, index, size)}

    async def consistency(request: Request) -> Any:
        prior, size = _int_param(request, "prior"), _int_param(request, "size", log.size)
        return {"proof": await run_in_threadpool(log.consistency_proof, prior, size)}

    async def post_release(request: Request) -> Any:
        authorize(request)
        components = await _json_body(request)
        index = await run_in_threadpool(log.release, components)
        return {"index": index, "measurement": log.entry(index)["measurement"]}

    async def get_releases(request: Request) -> Any:
        return {"releases": log.releases()}

    async def post_node(request: Request) -> Any:
        authorize_node(request)
        attestation = await _json_body(request)
        return {"index": await run_in_threadpool(log.announce, attestation)}

    async def get_nodes(request: Request) -> Any:
        return {"nodes": await run_in_threadpool(log.nodes)}

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return _error(exc.status_code, str(exc.detail), headers=exc.headers)

    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        return _error(500, "internal error")

    routes = [
        Route("/v1/log/key", _handler(key), methods=["GET"]),
        Route("/v1/log/sth", _handler(sth), methods=["GET"]),
        Route("/v1/log/entries", _handler(entries), methods=["GET"]),
        Route("/v1/log/proof/inclusion", _handler(inclusion), methods=["GET"]),
        Route("/v1/log/proof/consistency", _handler(consistency), methods=["GET"]),
        Route("/v1/log/releases", _handler(post_release), methods=["POST"]),
        Route("/v1/log/releases", _handler(get_releases), methods=["GET"]),
        Route("/v1/log/nodes", _handler(post_node), methods=["POST"]),
        Route("/v1/log/nodes", _handler(get_nodes), methods=["GET"]),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error, Exception: server_error})
