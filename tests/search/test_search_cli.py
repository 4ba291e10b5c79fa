"""The CLI in real processes: kill-and-resume, concurrent search, errors, ``tether ask``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from tether.cli import cli, search as _registers  # noqa: F401
from tether.search import Index

TOPICS = ["apples", "boats", "chess", "dancing", "engines", "falcons", "gardens", "harbours", "islands", "jazz"]


def tether(*args: str) -> list[str]:
    return [sys.executable, "-m", "tether", *args]


def test_killed_indexer_resumes_without_duplicates_while_searching(tmp_path: Path) -> None:
    data = tmp_path / "notes"
    data.mkdir()
    n_files = 160
    for i in range(n_files):
        (data / f"note-{i:03d}.md").write_text(
            f"# Note {i}\n\nThis note number {i} is about {TOPICS[i % 10]} and item code Z{i:03d}Q.\n")
    db = tmp_path / "index.sqlite"
    proc = subprocess.Popen(tether("index", "add", str(data), "--db", str(db)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reader = None
    searched = 0
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if db.exists():
                reader = reader or Index.open(db)
                done = reader.con.execute("SELECT count(*) FROM documents").fetchone()[0]
                if done:  # search while the other process writes (WAL): no lock errors
                    assert reader.search("chess", 3)
                    searched += 1
                if done >= 20:
                    break
            time.sleep(0.05)
        assert proc.poll() is None, "indexer finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL and searched > 0
    before = reader.con.execute("SELECT count(*) FROM documents").fetchone()[0]  # type: ignore[union-attr]
    assert 20 <= before < n_files

    out = subprocess.run(tether("index", "add", str(data), "--db", str(db), "--json"),
                         capture_output=True, text=True, check=True)
    report = json.loads(out.stdout)
    assert report["unchanged"] == before and report["added"] == n_files - before and report["updated"] == 0

    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM documents").fetchone()[0] == n_files
    assert con.execute("SELECT count(*) FROM chunks").fetchone()[0] == n_files  # one chunk per note, no duplicates
    assert con.execute("SELECT count(DISTINCT text) FROM chunks").fetchone()[0] == n_files
    assert con.execute("SELECT count(*) FROM chunks_fts").fetchone()[0] == n_files
    con.execute("INSERT INTO chunks_fts(chunks_fts) VALUES('integrity-check')")  # raises if FTS disagrees
    hits = reader.search("Z137Q", 1)  # type: ignore[union-attr]
    assert Path(hits[0].path).name == "note-137.md"
    reader.close()  # type: ignore[union-attr]


def test_cli_index_status_search_json(tmp_path: Path, corpus: dict[str, Path]) -> None:
    db = str(tmp_path / "i.sqlite")
    runner = CliRunner()
    (corpus["mail"].parent / "bad.json").write_text("[1, 2")
    r = runner.invoke(cli, ["index", "add", str(corpus["mail"].parent), "--db", db])
    assert r.exit_code == 0, r.output
    assert "4 added" in r.output and "skipped" in r.output and "bad.json" in r.output
    r = runner.invoke(cli, ["search", "dentist appointment", "--db", db, "--json"])
    assert r.exit_code == 0
    hits = json.loads(r.output)
    assert Path(hits[0]["path"]).name == "dentist.ics" and hits[0]["kind"] == "calendar"
    r = runner.invoke(cli, ["index", "status", "--db", db, "--json"])
    st = json.loads(r.output)
    assert st["documents"] == 4 and st["chunks"] >= 4 and Path(st["skipped"][0]["path"]).name == "bad.json"
    r = runner.invoke(cli, ["index", "remove", str(corpus["mail"]), "--db", db])
    assert r.output.strip() == "1 removed"
    r = runner.invoke(cli, ["index", "remove", str(corpus["mail"]) + "-typo", "--db", db])  # nothing there: a typo
    assert r.exit_code == 1 and "nothing indexed at" in r.output and "-typo" in r.output


def test_cli_bad_input_is_one_line(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database" * 200)
    for args in (["search", "   ", "--db", str(tmp_path / "i.sqlite")], ["search", "x", "--db", str(junk)],
                 ["index", "add", str(tmp_path / "no-such-folder"), "--db", str(tmp_path / "i.sqlite")],
                 ["index", "add", "/dev/null", "--db", str(tmp_path / "i.sqlite")]):
        p = subprocess.run(tether(*args), capture_output=True, text=True, env={**os.environ, "TETHER_RAISE_ERRORS": ""})
        assert p.returncode != 0
        assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


def test_ask_answers_from_retrieved_chunks(tmp_path: Path, corpus: dict[str, Path]) -> None:
    db = str(tmp_path / "i.sqlite")
    Index.open(db).add([corpus["mail"].parent])
    r = CliRunner().invoke(cli, ["ask", "When is the dentist check-up?", "--db", db, "--model", "smollm2-135m",
                                 "--json", "-k", "2"])
    assert r.exit_code == 0, r.output
    answer = json.loads(r.output)
    assert answer["answer"].strip()
    assert Path(answer["sources"][0]["path"]).name == "dentist.ics"
    assert "Smile Dental Clinic" in answer["context"]  # the device tier sees the text as is
    assert answer["tier"] == "device" and answer["rule"] == "no_cloud"  # no cloud configured: says so
    assert answer["route"].startswith("device (no_cloud)")
    human = CliRunner().invoke(cli, ["ask", "When is the dentist check-up?", "--db", db, "--model", "smollm2-135m"])
    assert "── ran on device: device (no_cloud)" in human.output


def test_ask_gives_as_many_excerpts_by_default_as_chat_the_gateway_and_the_demo() -> None:
    """The CLI states its default as a literal (importing tether.search costs start-up time)."""
    from tether.cli.search import ask_cmd
    from tether.search.ask import TOP_K, personal_hits

    assert next(p for p in ask_cmd.params if p.name == "k").default == TOP_K
    assert personal_hits.__defaults__ == (TOP_K,)


def test_an_answer_that_stays_on_the_device_does_not_load_the_privacy_scanner(tmp_path: Path,
                                                                              corpus: dict[str, Path]) -> None:
    """With no cloud, nothing leaves, so `tether ask` need not import presidio and spaCy (4 s here)."""
    db = str(tmp_path / "i.sqlite")
    Index.open(db).add([corpus["mail"].parent])
    code = ("import sys; from tether.cli import main\n"
            f"sys.argv = ['tether', 'ask', 'When is the dentist check-up?', '--db', {db!r}, '--model', 'smollm2-135m']\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "print('loaded:', sorted(m for m in ('presidio_analyzer', 'spacy') if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "ran on device" in p.stdout and p.stdout.strip().splitlines()[-1] == "loaded: []"


def test_retrieved_text_passes_the_privacy_guard_before_leaving(tmp_path: Path) -> None:
    from tether.search.ask import build_context, context_for

    data = tmp_path / "mail"
    data.mkdir()
    (data / "bank.eml").write_text(
        "From: grace.hopper@navy-mail.com\nTo: me@example.com\nSubject: Wire transfer details\n\n"
        "Hi, please wire the deposit to IBAN DE89370400440532013000. Call me at 212-555-0199 if needed. Grace Hopper\n")
    idx = Index.open(tmp_path / "i.sqlite")
    idx.add([data])
    hits = idx.search("wire transfer deposit", 3)
    planted = ["grace.hopper@navy-mail.com", "DE89370400440532013000", "212-555-0199", "Grace Hopper"]
    local = build_context(hits)
    assert all(p in local for p in planted)
    out = context_for(hits, "private_cloud")
    assert out.tier == "private_cloud"
    if out.payload is not None:
        assert not any(p in out.payload for p in planted), out.payload
        assert "wire the deposit" in out.payload  # the rest of the text still goes
    else:
        assert out.must_stay_on_device and out.stay_reasons


def test_an_empty_path_or_a_missing_index_is_an_error_that_changes_nothing(tmp_path: Path,
                                                                          corpus: dict[str, Path]) -> None:
    """`tether index remove "$UNSET"` must not empty the index, and a mistyped --db must not make a new one."""
    db = tmp_path / "i.sqlite"
    runner = CliRunner()
    assert runner.invoke(cli, ["index", "add", str(corpus["mail"].parent), "--db", str(db)]).exit_code == 0
    for args in (["index", "remove", ""], ["index", "remove", "  "], ["index", "add", ""]):
        r = runner.invoke(cli, [*args, "--db", str(db)])
        assert r.exit_code == 1 and "empty path" in r.output, (args, r.output)
    assert Index.open(db).status().documents == 4  # nothing was removed

    typo = tmp_path / "no-such-dir" / "typo.sqlite"
    for args in (["search", "dentist"], ["ask", "when is the dentist"], ["index", "status"], ["index", "remove", "x"]):
        r = runner.invoke(cli, [*args, "--db", str(typo)])
        assert r.exit_code == 1 and "no search index at" in r.output, (args, r.output)
    assert not typo.exists() and not typo.parent.exists()

    empty = tmp_path / "empty"
    empty.mkdir()
    assert runner.invoke(cli, ["index", "add", str(empty), "--db", str(tmp_path / "e.sqlite")]).exit_code == 0
    r = runner.invoke(cli, ["ask", "when is dinner", "--db", str(tmp_path / "e.sqlite"), "--model", "smollm2-135m"])
    assert r.exit_code == 1 and "nothing in the index" in r.output  # no model answer from no sources


def test_another_programs_database_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    """A --db or --ledger typo naming some other SQLite file must not get Tether's tables."""
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE foo (x)")
    for args in (["index", "status", "--db", str(other)], ["search", "x", "--db", str(other)],
                 ["index", "add", str(tmp_path), "--db", str(other)], ["stats", "--ledger", str(other)]):
        p = subprocess.run(tether(*args), capture_output=True, text=True)
        assert p.returncode != 0 and "another program's SQLite database" in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1
    with sqlite3.connect(other) as con:
        assert [r[0] for r in con.execute("SELECT name FROM sqlite_master")] == ["foo"]


