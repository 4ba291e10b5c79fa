"""Run a Starlette app under uvicorn the way every Tether service should run.

Access logs are off: a line per request would record client addresses and
paths, and the node promises to log metrics only.
"""

from __future__ import annotations

import socket
import sys

import click


def bind(host: str, port: int) -> tuple[socket.socket, str]:
    """Open the listening socket first, so a service knows its own URL (port 0 picks a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if family == socket.AF_INET6 else bound_host
    return sock, f"http://{shown}:{bound_port}"


def run(app, *, host: str, port: int, name: str, sock: socket.socket | None = None) -> None:
    """Serve ``app``; print ``<name> listening on URL`` once it is ready (after its lifespan start-up)."""
    import uvicorn

    if sock is None:
        sock, _ = bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    config = uvicorn.Config(app, access_log=False, log_level="warning", lifespan="on",
                            timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    original_startup = server.startup

    async def startup(sockets=None):
        await original_startup(sockets=sockets)
        if server.started:
            click.echo(f"{name} listening on http://{bound_host}:{bound_port}")
            sys.stdout.flush()

    server.startup = startup
    server.run(sockets=[sock])
