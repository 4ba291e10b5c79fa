"""``tether serve``: the local OpenAI-compatible gateway (point an app's base URL at it)."""

from __future__ import annotations

import click

from tether.cli import cli
from tether.cli._io import load_model, load_router


def search_index(host: str, index: str | None) -> str | None:
    """The index /v1/search and /v1/ask read: ``--index``, else on loopback the user's own (read
    when a search comes, so one built later is found); on a network interface none unless named."""
    from tether.gateway.local_only import is_loopback

    if index is not None or not (is_loopback(host) or host == "localhost"):
        return index
    from tether.search.store import default_path

    return str(default_path())


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on. The default keeps the gateway on this machine.")
@click.option("--port", default=8400, show_default=True, type=click.IntRange(0, 65535), help="0 picks a free port.")
@click.option("--model", default=None,
              help="Device model: a catalog name, a path to a .gguf file, or hf:owner/repo/file.gguf "
                   "(default: the router config's).")
@click.option("--max-body", default=1_000_000, show_default=True, type=click.IntRange(1024, 1 << 30),
              help="Largest request body in bytes (413 above it).")
@click.option("--max-streams", default=4, show_default=True, type=click.IntRange(1, 1024),
              help="Concurrent streamed completions (429 above it).")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="NAME",
              help="Also serve requests addressed to this host name (IP addresses and localhost always are; "
                   "other names are refused against DNS rebinding). Repeatable.")
@click.option("--max-tokens-cap", default=1024, show_default=True, type=click.IntRange(1, 1 << 20),
              help="Most tokens one answer may generate; a larger max_tokens is cut to it (and says so).")
@click.option("--cors-origin", "cors_origins", multiple=True, metavar="ORIGIN",
              help="Let the web app at this origin (scheme://host[:port], e.g. http://localhost:5173) call the "
                   "gateway from the browser; every other origin stays refused. Repeatable; '*' is refused.")
@click.option("--no-key", is_flag=True,
              help="Serve a non-loopback --host without TETHER_GATEWAY_KEY: anyone on that network may use it.")
@click.option("--index", "index", type=click.Path(dir_okay=False), default=None,
              help="Search index for /v1/search and /v1/ask (default: $TETHER_INDEX, else search.sqlite in the user "
                   "data dir; a gateway on a network interface shares one only when given this).")
def serve_cmd(host: str, port: int, model: str | None, max_body: int, max_streams: int,
              allow_hosts: tuple[str, ...], max_tokens_cap: int, cors_origins: tuple[str, ...], no_key: bool,
              index: str | None) -> None:
    """Serve /v1/chat/completions, /v1/models and the feature endpoints on HOST:PORT.

    Bound to a network interface (--host 0.0.0.0), the gateway needs a key from other
    machines: set TETHER_GATEWAY_KEY and send it as "Authorization: Bearer KEY". It then
    offers no search over your files unless --index names the index to share."""
    import os
    import socket

    from tether.cloud.serving import bind, run
    from tether.errors import InputError
    from tether.gateway import create_app
    from tether.gateway.local_only import cors_origin, is_loopback
    from tether.settings import header_token

    try:  # a typo ("999.1.1.1") is named as such, not taken for a network address that needs a key
        socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError):
        raise InputError(f"--host {host!r} is not an IP address or a host name that resolves") from None
    key = header_token(os.environ.get("TETHER_GATEWAY_KEY") or None, "$TETHER_GATEWAY_KEY")
    if key is None and not no_key and not (is_loopback(host) or host == "localhost"):
        raise InputError(f"--host {host} lets other machines use every tier, and consent to a third party "
                         "on your account: set TETHER_GATEWAY_KEY to require a key, or pass --no-key")
    origins = tuple(cors_origin(o) for o in cors_origins)  # one line for a bad one, before the model loads
    index = search_index(host, index)

    router = load_router(model, open_ledger=False)  # the app opens the ledger as it starts
    load_model(router.device.model)  # a bad model file is one line here, not a failed start inside uvicorn
    app = create_app(router, max_body=max_body, max_streams=max_streams, max_tokens_cap=max_tokens_cap,
                     allowed_hosts=(host, *allow_hosts), api_key=key, cors_origins=origins, search_index=index)
    sock, _ = bind(host, port)
    run(app, host=host, port=port, name="tether gateway", sock=sock, on_exit=app.state.gateway.stop_generations)