def test_damaged_pages_and_surrogates_are_one_line_and_a_json_escape_does_not_stop_the_batch(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("apples grow on trees")
    (docs / "m.json").write_text('{"note": "half a character: \\ud800 here"}')
    (docs / "z.txt").write_text("zebras live in herds")
    db = tmp_path / "i.sqlite"
    out = subprocess.run(tether("index", "add", str(docs), "--db", str(db), "--json"), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["added"] == 3 and "invalid-unicode" in json.dumps(report["flagged"])
    p = subprocess.run(tether("search", os.fsdecode(b"zebra \xff"), "--db", str(db)), capture_output=True, text=True)
    assert p.returncode != 0 and "not valid Unicode" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    with sqlite3.connect(db) as con:  # wreck the full-text index's pages, keep the header
        con.execute("UPDATE chunks_fts_config SET v = 0 WHERE k = 'version'")
    p = subprocess.run(tether("search", "zebra", "--db", str(db), "--mode", "bm25"), capture_output=True, text=True)
    assert p.returncode != 0 and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_an_unreadable_folder_is_reported_and_its_documents_kept(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "a.txt").write_text("apples grow on trees")
    (docs / "sub" / "c.txt").write_text("cherries are red")
    db = tmp_path / "i.sqlite"
    assert subprocess.run(tether("index", "add", str(docs), "--db", str(db)), capture_output=True).returncode == 0
    # root reads any folder; setpriv drops that power for the indexer (util-linux, in Debian's base)
    prefix = (["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search"]
              if os.geteuid() == 0 and shutil.which("setpriv") else [])
    if os.geteuid() == 0 and not prefix:
        pytest.skip("running as root without setpriv: every folder is readable")
    (docs / "sub").chmod(0)
    try:
        out = subprocess.run(prefix + tether("index", "add", str(docs), "--db", str(db), "--json"),
                             capture_output=True, text=True)
    finally:
        (docs / "sub").chmod(0o755)
    report = json.loads(out.stdout)
    assert any(s["path"].endswith("sub") and "cannot read folder" in s["reason"] for s in report["skipped"])
    assert report["removed"] == 0
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT count(*) FROM documents").fetchone()[0] == 2


def test_an_indexed_file_that_can_no_longer_be_opened_keeps_its_text(tmp_path: Path) -> None:
    """An edited file whose permissions now refuse us (a mail client rewrote it 0600 as another user)
    lost what was indexed from it, though nothing says its text is gone: kept, as for a refused stat."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("apples grow on trees")
    (docs / "diary.txt").write_text("the kingfisher came back to the mill pond")
    db = tmp_path / "i.sqlite"
    assert subprocess.run(tether("index", "add", str(docs), "--db", str(db)), capture_output=True).returncode == 0
    prefix = (["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search"]
              if os.geteuid() == 0 and shutil.which("setpriv") else [])
    if os.geteuid() == 0 and not prefix:
        pytest.skip("running as root without setpriv: every file is readable")
    diary = docs / "diary.txt"
    diary.chmod(0)
    os.utime(diary, ns=(time.time_ns(), time.time_ns() + 10**9))  # changed since it was indexed
    try:
        out = subprocess.run(prefix + tether("index", "add", str(docs), "--db", str(db), "--json"),
                             capture_output=True, text=True)
    finally:
        diary.chmod(0o644)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert [(Path(s["path"]).name, "cannot read" in s["reason"]) for s in report["skipped"]] == [("diary.txt", True)]
    assert report["removed"] == 0
    hits = json.loads(subprocess.run(tether("search", "kingfisher", "--db", str(db), "--json", "-k", "1"),
                                     capture_output=True, text=True, check=True).stdout)
    assert [Path(h["path"]).name for h in hits] == ["diary.txt"]
    # readable again: read and indexed as usual, and no longer listed as skipped
    out = subprocess.run(tether("index", "add", str(docs), "--db", str(db), "--json"), capture_output=True, text=True)
    assert json.loads(out.stdout)["skipped"] == []


def test_a_damaged_vector_is_one_line_naming_the_index(tmp_path: Path, corpus: dict[str, Path]) -> None:
    db = tmp_path / "i.sqlite"
    idx = Index.open(db)
    idx.add([corpus["mail"].parent])
    idx.close()
    with sqlite3.connect(db) as con:
        con.execute("UPDATE chunks SET vec = x'0000' WHERE id = (SELECT min(id) FROM chunks)")
    runner = CliRunner()
    for mode in ("hybrid", "dense", "exact"):
        r = runner.invoke(cli, ["search", "dentist", "--db", str(db), "--mode", mode])
        assert r.exit_code == 1 and isinstance(r.exception, SystemExit), r.exception  # not a ValueError
        assert len(r.output.strip().splitlines()) == 1, r.output
        assert str(db) in r.output and "damaged" in r.output and "tether index add" in r.output, r.output
    assert runner.invoke(cli, ["search", "dentist", "--db", str(db), "--mode", "bm25"]).exit_code == 0


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_file_that_is_not_an_index_is_refused_by_readers_and_left_byte_for_byte(tmp_path: Path) -> None:
    """An empty file or an empty SQLite database named by --db must not become an index by a search."""
    files = tmp_path / "files"
    files.mkdir()
    (files / "notes.txt").write_bytes(b"")
    with sqlite3.connect(files / "empty.sqlite") as con:  # a database whose only table was dropped
        con.execute("CREATE TABLE t (x)")
        con.execute("DROP TABLE t")
    before = _snapshot(files)
    assert before["empty.sqlite"]
    runner = CliRunner()
    for name in before:
        for args in (["search", "x"], ["index", "status"], ["ask", "when is the dentist"], ["index", "remove", "x"]):
            r = runner.invoke(cli, [*args, "--db", str(files / name)])
            assert r.exit_code == 1 and isinstance(r.exception, SystemExit), (args, r.output)
            assert "not a Tether search index" in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert _snapshot(files) == before

    new = tmp_path / "new" / "new.sqlite"
    for args in (["index", "add", str(tmp_path / "nonexistent")], ["index", "add", str(files), "/dev/null"]):
        r = runner.invoke(cli, [*args, "--db", str(new)])
        assert r.exit_code == 1 and ("no such file" in r.output or "not a regular file" in r.output), r.output
    assert not new.parent.exists()  # nothing written: no index, no lock, no folder
    (tmp_path / "loop-a").symlink_to(tmp_path / "loop-b")
    (tmp_path / "loop-b").symlink_to(tmp_path / "loop-a")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    for link in ("loop-a", "dangling"):
        r = runner.invoke(cli, ["index", "add", str(tmp_path / link), "--db", str(new)])
        assert r.exit_code == 1 and "a symbolic link that leads nowhere" in r.output, r.output
    assert not new.parent.exists()


def test_another_programs_database_with_a_documents_table_is_refused_before_anything_changes(tmp_path: Path) -> None:
    """Sharing a table name with the index does not make a database ours, and the check comes before
    the journal mode is switched to WAL."""
    other = tmp_path / "docs2.sqlite"
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE documents (id INTEGER PRIMARY KEY, body TEXT)")
        con.execute("CREATE TABLE users (name TEXT)")
        con.execute("INSERT INTO users VALUES ('ada')")
    before = _snapshot(tmp_path)
    runner = CliRunner()
    for args in (["search", "foo"], ["index", "status"], ["index", "add", str(tmp_path)], ["ask", "foo"]):
        r = runner.invoke(cli, [*args, "--db", str(other)])
        assert r.exit_code == 1 and isinstance(r.exception, SystemExit), (args, r.output)
        assert "another program's SQLite database" in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert _snapshot(tmp_path) == before
    with sqlite3.connect(other) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_control_characters_from_files_do_not_reach_the_terminal(tmp_path: Path) -> None:
    """A Subject with ESC sequences retitled and cleared the terminal; a line break in a file name
    printed a fake result line. Text output escapes them; JSON output escapes them anyway."""
    data = tmp_path / "d"
    data.mkdir()
    (data / "esc.eml").write_bytes(b"From: evil@x.com\r\nSubject: =?utf-8?q?Invoice=1B]0;PWNED=07=1B[2J=C2=9B31m?=\r\n"
                                   b"\r\nPlease pay the invoice \x1b[5mblink\x1b[0m today.\r\n")
    (data / "evil\n 2. fake result  [note] x.md").write_text("invoice copy\x7f")
    (data / "bad\x1b[2J.json").write_text("[1,")
    db = str(tmp_path / "i.sqlite")
    runner = CliRunner()
    outputs = [runner.invoke(cli, ["index", "add", str(data), "--db", db]),
               runner.invoke(cli, ["search", "invoice", "--db", db, "--mode", "bm25"]),
               runner.invoke(cli, ["index", "status", "--db", db]),
               runner.invoke(cli, ["ask", "which invoice?", "--db", db, "--model", "smollm2-135m"])]
    for r in outputs:
        assert r.exit_code == 0, r.output
        assert not any(c in r.output for c in "\x1b\x07\x7f\x9b"), r.output
    search = outputs[1].output.splitlines()
    assert len(search) == 4 and search[0].startswith(" 1. ") and search[2].startswith(" 2. ")
    assert "Invoice\\x1b]0;PWNED\\x07\\x1b[2J\\x9b31m" in outputs[1].output and "evil\\n 2. fake" in outputs[1].output
    assert "skipped " + str(data) + "/bad\\x1b[2J.json: cannot parse" in outputs[2].output
    hits = json.loads(runner.invoke(cli, ["search", "invoice", "--db", db, "--mode", "bm25", "--json"]).output)
    assert {h["title"] for h in hits} >= {"Invoice\x1b]0;PWNED\x07\x1b[2J\x9b31m"}  # JSON keeps the text as it is


def test_an_index_at_a_path_that_is_not_utf8_opens_again(tmp_path: Path, corpus: dict[str, Path]) -> None:
    """A file name with a byte that is no UTF-8 (made on another system) is a name like any other."""
    folder = os.fsencode(tmp_path) + b"/caf\xe9"
    os.mkdir(folder)
    db = os.fsdecode(folder + b"/idx\xff.sqlite")
    runner = CliRunner()
    for args in (["index", "add", str(corpus["mail"].parent)], ["index", "add", str(corpus["mail"].parent)],
                 ["index", "status"], ["search", "dentist"]):
        r = runner.invoke(cli, [*args, "--db", db])
        assert r.exit_code == 0, (args, r.output)
    assert Index.open(db, create=False).status().documents == 4


def test_a_name_too_long_is_one_line_naming_the_reason(tmp_path: Path) -> None:
    long = str(tmp_path / ("x" * 300))
    for args in (["search", "dentist", "--db", long + ".sqlite"], ["index", "status", "--db", long + ".sqlite"],
                 ["index", "add", str(tmp_path), "--db", long + ".sqlite"],
                 ["index", "add", long, "--db", str(tmp_path / "i.sqlite")]):
        p = subprocess.run(tether(*args), capture_output=True, text=True, env={**os.environ, "TETHER_RAISE_ERRORS": ""})
        assert p.returncode == 1, (args, p.stderr)
        assert p.stderr.count("\n") == 1 and "File name too long" in p.stderr, (args, p.stderr)
        assert "cannot write the output" not in p.stderr


def _in_read_only(folder: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """``command`` run with ``folder`` read-only: a read-only bind mount in a mount namespace of
    its own as root (whom mode 0555 does not stop), the folder's mode 0555 otherwise."""
    env = {**os.environ, "TETHER_RAISE_ERRORS": ""}
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
        finally:
            folder.chmod(0o755)
    if not shutil.which("unshare") or subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode:
        pytest.skip("root without a mount namespace: no folder can be read-only to it")
    script = 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" "$1" && shift && exec "$@"'
    return subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(folder), *command],
                          capture_output=True, text=True, env=env, timeout=300)


