"""``tether log serve|release|status``: run and use the private cloud's transparency log."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tether.cli import cli
from tether.cli._io import header_token_option
from tether.errors import InputError
from tether.settings import http_url

log_url_option = click.option("--log", "log_url", required=True, metavar="URL",
                              help="Transparency log base URL, e.g. http://127.0.0.1:8470.")


def _default_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("tether")) / "log"


@cli.group("log")
def log_group() -> None:
    """The private cloud's transparency log of released measurements and node attestations."""


@log_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8470, show_default=True, help="0 picks a free port.")
@click.option("--db", type=click.Path(dir_okay=False), default=None, help="Log database (default: log/log.sqlite in the user data dir).")
@click.option("--key", type=click.Path(dir_okay=False), default=None,
              help="Ed25519 log signing key, created if missing (default: log/log.key in the user data dir).")
@click.option("--admin-token", envvar="TETHER_LOG_ADMIN_TOKEN", default=None, callback=header_token_option,
              help="Bearer token required to log releases (default: $TETHER_LOG_ADMIN_TOKEN).")
@click.option("--node-token", envvar="TETHER_LOG_NODE_TOKEN", default=None, callback=header_token_option,
              help="Bearer token required to announce a node (default: $TETHER_LOG_NODE_TOKEN; "
                   "the admin token is accepted too).")
def serve_cmd(host: str, port: int, db: str | None, key: str | None, admin_token: str | None,
              node_token: str | None) -> None:
    """Serve the log over HTTP until interrupted."""
    from tether.cloud.log import create_log_app
    from tether.cloud.serving import bind, run
    from tether.cloud.transparency import TransparencyLog

    sock, _ = bind(host, port)  # a busy port fails before a key or database is made
    log = TransparencyLog(Path(db) if db else _default_dir() / "log.sqlite",
                          Path(key) if key else _default_dir() / "log.key")
    if not admin_token:
        click.echo("warning: no admin token; anyone who can reach the log can log a release", err=True)
    if not node_token:
        click.echo("warning: no node token; anyone who can reach the log can announce a node that devices "
                   "will send requests to", err=True)
    click.echo(f"log key: {log.public_key_b64}")
    click.echo(f"log size: {log.size}")
    try:
        run(create_log_app(log, admin_token, node_token), host=host, port=port, name="tether log", sock=sock)
    finally:
        log.close()


@log_group.command("release")
@log_url_option
@click.option("--model", "model", required=True, help="Catalog name of the model the nodes run.")
@click.option("--n-ctx", type=click.IntRange(256, 131072), default=4096, show_default=True,
              help="As the nodes will run it (the same range as node serve's).")
@click.option("--max-tokens", type=click.IntRange(1, 32768), default=1024, show_default=True)
@click.option("--upstream", default=None, metavar="URL", help="Upstream the node forwards to, if any.")
@click.option("--model-sha256", default=None, metavar="HEX", help="Model file sha256 (default: the catalog's).")
@click.option("--token", envvar="TETHER_LOG_ADMIN_TOKEN", default=None, callback=header_token_option,
              help="Admin token of the log (default: $TETHER_LOG_ADMIN_TOKEN).")
def release_cmd(log_url: str, model: str, n_ctx: int, max_tokens: int, upstream: str | None,
                model_sha256: str | None, token: str | None) -> None:
    """Log this code release of MODEL, with this config, as a measurement nodes may run."""
    from tether.cloud.attestation import Measurement, code_digest, node_config
    from tether.cloud.transparency import LogClient

    if model_sha256 is None:
        from tether.models.catalog import resolve

        model_sha256 = resolve(model).sha256
        if not model_sha256:
            raise InputError(f"the catalog pins no sha256 for {model!r}; pass --model-sha256")
    if upstream is not None:  # the log is append-only: a release no node can match stays forever
        http_url(upstream, "--upstream")  # checked only: the node measures the value as written
    model_sha256 = model_sha256.lower()
    if len(model_sha256) != 64 or any(c not in "0123456789abcdef" for c in model_sha256):
        raise InputError(f"--model-sha256 must be 64 hex digits, not {model_sha256!r}")
    measurement = Measurement(code=code_digest(), model_sha256=model_sha256,
                              config=node_config(model, n_ctx=n_ctx, max_tokens=max_tokens, upstream=upstream))
    with LogClient(log_url) as client:
        answer = client.submit_release(measurement.components(), token)
    click.echo(f"index: {answer.get('index')}")
    click.echo(f"measurement: {answer.get('measurement')}")


@log_group.command("status")
@log_url_option
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def status_cmd(log_url: str, as_json: bool) -> None:
    """Show the log's verified tree head and how many releases and nodes it lists."""
    from tether.cloud.transparency import LogClient

    with LogClient(log_url) as client:
        sth = client.tree_head()
        releases, nodes = client.releases(), client.nodes()
        key = client.public_key_b64
    if as_json:
        click.echo(json.dumps({"url": log_url, "public_key": key, "size": sth["size"], "root": sth["root"],
                               "timestamp": sth["timestamp"], "releases": len(releases), "nodes": len(nodes)},
                              indent=2))
        return
    click.echo(f"size: {sth['size']}\nroot: {sth['root']}\nreleases: {len(releases)}\nnodes: {len(nodes)}\n"
               f"log key: {key}")
