"""``tether index add|status|remove``, ``tether search`` and ``tether ask``."""

from __future__ import annotations

import json

import click

from tether.cli import cli
from tether.cli._io import json_option, load_router, printable, words_argument
from tether.errors import InputError

db_option = click.option("--db", "db", type=click.Path(dir_okay=False), default=None,
                         help="Index file (default: $TETHER_INDEX, else search.sqlite in the user data dir).")


no_wait_option = click.option("--no-wait", is_flag=True,
                               help="If another `tether index add` or `remove` is updating this index, fail at once "
                                    "instead of waiting for it to finish.")


def _waiting(idx) -> None:
    click.echo(f"waiting for another `tether index` run on {printable(idx.shown_path)} to finish…", err=True)


def _open(db: str | None, *, create: bool = False):
    """The index; only ``index add`` creates one (a mistyped --db is an error elsewhere)."""
    from tether.search import Index

    return Index.open(db, create=create)


@cli.group("index")
def index_group() -> None:
    """Build the on-device search index over mail, calendars, notes and records."""


@index_group.command("add")
@click.argument("paths", nargs=-1, required=True)
@db_option
@no_wait_option
@json_option
def add_cmd(paths: tuple[str, ...], db: str | None, no_wait: bool, as_json: bool) -> None:
    """Index files and folders (.eml .mbox .ics .md .markdown .txt .pdf .json .yaml .yml; Apple Mail's Name.mbox
    folders); only changed files are re-read.

    One run at a time per index: a second run waits for the first (and then re-reads nothing it indexed)."""
    from tether.search.index import all_skipped, check_new_paths
    from tether.search.store import default_path, holds_index

    if not holds_index(db or default_path()):  # a new index: a missing path cannot be in it,
        check_new_paths(paths)  # so a typo leaves no index file (nor lock) behind
    idx = _open(db, create=True)
    report = idx.add(paths, progress=not as_json, wait=0 if no_wait else None, on_wait=lambda: _waiting(idx))
    if as_json:
        click.echo(report.model_dump_json(indent=2))
    else:
        click.echo(f"{report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
                   f"{report.removed} removed, {report.chunks} chunks ({report.embedded} embedded) "
                   f"in {report.seconds:.1f} s")
        for path, flags in report.flagged.items():
            click.echo(f"flagged {printable(path)}: {printable(', '.join(flags))}")
        for s in report.skipped:
            click.echo(f"skipped {printable(s.path)}: {printable(s.reason)}", err=True)
    if all_skipped(paths, report):  # a script must notice that nothing it named got in
        raise InputError(f"nothing indexed: {'the file' if len(paths) == 1 else 'every file'} named was skipped")


@index_group.command("status")
@db_option
@json_option
def status_cmd(db: str | None, as_json: bool) -> None:
    """Show what the index holds and which files were skipped."""
    st = _open(db).status()
    if as_json:
        click.echo(st.model_dump_json(indent=2))
        return
    kinds = ", ".join(f"{k} {n}" for k, n in st.by_kind.items()) or "empty"
    click.echo(f"{printable(st.path)}\n{st.documents} documents ({kinds}), {st.chunks} chunks, "
               f"{st.file_bytes / 2**20:.1f} MiB on disk\nmodel: {st.model}")
    if st.outdated:
        click.echo(f"{st.outdated} documents were read by an older Tether; "
                   f"`tether index add` on their files or folders reads them again")
    for p, f in st.flagged.items():
        click.echo(f"flagged {printable(p)}: {printable(', '.join(f))}")
    for s in st.skipped:
        click.echo(f"skipped {printable(s.path)}: {printable(s.reason)}")
    if st.gone:
        click.echo(f"{len(st.gone)} indexed files are no longer on disk (moved or deleted); search leaves them out. "
                   "`tether index add` drops those whose folder is still there, `tether index remove` the others")
    for p in st.gone:
        click.echo(f"gone {printable(p)}")


