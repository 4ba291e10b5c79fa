"""Keep web pages from other sites out of the local gateway.

A gateway on 127.0.0.1 is reachable from any page the user opens. Two checks
close that door:

- **Host** (against DNS rebinding): a page on ``evil.example`` whose name is
  re-pointed at 127.0.0.1 becomes same-origin with the gateway, and could then
  read answers, the routing list, or send text to a third party with forged
  consent. Its requests carry ``Host: evil.example``, so only IP literals,
  ``localhost`` and names given with ``--allow-host`` are served.
- **Origin**: a browser names the page that sent a request. One from another
  origin (or from an opaque ``null`` origin) is refused, so no form or script
  on another site can drive the gateway, whatever the body's content type.

Clients that are not browsers (the ``openai`` package, curl) send no Origin and
a literal or ``localhost`` Host, and pass.

- **Key**, for a gateway bound to a network interface: with ``api_key`` set, a
  client on another machine must send ``Authorization: Bearer <key>`` (401
  otherwise); clients on this machine need none, as on 127.0.0.1.

**CORS allow-list** (``cors_origins``, ``tether serve --cors-origin``): a web app the
user trusts may call the gateway from the browser. A request whose Origin is listed
goes through Starlette's ``CORSMiddleware`` first, so its preflight (OPTIONS, which
carries no Authorization) is answered there, and the real request then meets the Host
and key checks above, its refusals carrying the CORS headers so the page can read them.
Any other Origin takes the path above unchanged and is refused, with no CORS headers.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from tether.errors import InputError
from tether.settings import header_token

CORS_METHODS = ("GET", "POST", "OPTIONS")
# Any request header, for a listed origin only: client libraries add their own (openai-node's
# x-stainless-os, x-stainless-retry-count, x-stainless-timeout… grow with its versions), and a list
# would protect nothing that the origin check and the key do not (Authorization is allowed anyway).
CORS_HEADERS = ("*",)
CORS_EXPOSED = ("X-Tether-Tier", "X-Tether-Rule", "X-Tether-Reason")  # core.route_headers: where a request ran


def host_name(host: str) -> str:
    """``[::1]:8400`` → ``::1``, ``Example.org:80`` → ``example.org``; ``""`` if malformed."""
    try:
        parts = urlsplit("//" + host)
        return (parts.hostname or "").rstrip(".")
    except ValueError:
        return ""


def cors_origin(value: str) -> str:
    """A web origin as browsers send it (``HTTP://LocalHost:80`` → ``http://localhost``); InputError otherwise."""
    if value.strip() == "*":
        raise InputError("--cors-origin '*' would let every web site use the gateway: "
                         "name each origin, like http://localhost:5173")
    bad = InputError(f"--cors-origin {value!r} is not an origin: give scheme://host[:port], "
                     "like http://localhost:5173 (no path)")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise bad from None
    if (parts.scheme.lower() not in ("http", "https") or not parts.hostname or parts.username is not None
            or parts.password is not None or parts.path or parts.query or parts.fragment
            or "?" in value or "#" in value or value != value.strip()):
        raise bad
    scheme, name = parts.scheme.lower(), parts.hostname
    try:
        name = name.encode("idna").decode("ascii")  # browsers send a non-ASCII name in its xn-- form
    except UnicodeError:
        raise bad from None
    if ":" in name:
        name = f"[{name}]"
    if port is not None and port != {"http": 80, "https": 443}[scheme]:
        name = f"{name}:{port}"
    return f"{scheme}://{name}"


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class LocalOnly:
    """ASGI middleware: refuse (403, OpenAI-style JSON) a foreign Host or Origin before the app sees it."""

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str] = (), api_key: str | None = None,
                 cors_origins: Iterable[str] = ()):
        self.app = app
        self.allowed = {"localhost", *(h.lower().rstrip(".") for h in allowed_hosts)}
        self.api_key = header_token(api_key, "api_key").encode() if api_key else None  # type: ignore[union-attr]
        self.cors_origins = frozenset(cors_origin(o) for o in cors_origins)
        # a listed origin's requests: CORS first (it answers the preflight), then the checks below
        self.cors = CORSMiddleware(self.checked, allow_origins=sorted(self.cors_origins), allow_methods=CORS_METHODS,
                                   allow_headers=CORS_HEADERS, expose_headers=CORS_EXPOSED,
                                   allow_private_network=True)  # a listed public site may reach this machine

    def key_ok(self, scope: Scope, headers: dict[str, str]) -> bool:
        if self.api_key is None or is_loopback((scope.get("client") or ("",))[0]):
            return True
        scheme, _, token = headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode("latin-1"), self.api_key)

    def host_allowed(self, name: str) -> bool:
        return bool(name) and (_is_ip(name) or name in self.allowed or name.endswith(".localhost"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.cors_origins and _header(scope, b"origin") in self.cors_origins:
            await self.cors(scope, receive, send)
            return
        await self.checked(scope, receive, send)

    async def checked(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if not self.host_allowed(host_name(host)):
            await _refuse(send, "host_not_allowed",
                          f"Host {host!r} is not served; start the gateway with --allow-host NAME to allow it")
            return
        if not self.key_ok(scope, headers):
            await _refuse(send, "invalid_api_key", "this gateway needs its key from other machines: send "
                          "Authorization: Bearer <key> (the TETHER_GATEWAY_KEY it was started with)", status=401)
            return
        origin = headers.get("origin")
        if (origin is not None and origin not in self.cors_origins
                and not _same_origin(origin, host, scope.get("scheme", "http"))):
            await _refuse(send, "origin_not_allowed",
                          f"requests from the web page at {origin!r} are refused; only the gateway's own "
                          "playground may call it from a browser")
            return
        await self.app(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _same_origin(origin: str, host: str, scheme: str) -> bool:
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return False
    if parts.scheme != scheme or not parts.hostname:
        return False  # includes the opaque "null" origin of sandboxed frames and files
    default = {"http": 80, "https": 443}[scheme] if scheme in ("http", "https") else None
    try:
        host_parts = urlsplit("//" + host)
        host_port = host_parts.port
    except ValueError:
        return False
    return (parts.hostname == host_parts.hostname and (port or default) == (host_port or default))


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _refuse(send: Send, code: str, message: str, status: int = 403) -> None:
    kind = "authentication_error" if status == 401 else "permission_error"
    body = json.dumps({"error": {"message": message, "type": kind, "code": code, "param": None}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
