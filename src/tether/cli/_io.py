"""Shared CLI plumbing: reading input, loading the model with a spinner, output."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from pydantic import BaseModel
from rich.console import Console

from tether.errors import InputError
from tether.features._common import decode_utf8, read_file
from tether.models import catalog
from tether.models.engine import LlamaEngine, load
from tether.text import require_unicode

err_console = Console(stderr=True)

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_LINES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: object, *, lines: bool = False) -> str:
    """Text from indexed files as a terminal may get it: control characters (C0, DEL, C1) written
    as escapes (``\\x1b``), so a mail Subject's ESC sequence cannot retitle or clear the terminal,
    nor a line break in a file name fake a result line. ``lines`` keeps line breaks and tabs
    (an answer, a prompt). JSON output needs none of this: json escapes them."""
    return (_CONTROL_BUT_LINES if lines else _CONTROL).sub(
        lambda m: _ESCAPES.get(m.group(), f"\\x{ord(m.group()):02x}"), str(text))


model_option = click.option(
    "--model", "-m", default=catalog.DEFAULT_MODEL, show_default=True,
    help="Catalog name, path to a .gguf file, or hf:owner/repo/file.gguf.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


def header_token_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Option callback for a bearer token: checked before anything loads, named as the user gave
    it (the option, or its environment variable)."""
    from click.core import ParameterSource

    from tether.settings import header_token

    from_env = ctx.get_parameter_source(param.name or "") is ParameterSource.ENVIRONMENT and param.envvar
    return header_token(value, f"${param.envvar}" if from_env else (param.opts or [str(param.name)])[0])


def words_argument(name: str, *, required: bool = True):
    """An argument that takes the rest of the line, so `tether ask when is dinner` needs no quotes.
    The words are joined by single spaces; quote the text to keep its own spacing."""
    return click.argument(name, nargs=-1, required=required,
                          callback=lambda _ctx, _param, words: " ".join(words) if words else None)


text_option = click.option("--text", "-t", "inline", metavar="TEXT",
                           help="The text itself, instead of FILE or stdin.")


def read_bytes(source: str) -> tuple[bytes, str]:
    if not source:  # `tether reply ""` would otherwise read the current directory
        raise InputError("the file name is empty: pass a FILE, or - for stdin")
    if source == "-":
        if sys.stdin is None:  # started with stdin closed (`<&-`)
            raise InputError("no input: standard input is closed; pass a FILE or pipe text on stdin")
        if sys.stdin.isatty():
            raise InputError("no input: pass a FILE or pipe text on stdin")
        return sys.stdin.buffer.read(), "stdin"
    return read_file(source), source


def read_text(source: str, inline: str | None = None) -> str:
    """The text of FILE (``-``: stdin), or of ``--text``."""
    if inline is not None:
        if source != "-":
            raise InputError("pass FILE or --text, not both")
        if not inline.strip():
            raise InputError("--text: text is empty")
        return require_unicode(inline, "--text")
    if any(c.isspace() for c in source) and not _exists(source):
        raise InputError(f"{source}: no such file (to pass the text itself, use --text)")
    raw, name = read_bytes(source)
    text = decode_utf8(raw, name)
    if not text.strip():
        raise InputError(f"{name}: text is empty")
    return text


def _exists(source: str) -> bool:
    try:
        return Path(source).exists()
    except OSError:  # text too long to be a file name: the hint to use --text fits it too
        return False


def load_model(model: str) -> LlamaEngine:
    """Load once, with a spinner (and the assembly progress bar on first use)."""
    spec = catalog.resolve(model)
    if catalog.locate(spec) is None:
        catalog.pull(spec, progress=err_console.is_terminal)
    with err_console.status(f"loading {spec.name}…", spinner="dots"):
        return load(model)


@contextmanager
def parts_progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """A callback for a feature's ``progress``: a bar on a terminal's stderr once a text
    turns out to need more than one part; nothing for a short text or a pipe."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=err_console, transient=True, disable=not err_console.is_terminal)
    task = None

    def update(done: int, total: int) -> None:
        nonlocal task
        if total < 2:
            return
        if task is None:
            bar.start()
            task = bar.add_task(label, total=total)
        bar.update(task, completed=done, total=total)

    try:
        yield update
    finally:
        bar.stop()


def load_router(model: str | None = None, *, open_ledger: bool = True):
    """The router the config describes, with ``model`` as its device model (checked like the
    file's). ``open_ledger``: an unusable ledger fails now, not after a generation is spent."""
    from tether.routing.config import RouterConfig
    from tether.routing.router import Router

    router = Router.from_config(RouterConfig.load(device_model=model))
    if open_ledger:
        router.ledger.open()
    return router


def emit(result: BaseModel, as_json: bool, human: str) -> None:
    click.echo(result.model_dump_json(indent=2) if as_json else human)
