"""Indexing behaviour on a real SQLite file with the real embedding model."""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from tether.search import Index


def top_paths(idx: Index, query: str, k: int = 3, mode: str = "hybrid") -> list[str]:
    return [Path(h.path).name for h in idx.search(query, k, mode)]  # type: ignore[arg-type]


def test_index_and_search_each_kind(index: Index, corpus: dict[str, Path]) -> None:
    report = index.add([corpus["mail"].parent])
    assert report.added == 4 and not report.skipped
    assert top_paths(index, "when is my teeth cleaning appointment")[0] == "dentist.ics"
    assert top_paths(index, "birthday party for John")[0] == "party.eml"
    assert top_paths(index, "how long to bake bread", mode="dense")[0] == "sourdough.md"
    hits = index.search("Volvo insurance renewal", 1)
    assert hits[0].item == "7" and "June 3" in hits[0].text  # one YAML record is one item
    st = index.status()
    assert st.by_kind == {"calendar": 1, "mail": 1, "note": 1, "record": 1}


def test_incremental_update_and_delete(index: Index, corpus: dict[str, Path]) -> None:
    root = corpus["mail"].parent
    index.add([root])
    again = index.add([root])
    assert (again.added, again.updated, again.unchanged, again.chunks) == (0, 0, 4, 0)

    # touched but identical: hash matches, nothing re-embedded
    os.utime(corpus["note"], ns=(time.time_ns(), time.time_ns() + 10**9))
    touched = index.add([root])
    assert (touched.updated, touched.unchanged, touched.chunks) == (0, 4, 0)

    corpus["note"].write_text("# Pancakes\n\nWhisk two eggs with milk and flour, fry in butter.\n")
    changed = index.add([root])
    assert (changed.added, changed.updated, changed.unchanged) == (0, 1, 3)
    assert top_paths(index, "pancakes eggs milk", 1) == ["sourdough.md"]
    assert not any("starter" in h.text for h in index.search("sourdough starter flour water", 10, "bm25"))

    corpus["mail"].unlink()
    gone = index.add([root])
    assert gone.removed == 1
    assert "party.eml" not in top_paths(index, "birthday party for John", 10)
    assert index.status().documents == 3
    con = index.con
    # no orphans anywhere: chunks, FTS rows and the in-memory vectors agree
    n_chunks = con.execute("SELECT count(*) FROM chunks").fetchone()[0]
    assert con.execute("SELECT count(*) FROM chunks_fts").fetchone()[0] == n_chunks
    assert len(index.vectors().ids) == n_chunks

    assert index.remove([root]) == 3
    assert index.status().documents == 0 and index.search("party") == []


def test_corrupt_and_unreadable_files_are_skipped_and_reported(index: Index, corpus: dict[str, Path]) -> None:
    root = corpus["mail"].parent
    (root / "broken.json").write_text('{"title": "x", ')
    (root / "garbage.eml").write_bytes(b"\x00\x01\x02 not a mail")
    (root / "not-a-calendar.ics").write_text("hello")
    locked = root / "locked.md"
    locked.write_text("secret")
    locked.chmod(0)
    try:
        report = index.add([root])
    finally:
        locked.chmod(0o644)
    skipped = {Path(s.path).name: s.reason for s in report.skipped}
    assert {"broken.json", "garbage.eml", "not-a-calendar.ics"} <= set(skipped)
    assert "cannot parse" in skipped["broken.json"]
    if os.geteuid() != 0:  # root can read a 000 file
        assert "cannot read" in skipped["locked.md"]
    assert report.added >= 4  # the good files are all there
    assert top_paths(index, "birthday party for John")[0] == "party.eml"
    assert {Path(s.path).name for s in index.status().skipped} >= {"broken.json", "garbage.eml"}

    # fixing the file clears it from the skipped list
    (root / "broken.json").write_text('{"title": "Passport renewal", "body": "Renew the passport before July."}')
    index.add([root])
    assert "broken.json" not in {Path(s.path).name for s in index.status().skipped}
    assert top_paths(index, "passport renewal", 1) == ["broken.json"]