def test_an_index_in_a_read_only_location_can_be_searched(tmp_path: Path) -> None:
    """A reader asked for WAL mode, and SQLite's WAL needs a -shm file it could not make there:
    "not a usable search index (unable to open database file)"."""
    data, shelf = tmp_path / "notes", tmp_path / "shelf"
    data.mkdir()
    shelf.mkdir()
    (data / "boat.md").write_text("The sailing boat is moored at pier 7 in the harbour.")
    db = shelf / "i.sqlite"
    idx = Index.open(db)
    idx.add([data])
    idx.close()
    assert sorted(p.name for p in shelf.iterdir()) == ["i.sqlite", "i.sqlite.lock"]  # no -wal left
    p = _in_read_only(shelf, *tether("search", "where is the boat moored", "--db", str(db), "--json", "-k", "1"))
    assert p.returncode == 0, p.stderr
    assert Path(json.loads(p.stdout)[0]["path"]).name == "boat.md"
    p = _in_read_only(shelf, *tether("index", "status", "--db", str(db), "--json"))
    assert p.returncode == 0 and json.loads(p.stdout)["documents"] == 1, p.stderr
    for args in (["index", "add", str(data), "--db", str(db)], ["index", "add", str(data), "--db", str(shelf / "n.sqlite")]):
        p = _in_read_only(shelf, *tether(*args))
        assert p.returncode == 1 and "read-only location" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    # changes still in the -wal file need a -shm that cannot be made there: one line that says so
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA wal_autocheckpoint=0")
    con.execute("INSERT INTO skipped(path, reason, at) VALUES ('/x.md', 'a reason', 0)")  # in the -wal file while open
    pending = tmp_path / "pending"
    pending.mkdir()
    for suffix in ("", "-wal"):
        shutil.copy(f"{db}{suffix}", f"{pending / 'i.sqlite'}{suffix}")
    con.close()
    assert (pending / "i.sqlite-wal").stat().st_size > 0
    p = _in_read_only(pending, *tether("search", "boat", "--db", str(pending / "i.sqlite")))
    assert p.returncode == 1 and "cannot be read in a read-only location" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert sorted(x.name for x in pending.iterdir()) == ["i.sqlite", "i.sqlite-wal"]


