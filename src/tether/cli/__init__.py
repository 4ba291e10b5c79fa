"""The ``tether`` command. Each noun group lives in its own module.

Errors Tether raises on purpose print as one line on stderr with exit code 1;
set ``TETHER_RAISE_ERRORS=1`` to see the traceback instead.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import sys

import click

from tether.errors import TetherError


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except TetherError as exc:
            if os.environ.get("TETHER_RAISE_ERRORS"):
                raise
            raise click.ClickException(_one_line(str(exc))) from None
        except click.BadParameter as exc:
            # A file argument that is a folder or unreadable: one line, like every other file error
            if isinstance(getattr(exc.param, "type", None), click.Path):
                raise click.ClickException(_one_line(exc.format_message())) from None
            raise
        except sqlite3.DatabaseError as exc:  # damaged pages, a read-only file, a lock held too long
            if os.environ.get("TETHER_RAISE_ERRORS"):
                raise
            raise click.ClickException(_one_line(f"database error: {exc}")) from None
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


def _one_line(message: str) -> str:
    return " ".join(message.split())


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tether")
@click.option("--threads", type=click.IntRange(1, 256), default=None,
              help="CPU threads for llama.cpp (default: $TETHER_THREADS, else all cores up to 8).")
def cli(threads: int | None) -> None:
    """Tether: on-device-first AI with small local models."""
    if threads:
        os.environ["TETHER_THREADS"] = str(threads)


def main() -> None:
    try:
        _main()
    except KeyboardInterrupt:  # Ctrl-C before a command runs (the imports below take a second): as later, one line
        if sys.stderr is not None:
            sys.stderr.write("interrupted\n")
        raise SystemExit(130) from None


def _main() -> None:
    from tether.cli import chat, cloud, demo, features, log, models, privacy, route, search, serve, stats  # noqa: F401  (registers commands)

    if sys.stdout is None:  # started with stdout closed (`>&-`): whatever it answers would be lost
        _fail("standard output is closed: nothing could be shown")
    try:
        try:
            cli.main(prog_name="tether")
        finally:
            sys.stdout.flush()  # a full disk (`> /dev/full`) fails here, not silently at exit
    except OSError as exc:
        if not _is_output_error(exc):  # a file or folder the command could not use: name it
            where = f"cannot use {os.fsdecode(exc.filename)}: " if exc.filename is not None else "system error: "
            _fail(_one_line(where + (exc.strerror or str(exc))))
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (the interpreter's own flush at exit must not fail again)
        _fail(f"cannot write the output ({exc.strerror or exc})")


# What writing to a pipe, a terminal or a redirected file fails with: a reader gone, a full or
# failing disk. A write to a stream names no file; an OSError about a path always does.
_OUTPUT_ERRNOS = {errno.EPIPE, errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EFBIG, errno.EBADF, errno.ENXIO}


def _is_output_error(exc: OSError) -> bool:
    return exc.filename is None and exc.errno in _OUTPUT_ERRNOS


def _fail(message: str) -> None:
    if sys.stderr is not None:
        sys.stderr.write(f"Error: {message}\n")
    raise SystemExit(1)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