def test_non_utf8_is_decoded_with_replacement_and_flagged(index: Index, tmp_path: Path) -> None:
    f = tmp_path / "latin1.txt"
    f.write_bytes("Réunion au café à Montréal jeudi".encode("latin-1"))
    report = index.add([f])
    assert report.flagged == {str(f.absolute()): ["non-utf8"]}
    hit = index.search("Montr", 1, "bm25") or index.search("jeudi", 1, "bm25")
    assert "\ufffd" in hit[0].text and "jeudi" in hit[0].text
    assert index.status().flagged == {str(f.absolute()): ["non-utf8"]}


def test_huge_file_is_chunked(index: Index, tmp_path: Path) -> None:
    f = tmp_path / "big.txt"
    paragraphs = [f"Paragraph {i} talks about topic number {i} in some detail." for i in range(600)]
    paragraphs[417] = "The hidden treasure is buried under the old oak tree by the lighthouse."
    f.write_text("\n\n".join(paragraphs) + "\n\n" + "x" * 5000)  # plus one run-on with no breaks
    report = index.add([f])
    assert report.chunks > 30
    lengths = [len(t) for (t,) in index.con.execute("SELECT text FROM chunks")]
    assert max(lengths) <= 1000
    assert "lighthouse" in index.search("where is the treasure buried", 1)[0].text


def test_mbox_gives_one_item_per_message(index: Index, tmp_path: Path) -> None:
    box = tmp_path / "inbox.mbox"
    box.write_text("From a@x Mon Jan  1 00:00:00 2024\nFrom: a@x.com\nSubject: Invoice 991\n\nPlease pay invoice 991.\n\n"
                   "From b@x Mon Jan  1 00:00:00 2024\nFrom: b@x.com\nSubject: Ski trip\n\nSki trip to Zermatt in March.\n")
    report = index.add([box])
    assert report.chunks == 2
    assert index.search("skiing holiday in the mountains", 1)[0].title == "Ski trip"


