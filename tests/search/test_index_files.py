"""How files on disk come and go in a real index: Apple Mail exports, binary files, moves."""

from __future__ import annotations

from pathlib import Path

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
