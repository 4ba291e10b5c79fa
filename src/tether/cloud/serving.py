"""Run a Starlette app under uvicorn the way every Tether service should run.

Access logs are off: a line per request would record client addresses and
paths, and the node promises to log metrics only.
"""

from __future__ import annotations

import sys

import click


def run(app, *, host: str, port: int, name: str) -> None:
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, access_log=False, log_level="warning",
                            lifespan="on", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    # One parseable line so that scripts and tests know when the port is open.
    original_startup = server.startup

    async def startup(sockets=None):
        await original_startup(sockets=sockets)
        if server.started:
            bound = server.servers[0].sockets[0].getsockname() if server.servers else (host, port)
            click.echo(f"{name} listening on http://{bound[0]}:{bound[1]}", err=False)
            sys.stdout.flush()

    server.startup = startup
    server.run()