def test_naming_only_files_that_are_all_skipped_fails_and_makes_no_index(tmp_path: Path) -> None:
    """`index add --db new.sqlite notes.docx` said "0 added", exited 0 and left an empty index (and
    its lock) behind: a script could not tell that nothing got in."""
    (tmp_path / "notes.docx").write_text("not read")
    (tmp_path / "bad.json").write_text('{"a": ')
    (tmp_path / "ok.md").write_text("The kayak is in the garage.")
    new = tmp_path / "new.sqlite"
    env = {**os.environ, "TETHER_RAISE_ERRORS": ""}
    p = subprocess.run(tether("index", "add", "--db", str(new), str(tmp_path / "notes.docx")), capture_output=True,
                       text=True, env=env)
    assert p.returncode == 1 and p.stderr.startswith("Error: nothing to index: ") and "'.docx'" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and sorted(x.name for x in tmp_path.iterdir()) == [
        "bad.json", "notes.docx", "ok.md"]  # neither new.sqlite nor its lock
    p = subprocess.run(tether("index", "add", "--db", str(new), str(tmp_path / "ok.md")), capture_output=True,
                       text=True, env=env)
    assert p.returncode == 0, p.stderr
    for named in (["notes.docx"], ["bad.json"], ["bad.json", "notes.docx"]):  # an index that is there
        p = subprocess.run(tether("index", "add", "--db", str(new), *(str(tmp_path / n) for n in named)),
                           capture_output=True, text=True, env=env)
        assert p.returncode == 1 and p.stderr.strip().splitlines()[-1].startswith("Error: nothing indexed: "), p.stderr
    p = subprocess.run(tether("index", "add", "--db", str(new), str(tmp_path / "bad.json"), str(tmp_path / "ok.md")),
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0 and "skipped" in p.stderr  # one named file got in (unchanged): a skip is reported
