"""Feature commands: summarize, summarize-text, proofread, rewrite, reply, emoji."""

from __future__ import annotations

import os

import click

from tether.cli import cli
from tether.cli._io import (emit, json_option, load_model, load_router, model_option, parts_progress, read_bytes,
                            read_text, text_option, words_argument)
from tether.features import genmoji, notifications, replies, writing
from tether.features.prompts import SUMMARY_FORMS, TONES


def render_digest(digest: notifications.NotificationDigest) -> str:
    lines = []
    for s in digest.stacks:
        flag = "⚡ " if s.time_sensitive else "  "
        why = f"  [{', '.join(s.reasons)}]" if s.reasons else ""
        kind = " (as sent)" if s.as_sent else " (extractive)" if s.extractive else ""
        lines.append(f"{flag}{s.app} · {s.thread} ({len(s.notifications)}){why}")
        lines.append(f"    {s.summary}{kind}")
        if s.tier != "device":
            lines.append(f"    ── written on {s.tier.replace('_', ' ')}: {s.route}")
    return "\n".join(lines)


@cli.command("summarize")
@click.argument("file", default="-")
@model_option
@json_option
def summarize_cmd(file: str, model: str, as_json: bool) -> None:
    """Summarize a JSON list of notifications (FILE, or - for stdin) into prioritized stacks.

    Each stack is summarized on the device; with a private cloud in the router config, a stack
    whose summary fails the faithfulness check goes there (pseudonymized) before the fallback."""
    raw, name = read_bytes(file)
    items = notifications.parse_notifications(notifications.decode_json(raw, name))
    router = load_router(model)
    load_model(model)
    with parts_progress("summarizing stacks") as progress:
        digest = notifications.summarize_notifications(items, model=model, progress=progress, router=router)
    emit(digest, as_json, render_digest(digest))


@cli.command("summarize-text")
@click.argument("file", default="-")
@text_option
@click.option("--form", type=click.Choice(list(SUMMARY_FORMS)), default="summary", show_default=True)
@model_option
@json_option
def summarize_text_cmd(file: str, inline: str | None, form: str, model: str, as_json: bool) -> None:
    """Summarize text (FILE or - for stdin) as a summary, key points, a list or a table.

    With a private cloud in the router config, a text the device cannot summarize usably (its
    answer and retry invent a number, or give no list or table) goes there, pseudonymized."""
    text = read_text(file, inline)
    router = load_router(model)
    load_model(model)
    with parts_progress("summarizing in parts") as progress:
        result = writing.summarize(text, form, model=model, progress=progress, router=router)  # type: ignore[arg-type]
    note = "\n(the model's output was unusable; these are the text's opening sentences)" if result.fallback else ""
    if result.parts > 1:
        note += f"\n(the text was too long for one pass: summarized from {result.parts} parts)"
    if result.tier != "device":
        note += f"\n── written on {result.tier.replace('_', ' ')}: {result.route}"
    emit(result, as_json, result.text + note)


@cli.command("proofread")
@click.argument("file", default="-")
@text_option
@click.option("--allow-rewording", is_flag=True,
              help="Keep the model's rewording too (by default only corrections are kept).")
@model_option
@json_option
def proofread_cmd(file: str, inline: str | None, allow_rewording: bool, model: str, as_json: bool) -> None:
    """Fix spelling and grammar; list each edit, and what still looks wrong.

    With a private cloud in the router config, a part whose device proofread still shows an
    error (a misspelling, "an" before a consonant, a doubled word…) goes there, pseudonymized."""
    text = read_text(file, inline)
    router = load_router(model)
    load_model(model)
    with parts_progress("proofreading") as progress:
        result = writing.proofread(text, model=model, progress=progress, keep_wording=not allow_rewording,
                                   router=router)
    def lines(edits: list[writing.Edit]) -> str:
        return "\n".join(f"  {e.start}-{e.end}: {e.original!r} → {e.replacement!r}" for e in edits)

    edits = lines(result.edits)
    note = "\n(the model's output was unusable; only the sure fixes were made)" if result.fallback else ""
    if result.undone:
        note += (f"\n{len(result.undone)} rewording(s) not applied (--allow-rewording applies them)\n"
                 + lines(result.undone))
    if result.flagged:
        note += f"\n{len(result.flagged)} possible error(s) left\n" + "\n".join(
            f"  {f.start}-{f.end}: {f.text!r}: {f.why}" for f in result.flagged)
    if result.tier != "device":
        note += f"\n── corrected on {result.tier.replace('_', ' ')}: {result.route}"
    emit(result, as_json, f"{result.corrected.rstrip()}\n\n{len(result.edits)} edit(s)\n{edits}{note}".rstrip())


@cli.command("rewrite")
@click.argument("file", default="-")
@text_option
@click.option("--tone", type=click.Choice(list(TONES)), default="professional", show_default=True)
@model_option
@json_option
def rewrite_cmd(file: str, inline: str | None, tone: str, model: str, as_json: bool) -> None:
    """Rewrite text in a friendly, professional or concise tone.

    With a private cloud in the router config, a text whose device rewrite drops a number or
    runs long, twice, goes there, pseudonymized."""
    text = read_text(file, inline)
    router = load_router(model)
    load_model(model)
    with parts_progress("rewriting") as progress:
        result = writing.rewrite(text, tone, model=model, progress=progress, router=router)  # type: ignore[arg-type]
    warn = f"\n(warning: the rewrite dropped {', '.join(result.missing_numbers)})" if result.missing_numbers else ""
    if result.missing_links:
        warn += f"\n(warning: the rewrite dropped or changed {', '.join(result.missing_links)})"
    if result.added_numbers:
        warn += f"\n(warning: the rewrite has {', '.join(result.added_numbers)}, which the text does not)"
    if result.unfilled:
        warn += f"\n(warning: the rewrite has blanks to fill in: {', '.join(result.unfilled)})"
    if result.lost_question:
        warn += "\n(warning: the text asks something and the rewrite asks nothing; check that it says the same)"
    if result.cut:
        warn += "\n(warning: the model ran long; its answer ends at its last whole sentence)"
    if result.tier != "device":
        warn += f"\n── written on {result.tier.replace('_', ' ')}: {result.route}"
    emit(result, as_json, result.text + warn)


