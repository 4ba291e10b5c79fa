"""``tether chat``: talk to the assistant, each turn routed device-first and streamed.

A question about the user's own things ("when is my flight?") is answered from the on-device
search index when there is one, as ``tether ask`` answers it; arithmetic and nothing else
("what is 17 times 23?") is worked out exactly, without a model; any other turn is plain chat."""

from __future__ import annotations

import json
import sys

import click

from tether.cli import cli
from tether.cli._io import err_console, json_option, load_router, printable, words_argument
from tether.errors import InputError, TetherError

HELP_LINE = "/reset starts over, /help shows this, /exit (or Ctrl-D) quits"


def _turn(router, conversation, text: str, *, system: str | None, tier: str, consent: bool | None,
          max_tokens: int, as_json: bool, index=None) -> None:
    from tether.routing.router import RouteRequest
    from tether.search.ask import personal_hits

    if _calculated_turn(router, conversation, text, as_json=as_json):
        return None
    hits = personal_hits(index, text, follow_up_of=conversation.personal) if index is not None else []
    conversation.personal = text if hits else None
    if hits:
        return _personal_turn(router, conversation, text, hits, system=system, tier=tier, consent=consent,
                              max_tokens=max_tokens, as_json=as_json)
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
                               "degraded": bool(out and out.degraded), "notes": out.notes if out else [],
                               "sources": []},
                              ensure_ascii=False))  # one object per line (JSON Lines) for a conversation
        return
    click.echo()
    where = f"{out.tier}{' (degraded)' if out.degraded else ''}" if out else stream.decision.tier
    click.echo(f"── ran on {where}: {stream.decision.explain()}", err=True)
    for note in out.notes if out else []:
        click.echo(f"   {note}", err=True)


def _calculated_turn(router, conversation, text: str, *, as_json: bool) -> bool:
    """Answer ``text`` if it is a sum (``features.calculator``), with a ledger row; False if not."""
    import time

    from tether.features.calculator import REASON, calculate

    start = time.perf_counter()
    calc = calculate(text)
    if calc is None:
        return False
    notes = router.record_on_device("chat", "calculator", time.perf_counter() - start)
    route = f"device (calculator): {REASON}"
    conversation.add(text, calc.text)
    if as_json:
        click.echo(json.dumps({"answer": calc.text, "tier": "device", "rule": "calculator", "route": route,
                               "degraded": False, "notes": notes, "sources": []}, ensure_ascii=False))
        return True
    click.echo(calc.text)
    click.echo(f"── ran on device: {route}", err=True)
    for note in notes:
        click.echo(f"   {note}", err=True)
    return True


def _personal_turn(router, conversation, text: str, hits, *, system: str | None, tier: str, consent: bool | None,
                   max_tokens: int, as_json: bool) -> None:
    """A turn answered from the user's indexed files: excerpts through the privacy policy before
    any tier off the device, the answer with the files it was given. Not streamed: the answer is
    tidied once whole ("Based on the excerpts, …" dropped)."""
    from tether.search.ask import ask

    answer = ask(text, hits, router=router, tier=tier, consent=consent, max_tokens=max_tokens, instructions=system)
    conversation.add(text, answer.answer)
    sources = [{"title": h.title, "path": h.path, "kind": h.kind} for h in answer.sources]
    if as_json:
        click.echo(json.dumps({"answer": answer.answer, "tier": answer.tier, "rule": answer.rule, "route": answer.route,
                               "degraded": answer.degraded, "notes": answer.notes, "sources": sources},
                              ensure_ascii=False))
        return
    click.echo(printable(answer.answer, lines=True))
    titles = "; ".join(printable(s["title"]) or "(untitled)" for s in sources)
    click.echo(f"── looked in your files: {titles}", err=True)
    where = f"{answer.tier}{' (degraded)' if answer.degraded else ''}"
    click.echo(f"── ran on {where}: {printable(answer.route)}", err=True)
    for note in answer.notes:
        click.echo(f"   {printable(note)}", err=True)


def _personal_index(db: str | None, personal: bool | None):
    """The search index that personal questions are answered from, or None. By default the
    user's index when it exists; ``--personal`` or ``--db`` insist on one (a missing file is an error)."""
    if personal is False:
        return None
    from tether.search import Index, store

    if personal is None and db is None:
        if not store.default_path().exists():
            return None
        try:
            return Index.open(None, create=False)
        except TetherError as exc:  # the user did not ask for it: chat without it, and say why
            why = " ".join(str(exc).split())
            click.echo(f"── personal questions are answered without your files: {why}", err=True)
            return None
    return Index.open(db, create=False)


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
@click.option("--personal/--no-personal", default=None,
              help="Answer questions about your own mail, calendar and files from the search index "
                   "(default: when the index exists).")
@click.option("--db", "db", type=click.Path(dir_okay=False), default=None,
              help="Search index for personal questions (default: $TETHER_INDEX, else search.sqlite in the user "
                   "data dir).")
@json_option
def chat_cmd(prompt: str | None, system: str | None, tier: str, consent: bool | None, model: str | None,
             max_tokens: int, personal: bool | None, db: str | None, as_json: bool) -> None:
    """Chat with the assistant. With PROMPT, answer it and exit; without, hold a conversation
    read line by line from the terminal (or stdin). Each turn says where it ran and why
    (on stderr); the conversation stays in this process only. With --json, one JSON object
    per turn, one per line.

    A question about your own things ("when is my flight?", "do I have anything on Saturday?")
    is answered from your search index (see tether index add), and the turn names the files it
    was given; a sum ("what is 17 times 23?") is worked out exactly, without the model; any
    other question is plain chat."""
    from tether.routing.conversation import Conversation

    if prompt is not None and not prompt.strip():
        raise InputError("the prompt is empty")
    index = _personal_index(db, personal)
    router = load_router(model)
    conversation = Conversation()
    options = dict(system=system, tier=tier, consent=consent, max_tokens=max_tokens, as_json=as_json, index=index)
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
