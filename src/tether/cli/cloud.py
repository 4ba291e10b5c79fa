"""``tether node serve``, ``tether relay serve`` and ``tether cloud nodes|chat``."""

from __future__ import annotations

import json
import threading

import click

from tether.cli import cli
from tether.cli._io import header_token_option, json_option, words_argument
from tether.errors import InputError
from tether.settings import cloud_state_path, http_url

log_url_option = click.option("--log", "log_url", envvar="TETHER_LOG_URL", default=None,
                              help="Read the transparency log here (env TETHER_LOG_URL). Default: through the "
                                   "relay, so the log never sees this device's address.")
relay_url_option = click.option("--relay", "relay_url", envvar="TETHER_RELAY_URL", required=True,
                                help="Relay URL (env TETHER_RELAY_URL).")
log_key_option = click.option("--log-key", envvar="TETHER_LOG_KEY", default=None,
                              help="Pinned log public key (base64). Without it the first key seen is kept.")


def _client(log_url: str | None, relay_url: str, log_key: str | None, k: int = 2, model: str | None = None,
            deadline: float | None = None):
    from tether.cloud.client import DEADLINE, CloudClient

    return CloudClient(log_url, relay_url, log_key=log_key, state_path=cloud_state_path(), k=k, model=model,
                       deadline=DEADLINE if deadline is None else deadline)


@cli.group("node")
def node_group() -> None:
    """Run a private-cloud node."""


@node_group.command("serve")
@click.option("--model", "-m", default="qwen2.5-1.5b", show_default=True, help="Catalog name or .gguf path.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8480, show_default=True, type=click.IntRange(0, 65535))
@click.option("--log", "log_url", envvar="TETHER_LOG_URL", default=None,
              help="Announce this node's attestation to this transparency log.")
@click.option("--public-url", default=None,
              help="The address the relay reaches this node at, as announced (default: the one it listens "
                   "on; needed with --host 0.0.0.0, behind NAT or a load balancer).")
@click.option("--log-token", envvar="TETHER_LOG_NODE_TOKEN", default=None, callback=header_token_option,
              help="The log's node token, if it wants one (default: $TETHER_LOG_NODE_TOKEN).")
@click.option("--upstream", default=None,
              help="Front an OpenAI-compatible engine at this URL (vLLM, llama.cpp server) instead of "
                   "running the model in-process.")
@click.option("--upstream-model", default=None, help="Model name to ask the upstream engine for.")
@click.option("--allow-remote-upstream", is_flag=True,
              help="Let --upstream name another host (the node sends it decrypted requests over plain HTTP; "
                   "by default only a loopback address is taken).")
@click.option("--model-sha256", default=None, metavar="HEX",
              help="With --upstream: sha256 of the weights the engine serves (64 hex digits; needed unless the "
                   "catalog pins one for --model).")
@click.option("--n-ctx", default=4096, show_default=True, type=click.IntRange(256, 131072))
@click.option("--max-tokens", default=1024, show_default=True, type=click.IntRange(1, 32768),
              help="Cap on tokens per answer.")
@click.option("--concurrency", default=None, type=click.IntRange(1, 256),
              help="Requests generated at once (default 1 in-process, 16 upstream).")
@click.option("--metrics-token", envvar="TETHER_NODE_METRICS_TOKEN", default=None, callback=header_token_option,
              help="Show /v1/info's request counters only to callers sending this bearer token (default: "
                   "$TETHER_NODE_METRICS_TOKEN; unset: to no one, as they reveal each answer's timing).")
@click.option("--reattest-every", default=None, type=click.FloatRange(1, 86400),
              help="With --log: re-sign and re-announce the attestation every this many seconds "
                   "[default: 1800; devices refuse attestations older than two hours].")
def node_serve(model: str, host: str, port: int, public_url: str | None, log_url: str | None, log_token: str | None,
               upstream: str | None, upstream_model: str | None, allow_remote_upstream: bool,
               model_sha256: str | None, n_ctx: int, max_tokens: int,
               concurrency: int | None, metrics_token: str | None, reattest_every: float | None) -> None:
    """Serve MODEL behind HPKE envelopes; with --log, publish the attestation first."""
    from tether.cloud.attestation import REATTEST_EVERY, node_url_problem
    from tether.cloud.node import Node, NodeSettings
    from tether.cloud.serving import bind, run

    if log_url:
        log_url = http_url(log_url, "--log")  # before the model loads and is measured
    settings = NodeSettings(model=model, n_ctx=n_ctx, max_tokens=max_tokens, upstream=upstream,
                            upstream_model=upstream_model, model_sha256=model_sha256,
                            allow_remote_upstream=allow_remote_upstream,
                            concurrency=concurrency or (16 if upstream else 1), metrics_token=metrics_token or None)
    if public_url is not None and (problem := node_url_problem(public_url)):
        raise InputError(f"--public-url {public_url[:200]} {problem}")
    sock, url = bind(host, port)
    url = public_url.rstrip("/") if public_url else url
    if log_url and (problem := node_url_problem(url)):
        sock.close()
        raise InputError(f"this node would announce {url}, which {problem}; give --public-url")
    node = Node(settings, url)
    click.echo(f"node {node.node_id} model={node.backend.name} measurement={node.measurement.digest} "
               f"tokens/s={node.tokens_per_second:.1f}")
    if log_url:
        index = node.announce(log_url, log_token)
        click.echo(f"attestation logged at index {index}")
        node.keep_attested(log_url, reattest_every or REATTEST_EVERY, threading.Event(), log_token)
    run(node.app(), host=host, port=port, name="tether node", sock=sock)


@cli.group("relay")
def relay_group() -> None:
    """Run the OHTTP-style relay between devices and nodes."""


@relay_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8490, show_default=True, type=click.IntRange(0, 65535))
@click.option("--log", "log_url", envvar="TETHER_LOG_URL", default=None,
              help="Route to the nodes this transparency log lists.")