@cli.command("reply")
@click.argument("file", default="-")
@text_option
@click.option("--tier", type=click.Choice(["auto", "device", "private_cloud", "third_party"]), default="auto",
              show_default=True, help="Where to write them; auto: on the device, off it only when it fails.")
@click.option("--consent/--no-consent", default=None,
              help="Allow (or refuse) a third party for this request; default: the saved policy.")
@model_option
@json_option
def reply_cmd(file: str, inline: str | None, tier: str, consent: bool | None, model: str, as_json: bool) -> None:
    """Suggest three short replies to a message or an email.

    With a private cloud in the router config, a message the device cannot answer three ways,
    twice, goes there, pseudonymized; --tier private_cloud sends it there in any case."""
    text = read_text(file, inline)
    router = load_router(model)
    if tier in ("auto", "device"):
        load_model(model)
    result = replies.smart_replies(text, model=model, router=router, tier=tier, consent=consent)  # type: ignore[arg-type]
    note = "\n(some replies are stock ones: the model's were unusable)" if result.fallback else ""
    if result.tier != "device" or tier not in ("auto", "device"):  # off the device, or not where asked
        note += f"\n── written on {result.tier.replace('_', ' ')}: {result.route}"
    emit(result, as_json, "\n".join(f"{i}. {r}" for i, r in enumerate(result.replies, 1)) + note)


@cli.command("emoji")
@words_argument("description")
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Write the emoji here: .png (needs a colour emoji font) or .svg.")
@click.option("--force", is_flag=True, help="Replace the --out file if it exists.")
@click.option("--size", default=256, show_default=True, type=click.IntRange(32, 1024), help="Pixels per side.")
@click.option("--no-model", is_flag=True,
              help="Plan from the description's own words, at once, without the model (no name, yellow background).")
@model_option
@json_option
def emoji_cmd(description: str, out: str | None, force: bool, size: int, no_model: bool, model: str,
              as_json: bool) -> None:
    """Make a new emoji from DESCRIPTION ("a cat wearing sunglasses").

    \b
    The model plans a base and up to two extras; Unicode emoji are layered into a PNG or SVG.
    Where the description joins things that each name an emoji ("a fox wearing goggles"),
    those are the glyphs and the model gives the name and colour.
    An existing --out file is kept unless --force is given."""
    import contextlib
    import tempfile
    from pathlib import Path

    from tether.errors import InputError

    if out is not None and not out.strip():
        raise InputError("--out is empty; name a .png or .svg file")
    if out and Path(out).suffix.lower() not in (".png", ".svg"):
        raise InputError(f"{out}: --out must end in .png or .svg")
    try:
        folder = Path(out).resolve().parent if out else None
        folder_ok = folder is None or folder.is_dir()
    except OSError as exc:  # a name too long, a folder it may not search
        raise InputError(f"{out}: cannot write ({exc.strerror or exc})") from None
    except RuntimeError as exc:  # a link to itself (Python before 3.13 says so with a RuntimeError)
        raise InputError(f"{out}: cannot write ({exc})") from None
    if not folder_ok:
        raise InputError(f"{out}: cannot write (no such directory)")  # before the model runs
    if folder is not None and not os.access(folder, os.W_OK):
        raise InputError(f"{out}: cannot write (permission denied)")
    exists = f"{out} already exists; pass --force to replace it"
    if out and not force and os.path.lexists(out):
        raise InputError(exists)  # before the model runs
    want_png = bool(out) and out.lower().endswith(".png")
    if want_png:
        genmoji.font_path()  # fail before the model runs
    if not no_model:
        load_model(model)
    result = genmoji.create_emoji(description, model=None if no_model else model, size=size, png=want_png)
    if out:
        # A whole file or none: written beside it, then renamed over it, so an interrupted run leaves no half PNG.
        target = Path(out).resolve()  # through a link, as a plain write goes: the link stays
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
            with os.fdopen(fd, "wb") as f:
                f.write(result.png if want_png else result.svg.encode())  # type: ignore[arg-type]
                f.flush()
                os.fsync(f.fileno())
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # what a plain write makes, not mkstemp's 0600
            if not force and os.path.lexists(out):
                raise InputError(exists)  # made while the model ran
            os.replace(tmp, target)
        except OSError as exc:
            raise InputError(f"{out}: cannot write ({exc.strerror or exc})") from None
        finally:
            if tmp is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
    parts = " + ".join(f"{g.char} {g.phrase} ({g.place})" for g in result.glyphs)
    note = "  (from the description's words)" if result.fallback else ""
    if result.unmatched:  # a smiley stood in for the base, an extra was left out: say which
        note += f"\nno emoji{' the font draws' if want_png else ''} for: {', '.join(result.unmatched)}"
    saved = f"\nsaved {out}" if out else ""
    emit(result, as_json, f"{result.text}  {result.name}: {parts}{note}{saved}")