@index_group.command("remove")
@click.argument("paths", nargs=-1, required=True)
@db_option
@no_wait_option
def remove_cmd(paths: tuple[str, ...], db: str | None, no_wait: bool) -> None:
    """Remove files or folders from the index (the files themselves are not touched)."""
    idx = _open(db)
    removed = idx.remove(paths, wait=0 if no_wait else None, on_wait=lambda: _waiting(idx))
    if not removed:  # a mistyped path: say so and fail, so a script notices
        raise InputError(f"nothing indexed at {' or '.join(paths)}; see `tether index status`")
    click.echo(f"{removed} removed")


def _check_query(text: str) -> str:
    if not text.strip():
        raise InputError("the query is empty")
    return text


@cli.command("search")
@words_argument("query")
@click.option("-k", "--top", "k", type=click.IntRange(1, 100), default=10, show_default=True)
@click.option("--mode", type=click.Choice(["hybrid", "bm25", "dense", "exact"]), default="hybrid", show_default=True,
              help="hybrid: keywords (BM25) and meaning (vectors) fused; bm25: keywords only; dense: vectors only; "
                   "exact: vectors by brute-force float search (a baseline, not phrase matching).")
@db_option
@json_option
def search_cmd(query: str, k: int, mode: str, db: str | None, as_json: bool) -> None:
    """Search the index (BM25 + vectors, fused)."""
    hits = _open(db).search(_check_query(query), k, mode)  # type: ignore[arg-type]
    if as_json:
        click.echo(json.dumps([h.model_dump() for h in hits], indent=2, ensure_ascii=False))
        return
    if not hits:
        click.echo("no results")
    for n, h in enumerate(hits, 1):
        snippet = printable(" ".join(h.text.split())[:160])
        click.echo(f"{n:>2}. {printable(h.title) or '(untitled)'}  [{h.kind}] {printable(h.path)}\n    {snippet}")


@cli.command("ask")
@words_argument("question")
@click.option("-k", "--top", "k", type=click.IntRange(1, 20), default=4, show_default=True)  # ask.TOP_K, not imported: start-up
@click.option("--tier", type=click.Choice(["auto", "device", "private_cloud", "third_party"]), default="auto",
              show_default=True, help="Where to run it; auto lets the router decide ($TETHER_ROUTER_CONFIG).")
@click.option("--consent/--no-consent", default=None,
              help="Allow (or refuse) a third party for this request; default: the saved policy.")
@click.option("--show-context", is_flag=True, help="Print the prompt exactly as the tier received it, then the answer.")
@click.option("--model", "-m", default=None, help="Device model (default: the router config's).")
@db_option
@json_option
def ask_cmd(question: str, k: int, tier: str, consent: bool | None, show_context: bool, model: str | None,
            db: str | None, as_json: bool) -> None:
    """Answer a question from your indexed files; says where it ran and why."""
    from tether.search.ask import ask

    idx = _open(db)
    hits = idx.search(_check_query(question), k)
    if not hits:
        raise InputError(f"nothing in the index at {idx.path} matches; add your files with: tether index add FOLDER "
                         "(a question about anything else: tether route --run \"...\" or tether chat)")
    answer = ask(question, hits, model=model, tier=tier, consent=consent, router=load_router(model))
    if as_json:
        click.echo(answer.model_dump_json(indent=2))
        return
    if show_context:
        click.echo(f"── sent to {answer.tier}\n{printable(answer.sent, lines=True)}\n──")
    click.echo(printable(answer.answer, lines=True))  # a model may repeat what a file held
    for n, h in enumerate(answer.sources, 1):  # the excerpts it was given, not hits that did not fit
        click.echo(f"  [{n}] {printable(h.title) or '(untitled)'} — {printable(h.path)}")
    click.echo(f"── ran on {answer.tier}{' (degraded)' if answer.degraded else ''}: {printable(answer.route)}")
    for note in answer.notes:
        click.echo(f"   {printable(note, lines=True)}")
