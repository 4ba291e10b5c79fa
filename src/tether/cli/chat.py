"""``tether chat``: talk to the assistant, each turn routed device-first and streamed."""

from __future__ import annotations

import json
import sys

import click

from tether.cli import cli
from tether.cli._io import err_console, json_option, load_router, words_argument
from tether.errors import InputError, TetherError

HELP_LINE = "/reset starts over, /help shows this, /exit (or Ctrl-D) quits"


def _turn(router, conversation, text: str, *, system: str | None, tier: str, consent: bool | None,
          max_tokens: int, as_json: bool) -> None:
    from tether.routing.router import RouteRequest

    request = RouteRequest(conversation.prompt(text), instructions=system, kind="auto", kind_text=text, feature="chat",
                           max_tokens=max_tokens, tier=tier, consent=consent)
    stream = router.stream(request)
    pieces = []
    for piece in stream:
        pieces.append(piece)
        if not as_json:
            click.echo(piece, nl=False)
    out = stream.response
    answer = "".join(pieces).strip()
    conversation.add(text, answer)
    if as_json:
        click.echo(json.dumps({"answer": answer, "tier": out.tier if out else stream.decision.tier,
                               "rule": stream.decision.rule, "route": stream.decision.explain(),
                               "degraded": bool(out and out.degraded), "notes": out.notes if out else []},
                              ensure_ascii=False))  # one object per line (JSON Lines) for a conversation
        return
    click.echo()
    where = f"{out.tier}{' (degraded)' if out.degraded else ''}" if out else stream.decision.tier
    click.echo(f"── ran on {where}: {stream.decision.explain()}", err=True)
    for note in out.notes if out else []:
        click.echo(f"   {note}", err=True)


def _fitted_turn(router, conversation, text: str, options: dict) -> None:
    """A turn, with the oldest exchanges dropped while the prompt is over the model's window:
    the history is trimmed by characters, and a window is counted in tokens, so once the
    history outgrew it every later turn failed the same way until /reset. The window is
    checked before a token is generated, so nothing was printed for a try that did not fit."""
    from tether.errors import ContextWindowExceededError

    while True:
        try:
            return _turn(router, conversation, text, **options)
        except ContextWindowExceededError:
            if not conversation.drop_oldest():
                raise


def _lines():
    """Lines from stdin, decoded strictly: a line that is not UTF-8 is reported, not fatal."""
    for raw in sys.stdin.buffer:
        try:
            yield raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            yield InputError(f"that line is not valid UTF-8 (byte {exc.start}); nothing was sent")


@cli.command("chat")
@words_argument("prompt", required=False)
@click.option("--system", "-s", default=None, help="Instructions for the assistant.")
@click.option("--tier", type=click.Choice(["auto", "device", "private_cloud", "third_party"]), default="auto",
              show_default=True, help="Where to run each turn; auto lets the router decide ($TETHER_ROUTER_CONFIG).")
@click.option("--consent/--no-consent", default=None,
              help="Allow (or refuse) a third party for these turns; default: the saved policy.")
@click.option("--model", "-m", default=None, help="Device model (default: the router config's).")
@click.option("--max-tokens", default=512, show_default=True, type=click.IntRange(1, 8192))
@json_option
def chat_cmd(prompt: str | None, system: str | None, tier: str, consent: bool | None, model: str | None,
             max_tokens: int, as_json: bool) -> None:
    """Chat with the assistant. With PROMPT, answer it and exit; without, hold a conversation
    read line by line from the terminal (or stdin). Each turn says where it ran and why
    (on stderr); the conversation stays in this process only. With --json, one JSON object
    per turn, one per line."""
    from tether.routing.conversation import Conversation

    if prompt is not None and not prompt.strip():
        raise InputError("the prompt is empty")
    router = load_router(model)
    conversation = Conversation()
    options = dict(system=system, tier=tier, consent=consent, max_tokens=max_tokens, as_json=as_json)
    if prompt is not None:
        _turn(router, conversation, prompt, **options)
        return
    if sys.stdin is None:
        raise InputError("no input: standard input is closed; give a PROMPT or pipe lines on stdin")
    interactive = sys.stdin.isatty()
    if interactive:
        err_console.print(f"[dim]tether chat · {HELP_LINE}[/dim]")
    failed, dropped, lines = False, 0, _lines()
    while True:
        if interactive:
            click.echo("> ", nl=False, err=True)
        line = next(lines, None)
        if line is None or line == "/exit":
            break
        if isinstance(line, InputError):
            click.echo(f"error: {line}", err=True)
            failed = True
            continue
        if not line.strip():
            continue
        if line == "/reset":
            conversation.reset()
            click.echo("── conversation cleared", err=True)
            continue
        if line == "/help":  # a command, not a question for the model
            click.echo(f"── {HELP_LINE}", err=True)
            continue
        try:
            _fitted_turn(router, conversation, line, options)
        except TetherError as exc:  # one turn failed; the conversation and the process go on
            click.echo(f"error: {' '.join(str(exc).split())}", err=True)
            failed = True
        if conversation.dropped > dropped:
            dropped = conversation.dropped
            click.echo(f"── {dropped} older exchange{'s' if dropped != 1 else ''} no longer fit and "
                       f"{'were' if dropped != 1 else 'was'} dropped", err=True)
    if failed and not interactive:
        sys.exit(1)
