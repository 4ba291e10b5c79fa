"""Run a Starlette app under uvicorn the way every Tether service should run.

Access logs are off: a line per request would record client addresses and
paths, and the node promises to log metrics only. Clients that hold a
connection without finishing a request (slowloris) are cut off: headers must
arrive within ``HEADER_TIMEOUT``, a body within ``BODY_TIMEOUT``, and open
connections are capped, so idle sockets cannot use up the file descriptors.
"""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import click

LISTENING = re.compile(r"listening on (https?://\S+)")
HEADER_TIMEOUT = 10.0  # seconds a connection may take to send a request's headers
BODY_TIMEOUT = 30.0  # seconds a request may take to send its body
MAX_CONNECTIONS = 1000  # past this uvicorn answers 503 at once


class BodyError(Exception):
    """A request body the service will not read: too large, too slow, or abandoned."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


async def read_body(request, limit: int, *, timeout: float = BODY_TIMEOUT) -> bytes:  # type: ignore[no-untyped-def]
    """The whole body, at most ``limit`` bytes, within ``timeout`` seconds; ``BodyError`` otherwise."""
    import anyio
    from starlette.requests import ClientDisconnect

    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise BodyError(413, f"body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        with anyio.fail_after(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise BodyError(413, f"body larger than {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise BodyError(408, f"request body not received within {timeout:g} s") from None
    except ClientDisconnect:
        raise BodyError(400, "client disconnected before sending its body") from None
    return b"".join(chunks)


def json_http_errors() -> dict:
    """Starlette exception handlers that answer an unknown path or method with ``{"error": ...}``."""
    from starlette.exceptions import HTTPException
    from starlette.responses import JSONResponse

    async def handle(request, exc: Exception) -> JSONResponse:  # type: ignore[no-untyped-def]
        assert isinstance(exc, HTTPException)
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    return {HTTPException: handle}


def _protocol() -> type:
    """uvicorn's h11 protocol with a deadline for each request's headers (uvicorn has none)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderDeadline(H11Protocol):  # type: ignore[misc]
        def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
            super().connection_made(transport)
            self._arm_header_deadline()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_header_deadline()

        def _arm_header_deadline(self) -> None:
            waiting = self.cycle  # a new request replaces it

            def expire() -> None:
                if self.cycle is waiting and not self.transport.is_closing():
                    self.transport.close()

            self.loop.call_later(HEADER_TIMEOUT, expire)

    return HeaderDeadline


def bind(host: str, port: int) -> tuple[socket.socket, str]:
    """Open the listening socket first, so a service knows its own URL (port 0 picks a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that name it, and without it
    # Nagle holds a small body written after its headers for the client's delayed ACK (~40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    return sock, url_of(sock)


def url_of(sock: socket.socket) -> str:
    """``http://host:port`` of a bound socket, with an IPv6 host in brackets."""
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if sock.family == socket.AF_INET6 else bound_host
    return f"http://{shown}:{bound_port}"


def run(app, *, host: str, port: int, name: str, sock: socket.socket | None = None,
        on_exit: Callable[[], None] | None = None) -> None:
    """Serve ``app``; print ``<name> listening on URL`` once it is ready (after its lifespan start-up).
    ``on_exit`` runs first thing on Ctrl-C / SIGTERM (in the signal handler: keep it to setting events),
    so open responses can end before uvicorn's graceful-shutdown wait runs out."""
    import uvicorn

    if sock is None:
        sock, _ = bind(host, port)
    url = url_of(sock)
    config = uvicorn.Config(app, access_log=False, log_level="warning", lifespan="on", http=_protocol(),
                            limit_concurrency=MAX_CONNECTIONS, timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    original_startup = server.startup

    async def startup(sockets=None):
        await original_startup(sockets=sockets)
        if server.started:
            click.echo(f"{name} listening on {url}")
            sys.stdout.flush()

    server.startup = startup
    if on_exit is not None:
        handle_exit = server.handle_exit

        def exiting(sig, frame):  # type: ignore[no-untyped-def]
            on_exit()
            handle_exit(sig, frame)

        server.handle_exit = exiting  # type: ignore[method-assign]  (uvicorn installs it as the handler in run)
    server.run(sockets=[sock])


def spawn(cmd: list[str], log: Path, *, stderr: Path | None = None, env: dict[str, str] | None = None,
          cwd: Path | None = None, timeout: float = 180.0) -> tuple[subprocess.Popen, str]:
    """Start a service that announces itself like ``run`` does; return it and its URL once it listens.

    Output goes to ``log`` (stderr too, unless ``stderr`` names its own file). If the
    process exits or stays silent past ``timeout``, ``RuntimeError`` carries its output.
    """
    with log.open("wb") as out, (stderr.open("wb") if stderr else contextlib.nullcontext(subprocess.STDOUT)) as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=cwd)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = LISTENING.search(log.read_text(errors="replace"))
        if match:
            return proc, match.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    stop(proc)
    output = log.read_text(errors="replace") + (stderr.read_text(errors="replace") if stderr else "")
    raise RuntimeError(f"{' '.join(cmd[:4])} did not start (exit {proc.returncode}):\n{output[-4000:]}")


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it does not exit within ``timeout``."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