def test_index_from_a_newer_tether_is_refused(tmp_path: Path) -> None:
    from tether.errors import IndexStoreError

    db = tmp_path / "future.sqlite"
    con = sqlite3.connect(db)
    con.execute("PRAGMA user_version=99")
    con.close()
    with pytest.raises(IndexStoreError, match="newer"):
        Index.open(db)
    (tmp_path / "junk.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(IndexStoreError, match="not a usable search index"):
        Index.open(tmp_path / "junk.sqlite")


def test_an_index_whose_folder_is_a_file_says_so(tmp_path: Path) -> None:
    """mkdir(exist_ok=True) on a parent that is a file raises FileExistsError: the index said
    "cannot open (File exists)", which reads as if all were well."""
    from tether.errors import IndexStoreError

    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    with pytest.raises(IndexStoreError, match=f"{blocker} is a file, not a folder") as info:
        Index.open(blocker / "index.sqlite")
    assert "File exists" not in str(info.value)
    with pytest.raises(IndexStoreError, match=f"a folder on the way to {blocker / 'sub'} is a file"):
        Index.open(blocker / "sub" / "index.sqlite")
    assert blocker.read_text() == "a file, not a folder"


def test_search_does_not_import_torch(tmp_path: Path, corpus: dict[str, Path]) -> None:
    import subprocess

    code = ("import sys; from tether.search import Index; i = Index.open(sys.argv[1]); i.add([sys.argv[2]]); "
            "i.search('party'); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "i.sqlite"), str(corpus["mail"].parent)],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_compressed_dense_search_agrees_with_exact(index: Index, tmp_path: Path) -> None:
    from tether.search import query as Q

    data = tmp_path / "many"
    data.mkdir()
    topics = ["tax return", "flight to Lisbon", "piano lesson", "vet visit for the cat", "quarterly report",
              "garden fence repair", "wedding gift list", "server outage postmortem"]
    for i, t in enumerate(topics):
        (data / f"{i}.md").write_text(f"# {t}\n\nNotes about the {t}, with details and dates.\n")
    index.add([data])
    vecs = index.vectors()
    per_chunk = (vecs.ids.nbytes + vecs.codes.nbytes + vecs.nibbles.nbytes) / len(vecs.ids)
    assert per_chunk == 248  # float32 would take 1,536
    from tether.search import embed

    for t in ["plane tickets to Portugal", "animal doctor appointment", "taxes"]:
        qv = embed.query(t)
        exact = [c for c, _ in Q.exact(index.con, qv, 3)]
        dense = [c for c, _ in Q.dense(index.con, vecs, qv, 3, candidates=4, rescore=2)]
        assert dense[0] == exact[0]  # with fewer candidates than chunks, all three stages run


def _pdf(lines: list[str]) -> bytes:
    """A minimal one-page PDF with a text layer (no PDF writer is a dependency)."""
    content = "BT /F1 12 Tf 72 720 Td " + " ".join(f"({line}) Tj 0 -16 Td" for line in lines) + " ET"
    objs = ["<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            "/Resources << /Font << /F1 5 0 R >> >> >>",
            f"<< /Length {len(content)} >>\nstream\n{content}\nendstream",
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = b"%PDF-1.4\n", []
    for i, o in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{o}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    return out + f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()


def test_pdf_text_is_indexed_and_a_broken_pdf_is_skipped(index: Index, tmp_path: Path) -> None:
    (tmp_path / "lease.pdf").write_bytes(_pdf(["Lease agreement for the flat", "Monthly rent is 1450 euros"]))
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not really a pdf")
    report = index.add([tmp_path])
    assert report.added == 1 and [Path(s.path).name for s in report.skipped] == ["broken.pdf"]
    hit = index.search("how much is the rent for my apartment", 1)[0]
    assert Path(hit.path).name == "lease.pdf" and hit.kind == "document" and "1450" in hit.text


def test_pipes_and_undecodable_file_names_in_a_folder_are_skipped_not_fatal(index: Index, tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    (d / "a.md").write_text("apricot jam recipe")
    os.mkfifo(d / "pipe.txt")  # reading it would block forever
    (d / os.fsdecode(b"caf\xe9.md")).write_text("latin-1 name")
    (d / "z.md").write_text("zebra crossing")
    report = index.add([d])
    assert report.added == 2
    assert {(Path(s.path).name, s.reason) for s in report.skipped} == {
        ("pipe.txt", "not a regular file"), ("caf\ufffd.md", "the file name is not valid UTF-8")}
    assert {Path(s.path).name for s in index.status().skipped} == {"pipe.txt", "caf\ufffd.md"}
    assert top_paths(index, "zebra", 1, "bm25") == ["z.md"]
    assert index.add([d]).unchanged == 2  # and again, without hanging or failing
    # the skip is kept under the name as shown (U+FFFD), not taken for a file gone, also when
    # another folder is added
    other = tmp_path / "other"
    other.mkdir()
    (other / "b.md").write_text("banana bread")
    index.add([other])
    assert str(d / "caf\ufffd.md") in {s.path for s in index.status().skipped}
    (d / os.fsdecode(b"caf\xe9.md")).unlink()  # and it leaves when the file does
    index.add([d])
    assert str(d / "caf\ufffd.md") not in {s.path for s in index.status().skipped}


def test_one_malformed_message_does_not_lose_the_mailbox(index: Index, tmp_path: Path) -> None:
    box = tmp_path / "inbox.mbox"
    box.write_text("From a@x Mon Jan  1 00:00:00 2024\nFrom: a@x.com\nSubject: Dentist appointment\n"
                   "Message-ID: <good@x>\n\nThe dentist moved you to Monday.\n\n"
                   "From b@x Mon Jan  1 00:00:00 2024\nFrom: b@x.com\nSubject: Broken id\nMessage-ID: <\n\n"
                   "Gallery opening on Friday.\n")
    report = index.add([box])
    assert report.added == 1 and report.skipped == []
    assert index.search("dentist", 1, "bm25")[0].title == "Dentist appointment"
    assert index.search("gallery", 1, "bm25")[0].title == "Broken id"


def test_a_file_that_stops_parsing_leaves_the_index_and_its_skip_goes_with_the_file(index: Index, tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    record = d / "r.json"
    record.write_text('{"booking": "XK12345"}')
    index.add([d])
    assert top_paths(index, "XK12345", 1, "bm25") == ["r.json"]
    record.write_text('{"booking": ')
    report = index.add([d])
    assert [Path(s.path).name for s in report.skipped] == ["r.json"]
    assert index.search("XK12345", 3, "bm25") == []  # the old content is not served any more
    assert index.status().documents == 0
    record.unlink()
    index.add([d])
    assert index.status().skipped == []  # a skipped file deleted since leaves the report


def test_paths_are_normalised_and_a_deleted_folder_leaves_the_index(index: Index, tmp_path: Path) -> None:
    sub = tmp_path / "d" / "sub"
    sub.mkdir(parents=True)
    (sub / "tax.md").write_text("tax return due in April")
    report = index.add([sub / "..", tmp_path / "d", sub / "tax.md"])
    assert (report.added, report.unchanged) == (1, 0)  # one file, named three ways, read once
    assert [h.path for h in index.search("tax", 5, "bm25")] == [str(sub / "tax.md")]
    (sub / "tax.md").unlink()
    sub.rmdir()
    assert index.add([sub]).removed == 1
    assert index.status().documents == 0


def test_calendar_alarms_and_quoted_colons_stay_in_their_place(index: Index, tmp_path: Path) -> None:
    ics = tmp_path / "cal.ics"
    ics.write_text("BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:e1\nSUMMARY:Physio\nDESCRIPTION:Bring insurance card\n"
                   'ATTENDEE;CN="Smith: Dr. Jane";RSVP=TRUE:mailto:jane@clinic.example\n'
                   "BEGIN:VALARM\nACTION:DISPLAY\nDESCRIPTION:This is an event reminder\nEND:VALARM\n"
                   "LOCATION:Clinic on Elm Street\nEND:VEVENT\nEND:VCALENDAR\n")
    index.add([ics])
    text = index.search("physio", 1, "bm25")[0].text
    assert "Description: Bring insurance card\n" in text + "\n" and "reminder" not in text
    assert "Attendee: Smith: Dr. Jane <jane@clinic.example>" in text and "Location: Clinic on Elm Street" in text


def test_records_keep_their_top_level_fields_and_alias_bombs_are_refused(index: Index, tmp_path: Path) -> None:
    trip = tmp_path / "trip.json"
    trip.write_text('{"trip": "Lisbon conference", "hotel_confirmation": "HX-99812", '
                    '"flights": [{"no": "TP123"}, {"no": "TP456"}]}')
    bomb = tmp_path / "bomb.yaml"
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"{c}: &{c} [{', '.join(['*' + p] * 10)}]" for p, c in zip("abcdefg", "bcdefgh")]
    bomb.write_text("\n".join(levels) + "\n")  # 300 bytes that expand to 10^8 values
    named = tmp_path / "named.yaml"  # the bomb as a record's id and title, which name it before its fields count
    named.write_text("\n".join(levels) + "\nrecords:\n  - id: *h\n    title: *h\n    note: kept by its note\n")
    report = index.add([trip, bomb])
    assert report.added == 1 and [Path(s.path).name for s in report.skipped] == ["bomb.yaml"]
    assert "expand past" in report.skipped[0].reason
    started = time.perf_counter()
    index.add([named])
    assert time.perf_counter() - started < 30
    assert top_paths(index, "HX-99812", 1, "bm25") == ["trip.json"]
    assert top_paths(index, "TP456", 1, "bm25") == ["trip.json"]


def test_a_list_of_aliases_to_one_long_string_is_refused_before_it_is_joined(index: Index, tmp_path: Path) -> None:
    """The budget is paid per value: 1,000 aliases of a 2,000-character string (a 5 KB file) are
    2,000,000 characters, and joining them all before counting would store thousands of chunks."""
    from tether.search.extract import ExtractError, extract

    bomb = tmp_path / "flat.yaml"
    bomb.write_text(f"a: &a \"{'x' * 2000}\"\nb: [{', '.join(['*a'] * 1000)}]\n")
    keys = tmp_path / "keys.yaml"  # a self-nesting mapping keyed by the long string: the path grows instead
    keys.write_text(f"k: &k \"{'y' * 2000}\"\nd: &d {{? *k : *d}}\n")
    for f in (bomb, keys):
        with pytest.raises(ExtractError, match="expand past 1,000,000 characters"):
            extract(f, f.read_bytes())
    report = index.add([bomb, keys])
    assert report.added == 0 and len(report.skipped) == 2
    assert all("expand past" in s.reason for s in report.skipped)
    assert index.status().chunks == 0


def test_hostile_html_is_read_in_linear_time() -> None:
    from tether.search.extract import _html_text

    for hostile in ("<style>x" * 40_000, "<!--" * 40_000, '<a href="' * 40_000, "<head>" * 40_000):
        started = time.perf_counter()
        _html_text(hostile)
        assert time.perf_counter() - started < 2, hostile[:10]  # quadratic took minutes at this size
    assert _html_text("<p>Hi <!-- x --><b>Bob</b></p><script>var a;</script><STYLE>p{}</style> &amp; 3 < 4") \
        == "Hi Bob & 3 < 4"


def test_html_mail_is_read_once_without_markup(index: Index, tmp_path: Path) -> None:
    mail = tmp_path / "invoice.eml"
    mail.write_text('From: billing@example.com\nSubject: Invoice 4471\nMIME-Version: 1.0\n'
                    'Content-Type: multipart/alternative; boundary="b"\n\n--b\nContent-Type: text/plain\n\n'
                    "Your invoice 4471 is ready.\n--b\nContent-Type: text/html\n\n"
                    "<html><head><style>p{color:red}</style></head><body><p>Your invoice 4471 is ready. AT&amp;T</p>"
                    "</body></html>\n--b--\n")
    html_only = tmp_path / "news.eml"
    html_only.write_text("From: news@example.com\nSubject: News\nContent-Type: text/html\n\n"
                         "<style>.x{}</style><p>Caf&eacute; opens&nbsp;Monday</p>\n")
    index.add([mail, html_only])
    text = index.search("invoice", 1, "bm25")[0].text
    assert text.count("invoice 4471") == 1 and "color" not in text and "AT&T" not in text
    assert "Café opens Monday" in index.search("opens", 1, "bm25")[0].text


def test_a_pdf_with_only_an_owner_password_is_read(index: Index, tmp_path: Path) -> None:
    import io

    from pypdf import PdfReader, PdfWriter

    def encrypted(path: Path, lines: list[str], user: str, owner: str) -> None:
        writer = PdfWriter(clone_from=PdfReader(io.BytesIO(_pdf(lines))))
        writer.encrypt(user_password=user, owner_password=owner)
        out = io.BytesIO()
        writer.write(out)
        path.write_bytes(out.getvalue())

    # printing restricted, reading open
    encrypted(tmp_path / "statement.pdf", ["Statement for account ending 4417"], user="", owner="bank-only")
    encrypted(tmp_path / "locked.pdf", ["Private"], user="secret", owner="secret")
    report = index.add([tmp_path])
    assert report.added == 1 and [(Path(s.path).name, s.reason) for s in report.skipped] == [
        ("locked.pdf", "encrypted PDF (needs a password)")]
    assert "4417" in index.search("bank statement", 1)[0].text


def test_library_arguments_are_checked(index: Index, tmp_path: Path) -> None:
    from tether.errors import InputError

    note = tmp_path / "n.md"
    note.write_text("apples and pears")
    index.add([note])
    for bad in (dict(k=-1), dict(k=0), dict(k=2**63), dict(k=True), dict(mode="nonsense")):
        with pytest.raises(InputError):
            index.search("apples", **bad)
    with pytest.raises(InputError, match="empty"):
        index.search("   ")
    with pytest.raises(InputError, match="list of paths"):
        index.add(str(tmp_path))  # a string is not a list of one-character paths
    assert top_paths(index, "apples " * 5000, 1, "hybrid") == ["n.md"]  # a pasted page is cut, not refused


def test_a_non_utf8_folder_name_is_one_clear_error(index: Index, tmp_path: Path) -> None:
    from tether.errors import InputError

    odd = Path(os.fsdecode(bytes(tmp_path) + b"/bad\xffdir"))
    odd.mkdir()
    with pytest.raises(InputError, match="not valid UTF-8"):
        index.add([odd])


def test_chunking_a_huge_single_line_is_linear() -> None:
    from tether.search.chunk import _pieces

    line = "wordwordword " * 1_300_000  # 16 MiB, no sentence end: took 16 s when each cut copied the rest
    started = time.perf_counter()
    pieces = list(_pieces(line, 1000))
    assert time.perf_counter() - started < 5 and max(map(len, pieces)) <= 1000


def test_utf16_notes_and_a_nul_in_a_charset_are_read_not_lost(index: Index, tmp_path: Path) -> None:
    (tmp_path / "u16.txt").write_bytes(b"\xff\xfe" + "papaya notes from Windows".encode("utf-16-le"))
    (tmp_path / "nul.eml").write_bytes(b'From: a@example.com\nSubject: Hi\nContent-Type: text/plain; '
                                       b'charset="utf\x00-8"\n\nkiwifruit here\n')
    report = index.add([tmp_path / "u16.txt", tmp_path / "nul.eml"])
    assert report.added == 2 and not report.skipped
    assert top_paths(index, "papaya", 1, "bm25") == ["u16.txt"]
    assert top_paths(index, "kiwifruit", 1, "bm25") == ["nul.eml"]
    assert "non-utf8" in index.status().flagged[str(tmp_path / "nul.eml")]


def test_a_file_replaced_by_a_folder_or_a_folder_by_a_symlink_leaves_no_stale_text(index: Index, tmp_path: Path) -> None:
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    (d / "foo.md").write_text("pineapple notes")
    (d / "sub" / "x.md").write_text("mango notes")
    index.add([d])
    (d / "foo.md").unlink()
    (d / "foo.md").mkdir()  # the file became a folder
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.md").write_text("other papaya")
    (d / "sub" / "x.md").unlink()
    (d / "sub").rmdir()
    (d / "sub").symlink_to(elsewhere)  # the folder became a symlink, which the walk does not follow
    report = index.add([d])
    assert report.removed == 2
    assert index.search("pineapple", mode="bm25") == [] and index.search("mango", mode="bm25") == []


def test_re_adding_a_path_that_changed_type_serves_only_what_is_there_now(index: Index, tmp_path: Path) -> None:
    fd = tmp_path / "fd"
    fd.mkdir()
    (fd / "a.md").write_text("pineapple notes")
    index.add([fd / "a.md"])
    (fd / "a.md").unlink()
    (fd / "a.md").mkdir()  # the file named on the command line became a folder
    (fd / "a.md" / "x.md").write_text("new kiwi text")
    report = index.add([fd / "a.md"])
    assert report.added == 1 and report.removed == 1
    assert index.search("pineapple", mode="bm25") == []
    assert top_paths(index, "kiwi", 3, "bm25") == ["x.md"]

    notes = tmp_path / "fd2" / "notes"
    notes.mkdir(parents=True)
    (notes / "a.md").write_text("mango notes")
    (notes / "b.json").write_text("{")  # skipped: its report entry must go with the folder
    index.add([notes])
    assert len(index.status().skipped) == 1
    for f in notes.iterdir():
        f.unlink()
    notes.rmdir()
    notes.write_text("x")  # the folder became a file (of no type we read)
    report = index.add([notes])
    assert report.removed == 1 and [s.reason for s in report.skipped] == ["unsupported file type ''"]
    assert index.search("mango", mode="bm25") == [] and index.status().skipped == []


def test_a_file_we_may_not_stat_keeps_its_document(index: Index, tmp_path: Path, monkeypatch) -> None:
    """A folder that can be listed but not entered (mode 644): each stat is refused. CI runs as
    root, where no mode refuses anything, so the refusal is injected at Path.stat."""
    note = tmp_path / "d" / "n.md"
    note.parent.mkdir()
    note.write_text("guava recipe")
    index.add([note.parent])
    real_stat = Path.stat

    def refused(self, *args, **kwargs):
        if self == note:
            raise PermissionError(13, "Permission denied")
        return real_stat(self, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", refused)
    report = index.add([note.parent])
    assert report.removed == 0 and "indexed text kept" in report.skipped[0].reason
    assert top_paths(index, "guava", 1, "bm25") == ["n.md"]


def test_a_changed_file_embeds_only_its_new_chunks(index: Index, tmp_path: Path) -> None:
    """An mbox that grew by one message costs one embedding, not the whole mailbox again."""
    box = tmp_path / "inbox.mbox"
    first = ("From a@x Mon Jan  1 00:00:00 2024\nFrom: a@x.com\nSubject: Invoice 991\n\nPlease pay invoice 991.\n\n"
             "From b@x Mon Jan  1 00:00:00 2024\nFrom: b@x.com\nSubject: Ski trip\n\nSki trip to Zermatt in March.\n")
    box.write_text(first)
    assert index.add([box]).embedded == 2
    before = dict(index.con.execute("SELECT text, vec FROM chunks").fetchall())
    box.write_text(first + "\nFrom c@x Tue Jan  2 00:00:00 2024\nFrom: c@x.com\nSubject: Plumber\n\n"
                           "The plumber comes on Thursday to fix the leaking kitchen tap.\n")
    report = index.add([box])
    assert (report.updated, report.chunks, report.embedded) == (1, 3, 1)
    after = dict(index.con.execute("SELECT text, vec FROM chunks").fetchall())
    assert all(after[text] == vec for text, vec in before.items())  # the kept vectors are the same bytes
    assert index.search("who repairs the dripping faucet", 1)[0].title == "Plumber"
    # an edited message is embedded again; its old vector is not reused for the new text
    box.write_text(first.replace("Zermatt in March", "Chamonix in February") + "\n")
    report = index.add([box])
    assert (report.chunks, report.embedded) == (2, 1)
    assert "Chamonix" in index.search("ski holiday", 1)[0].text


def test_damaged_mail_and_calendars_keep_their_text_and_are_flagged(index: Index, tmp_path: Path) -> None:
    from tether.search.extract import extract

    no_boundary = b"From: a@x.com\nSubject: Boiler\nContent-Type: multipart/mixed\n\nThe boiler service is on Friday.\n"
    doc = extract(Path("m.eml"), no_boundary)
    assert "boiler service is on Friday" in doc.items[0].text and doc.flags == ["malformed-mime"]
    cut = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:a\nSUMMARY:Choir\nEND:VEVENT\nBEGIN:VEVENT\nUID:b\nSUMMARY:Piano lesson\nLOCATION:Hall"
    doc = extract(Path("c.ics"), cut.encode())
    assert [i.title for i in doc.items] == ["Choir", "Piano lesson"] and doc.flags == ["unterminated-event"]
    (tmp_path / "c.ics").write_text(cut)
    (tmp_path / "passport renewal.md").write_text("  \n\n \t\n")
    report = index.add([tmp_path])
    assert report.flagged == {str(tmp_path / "c.ics"): ["unterminated-event"]}
    assert index.search("passport", 1)[0].title == "passport renewal"  # a blank note is found by its name


def test_calendar_times_are_written_out_with_their_zone() -> None:
    """A model reading "20261205T193000Z" answered "at 12:05"; the indexed text says the time plainly."""
    from tether.search.extract import extract

    ics = ("BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:x\nSUMMARY:Dinner\nDTSTART:20261205T193000Z\n"
           "DTEND;TZID=Europe/Berlin:20261205T210000\nEND:VEVENT\nBEGIN:VEVENT\nUID:y\nSUMMARY:Holiday\n"
           "DTSTART;VALUE=DATE:20261224\nEND:VEVENT\nBEGIN:VEVENT\nUID:z\nSUMMARY:Odd\nDTSTART:soon\nEND:VEVENT\nEND:VCALENDAR\n")
    texts = [i.text for i in extract(Path("c.ics"), ics.encode()).items]
    assert texts == ["Start: Saturday 5 December 2026 19:30 UTC\nEnd: Saturday 5 December 2026 21:00 Europe/Berlin",
                     "Start: Thursday 24 December 2026 (all day)", "Start: soon"]


def test_a_calendar_event_is_found_by_its_weekday_and_month(index: Index, tmp_path: Path) -> None:
    """Days were indexed as "Sat 5 Dec": a keyword search for "Saturday" or "December" missed them."""
    (tmp_path / "c.ics").write_text("BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:x\nSUMMARY:Birthday dinner\n"
                                    "DTSTART:20261205T193000Z\nEND:VEVENT\nEND:VCALENDAR\n")
    (tmp_path / "n.md").write_text("# Groceries\n\nOat milk, lemons and rice.")
    index.add([tmp_path])
    for query in ("anything on Saturday?", "plans in December"):
        assert [h.title for h in index.search(query, mode="bm25")] == ["Birthday dinner"]


def test_keyword_queries_are_split_into_terms_as_the_index_splits_text(index: Index, tmp_path: Path) -> None:
    """A dotted capital I and a decomposed accent must not cut a word in two (0 hits before)."""
    import unicodedata

    (tmp_path / "trip.md").write_text("Flight to Istanbul on Friday")
    (tmp_path / "cv.md").write_text("My résumé for the bakery job")  # NFC, as typed
    index.add([tmp_path])
    assert top_paths(index, "İstanbul", 3, "bm25") == ["trip.md"]
    assert top_paths(index, unicodedata.normalize("NFD", "résumé"), 3, "bm25") == ["cv.md"]
    assert top_paths(index, "RÉSUMÉ", 3, "bm25") == ["cv.md"]
    from tether.search.query import TOKENIZE

    sql = index.con.execute("SELECT sql FROM sqlite_master WHERE name = 'chunks_fts'").fetchone()[0]
    assert f"tokenize='{TOKENIZE}'" in sql  # the query is split by the tokenizer the index uses


def test_decomposed_text_is_indexed_as_typed_queries_spell_it(index: Index, tmp_path: Path) -> None:
    """A note saved decomposed (NFD, as macOS tools and some exporters write Hangul and accents)
    holds other FTS terms than a typed, composed query: it was not found by keyword before."""
    import unicodedata

    (tmp_path / "seoul.md").write_text(unicodedata.normalize("NFD", "서울 출장 일정: 금요일 회의"))
    (tmp_path / "cafe.md").write_text(unicodedata.normalize("NFD", "Rendez-vous au café Noël"))
    (tmp_path / "other.md").write_text("Groceries: milk, eggs, bread")
    index.add([tmp_path])
    assert top_paths(index, "출장", 3, "bm25") == ["seoul.md"]
    assert top_paths(index, "Noël", 3, "bm25") == ["cafe.md"]
    hit = index.search("서울 출장", 1, "bm25")[0]
    assert unicodedata.is_normalized("NFC", hit.text) and "서울 출장" in hit.text


def test_an_index_built_by_an_older_reader_is_read_again_at_the_next_add(tmp_path: Path) -> None:
    """A v1 index (before the schema knew its reader) holds a decomposed note as the old reader
    stored it; the file does not change, yet the next add reads it again, re-embedding nothing."""
    import unicodedata

    from tether.search.index import READER_VERSION

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "seoul.md").write_text(unicodedata.normalize("NFD", "서울 출장 일정: 금요일 회의"))
    (notes / "other.md").write_text("Groceries: milk, eggs, bread")
    db = tmp_path / "old.sqlite"
    idx = Index.open(db)
    idx.add([notes])
    # What the first Tether wrote: the chunk text as read (NFD), no reader column, schema v1.
    con = idx.con
    rows = con.execute("SELECT id, doc_id, ord, vec, item, title, text FROM chunks").fetchall()
    con.execute("DELETE FROM chunks")  # through the triggers, so the FTS table follows
    con.execute("DROP INDEX chunks_hash")  # and no chunk hashes (schema v3)
    con.execute("ALTER TABLE chunks DROP COLUMN hash")
    con.executemany("INSERT INTO chunks VALUES (?,?,?,?,?,?,?)",
                    [(*r[:5], unicodedata.normalize("NFD", r[5]), unicodedata.normalize("NFD", r[6])) for r in rows])
    con.execute("ALTER TABLE documents DROP COLUMN reader")
    con.execute("PRAGMA user_version=1")
    idx.close()

    old = Index.open(db, create=False)  # migrates to v3: both documents were read by reader 1
    from tether.search.store import SCHEMA_VERSION

    assert old.con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    assert old.status().outdated == 2 and READER_VERSION > 1
    import subprocess

    shown = subprocess.run([sys.executable, "-m", "tether", "index", "status", "--db", str(db)],
                           capture_output=True, text=True, check=True).stdout
    assert "2 documents were read by an older Tether" in shown
    assert top_paths(old, "출장", 3, "bm25") == []  # the old reader's text: not findable as typed
    report = old.add([notes])
    assert (report.updated, report.unchanged, report.embedded) == (2, 0, 1)  # only the changed text is embedded
    assert top_paths(old, "출장", 3, "bm25") == ["seoul.md"] and old.status().outdated == 0
    again = old.add([notes])
    assert (again.updated, again.unchanged) == (0, 2)
    old.close()
