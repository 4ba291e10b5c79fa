"""How files on disk come and go in a real index: Apple Mail exports, binary files, moves."""

from __future__ import annotations

from pathlib import Path

import pytest

from tether.search import Index


def test_an_apple_mail_export_folder_is_read_as_a_mailbox(index: Index, tmp_path: Path) -> None:
    """``Inbox.mbox/`` is a folder with the messages in a file named ``mbox``: it gave "0 added"."""
    bundle = tmp_path / "Export" / "Inbox.mbox"
    bundle.mkdir(parents=True)
    (bundle / "mbox").write_text("From a@b Mon Jan  5 10:00:00 2026\nFrom: a@b.c\nSubject: Zebra finch\n\n"
                                 "Hello from the zebrafinch aviary.\n\n"
                                 "From c@d Mon Jan  5 11:00:00 2026\nFrom: c@d.e\nSubject: Seeds\n\nMillet order.\n")
    (bundle / "Info.plist").write_text("<?xml version='1.0'?><plist></plist>")
    (bundle / "table_of_contents").write_bytes(b"\x00\x01binary index")
    (tmp_path / "Export" / "mbox").write_text("not in a .mbox folder: no mailbox")
    (tmp_path / "Export" / "photo.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    report = index.add([tmp_path / "Export"])
    assert (report.added, report.chunks) == (1, 2)
    assert [(Path(s.path).name, s.reason[:14]) for s in report.skipped] == [("photo.txt", "binary content")]
    hit = index.search("zebrafinch", 1, "bm25")[0]
    assert hit.path == str(bundle / "mbox") and hit.kind == "mail" and hit.title == "Zebra finch"
    assert index.add([bundle / "mbox"]).unchanged == 1  # named on its own, it is the same mailbox


def test_a_moved_file_reuses_its_vectors_and_a_gone_file_is_not_served(index: Index, tmp_path: Path) -> None:
    """A rename re-embedded the whole file, and the old path kept answering searches until its
    folder was indexed again."""
    notes, archive = tmp_path / "notes", tmp_path / "archive"
    notes.mkdir()
    archive.mkdir()
    (notes / "kiwi.md").write_text("# Kiwi orchard\n\nThe kiwi orchard needs pruning in July.\n\n" + "More text. " * 120)
    (notes / "fig.md").write_text("The fig tree by the shed gives fruit in August.")
    first = index.add([notes])
    assert first.added == 2 and first.embedded >= 3
    vectors = {t: v for t, v in index.con.execute("SELECT text, vec FROM chunks")}

    (notes / "kiwi.md").rename(notes / "kiwi-orchard.md")  # renamed in a folder being indexed
    moved = index.add([notes])
    assert (moved.added, moved.removed, moved.embedded) == (1, 1, 0)
    assert {t: v for t, v in index.con.execute("SELECT text, vec FROM chunks")} == vectors
    assert {Path(h.path).name for h in index.search("kiwi pruning", 5, "bm25")} == {"kiwi-orchard.md"}

    # moved to another folder, and only the new one indexed: the old path is not served meanwhile
    (notes / "fig.md").rename(archive / "fig.md")
    assert index.search("fig tree", 3, "bm25") == []
    assert index.status().gone == [str(notes / "fig.md")]
    elsewhere = index.add([archive])
    assert (elsewhere.added, elsewhere.removed, elsewhere.embedded) == (1, 1, 0)  # the old path is dropped too
    assert [h.path for h in index.search("fig tree", 3, "bm25")] == [str(archive / "fig.md")]
    assert index.status().gone == []


def test_search_fills_the_places_of_gone_files_and_add_keeps_those_whose_folder_is_gone(index: Index,
                                                                                           tmp_path: Path) -> None:
    drive = tmp_path / "drive" / "notes"
    drive.mkdir(parents=True)
    for n in range(6):
        (drive / f"plum{n}.md").write_text(f"Plum jam recipe number {n}: plums, sugar, lemon.")
    index.add([drive])
    for n in range(4):
        (drive / f"plum{n}.md").unlink()
    hits = index.search("plum jam", 3, "bm25")
    assert sorted(Path(h.path).name for h in hits) == ["plum4.md", "plum5.md"]  # not 3 of which 2 are gone
    for n in (4, 5):
        (drive / f"plum{n}.md").unlink()
    drive.rmdir()  # the folder is gone too, as on a drive that is not mounted
    other = tmp_path / "other"
    other.mkdir()
    (other / "pear.md").write_text("pear notes")
    assert index.add([other]).removed == 0
    assert len(index.status().gone) == 6 and index.search("plum jam", 3, "bm25") == []
    from click.testing import CliRunner

    from tether.cli import cli, search as _registers  # noqa: F401

    shown = CliRunner().invoke(cli, ["index", "status", "--db", str(index.path)]).output
    assert "6 indexed files are no longer on disk" in shown and f"gone {drive / 'plum0.md'}\n" in shown
    assert index.remove([drive]) == 6 and index.status().gone == []


def test_a_path_no_file_can_have_is_an_input_error(index: Index, tmp_path: Path) -> None:
    """A NUL or a lone surrogate (text from JSON, not from a command line) in a path raised
    ValueError or UnicodeEncodeError from deep inside, not a Tether error."""
    from tether.errors import InputError

    (tmp_path / "a.md").write_text("apples")
    index.add([tmp_path])
    for bad in (f"{tmp_path}/a.md\x00", f"{tmp_path}/\ud800.md"):
        with pytest.raises(InputError, match="path"):
            index.add([bad])
        with pytest.raises(InputError, match="path"):
            index.remove([bad])
    assert index.status().documents == 1