@click.option("--node", "nodes", multiple=True, metavar="ID=URL", help="A node to route to (repeatable).")
def relay_serve(host: str, port: int, log_url: str | None, nodes: tuple[str, ...]) -> None:
    """Forward sealed requests to nodes without seeing content or passing on client addresses."""
    from tether.cloud.relay import Relay
    from tether.cloud.serving import run

    static: dict[str, str] = {}
    for item in nodes:
        node_id, sep, url = item.partition("=")
        if not sep or not node_id.strip() or not url.startswith(("http://", "https://")):
            raise InputError(f"--node expects ID=URL, got {item!r}")
        if node_id in static:
            raise InputError(f"--node {node_id} is given twice")
        static[node_id] = http_url(url, f"--node {node_id}")
    if not log_url and not static:
        raise InputError("give --log or at least one --node")
    run(Relay(log_url, static).app(), host=host, port=port, name="tether relay")


@cli.group("cloud")
def cloud_group() -> None:
    """Use the private cloud from this device."""


@cloud_group.command("nodes")
@log_url_option
@relay_url_option
@log_key_option
@json_option
def cloud_nodes(log_url: str | None, relay_url: str, log_key: str | None, as_json: bool) -> None:
    """List the nodes the log knows, and whether this device trusts each one."""
    client = _client(log_url, relay_url, log_key)
    verdicts = client.refresh()
    if as_json:
        click.echo(json.dumps([v.__dict__ for v in verdicts], indent=2))
        return
    if not verdicts:
        click.echo("the transparency log lists no nodes")
    for v in verdicts:
        click.echo(f"{v.node_id}  {'trusted' if v.trusted else 'REFUSED'}  {v.model}  {v.reason}")


@cloud_group.command("chat")
@words_argument("prompt")
@log_url_option
@relay_url_option
@log_key_option
@click.option("--max-tokens", default=256, show_default=True, type=click.IntRange(1, 32768))
@click.option("--temperature", default=0.0, show_default=True, type=click.FloatRange(0, 2))
@click.option("--stream/--no-stream", default=True, show_default=True)
@click.option("--model", default=None, help="Only use nodes serving this model.")
@click.option("--deadline", default=None, type=click.FloatRange(0, 3600, min_open=True),
              help="Seconds the request may take, reading the log, every retry and the whole answer "
                   "included [default: 150].")
@click.option("--consent/--no-consent", default=None,
              help="Agree (or refuse) to send this prompt, where the privacy policy makes the private cloud "
                   "need consent [default: the router config's consent].")
def cloud_chat(prompt: str, log_url: str | None, relay_url: str, log_key: str | None, max_tokens: int,
               temperature: float, stream: bool, model: str | None, deadline: float | None,
               consent: bool | None) -> None:
    """Send PROMPT to a verified node through the relay and print the answer.

    The privacy policy for the private_cloud tier applies, as in the router: a secret keeps
    the prompt on this device (an error, nothing is sent), personal data goes out pseudonymized
    and the answer comes back with the originals restored; where the policy says the private
    cloud needs consent, nothing is sent without it (--consent, or consent = "always")."""
    from tether.errors import ConsentRequiredError
    from tether.privacy.guard import PrivacyGuard
    from tether.routing.config import RouterConfig

    if not prompt.strip():
        raise InputError("the prompt is empty")
    guard = PrivacyGuard.from_file()
    if guard.config.requires_consent("private_cloud"):  # asked before a connection is made
        given = RouterConfig.load().consent_for(consent)
        if given is not True:
            raise ConsentRequiredError("private_cloud", "consent was refused" if given is False
                                       else "consent was not given (pass --consent)")
    client = _client(log_url, relay_url, log_key, model=model, deadline=deadline)
    body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens, "temperature": temperature}
    client.check_size(body)  # a prompt over the relay's limit is refused before it is scanned or sent
    session = guard.session()
    outbound = guard.prepare(prompt, "private_cloud", session=session)
    body["messages"][0]["content"] = outbound.require_payload()  # MustStayOnDeviceError: one line, nothing sent
    replaced = sum(e.count for e in outbound.entities if e.action == "pseudonymize")
    if replaced:
        click.echo(f"[{replaced} personal value{'s' if replaced != 1 else ''} pseudonymized before sending]", err=True)
    if stream:
        answer = client.stream(body)
        restorer = session.restorer()
        for chunk in answer:
            if chunk.get("x_tether", {}).get("restart"):  # a failover node answers from the start
                restorer = session.restorer()  # what the first node's answer held back is dropped with it
                click.echo()
                click.echo("[node failed mid-answer; the answer starts over on another node]", err=True)
            click.echo(restorer.feed(_text(chunk, "delta")), nl=False)
        click.echo(restorer.flush())
        click.echo(f"[node {', '.join(answer.nodes)}; failovers {answer.failovers}]", err=True)
    else:
        out = client.chat(body)
        click.echo(session.restore(_text(out, "message")))
        click.echo(f"[node {(out.get('x_tether') or {}).get('node')}]", err=True)


def _text(frame: dict, part: str) -> str:
    """The first choice's ``delta`` or ``message`` content; "" for anything else (the client has
    checked each frame's shape, so this only keeps an odd one from becoming a traceback)."""
    choices = frame.get("choices") if isinstance(frame, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices else None
    content = choice.get(part) if isinstance(choice, dict) else None
    text = content.get("content") if isinstance(content, dict) else None
    return text if isinstance(text, str) else ""
