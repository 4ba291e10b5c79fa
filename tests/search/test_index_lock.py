"""One writer at a time per index (``<index>.lock``, an OS flock), readers never blocked.

Real processes, a real SQLite file and the real embedding model. A running ``tether index add``
is paused with SIGSTOP once it has committed a document, so "a writer holds the lock" is a
fact for as long as the test needs it, not a race against how fast this machine embeds.
"""

from __future__ import annotations

import json
import math
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from filelock import FileLock

from tether.errors import IndexBusyError, IndexStoreError, InputError
from tether.search import Index

N_NOTES = 120


def tether(*args: str) -> list[str]:
    return [sys.executable, "-m", "tether", *args]


def write_notes(folder: Path, n: int = N_NOTES) -> Path:
    folder.mkdir(parents=True)
    for i in range(n):
        (folder / f"note-{i:03d}.md").write_text(f"# Note {i}\n\nNote {i} is about harbour number {i} and code K{i:03d}X.\n")
    return folder


def documents(db: Path) -> int:
    con = sqlite3.connect(db, timeout=30)
    try:
        return con.execute("SELECT count(*) FROM documents").fetchone()[0]
    except sqlite3.OperationalError:  # the writer has not created the schema yet
        return 0
    finally:
        con.close()


def start_writer(data: Path, db: Path) -> subprocess.Popen:
    """A real ``tether index add``, returned once it has committed a document (so it holds the
    lock) and before it has finished."""
    proc = subprocess.Popen(tether("index", "add", str(data), "--db", str(db), "--json"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if db.exists() and documents(db) >= 1:
            return proc
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"the writer never committed a document (exit {proc.poll()}): {proc.communicate()[1]!r}")


def wait_for_text(path: Path, text: str, proc: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if text in path.read_text():
            return
        assert proc.poll() is None, f"exited {proc.returncode} before saying {text!r}: {path.read_text()!r}"
        time.sleep(0.02)
    raise AssertionError(f"never said {text!r}: {path.read_text()!r}")


@pytest.fixture(scope="module")
def contended(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Writer A runs and is paused holding the lock; meanwhile a ``--no-wait`` add and remove,
    a search, a status and a waiting writer B start. Then A resumes and everything finishes."""
    tmp = tmp_path_factory.mktemp("lock")
    data = write_notes(tmp / "notes")
    db = tmp / "index.sqlite"
    a = start_writer(data, db)
    others: list[subprocess.Popen] = []
    try:
        a.send_signal(signal.SIGSTOP)
        held_at = documents(db)
        assert a.poll() is None and 1 <= held_at < N_NOTES
        run = {name: subprocess.Popen(tether(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for name, args in {
                   "add_no_wait": ("index", "add", str(data), "--db", str(db), "--no-wait"),
                   "remove_no_wait": ("index", "remove", str(data), "--db", str(db), "--no-wait"),
                   "search": ("search", "code K000X", "--db", str(db), "--mode", "bm25", "--json"),
                   "status": ("index", "status", "--db", str(db), "--json"),
               }.items()}
        others += run.values()
        b_err = tmp / "b.stderr"
        with open(b_err, "w") as err:
            b = subprocess.Popen(tether("index", "add", str(data), "--db", str(db), "--json"),
                                 stdout=subprocess.PIPE, stderr=err, text=True)
        others.append(b)
        out = {name: (p.wait(60), *p.communicate()) for name, p in run.items()}
        wait_for_text(b_err, "waiting for another `tether index` run", b)
        assert a.poll() is None and documents(db) == held_at  # A was paused all along: B really waited
        a.send_signal(signal.SIGCONT)
        a_out, a_errs = a.communicate(timeout=120)
        assert a.returncode == 0, a_errs
        b_out, _ = b.communicate(timeout=60)
        assert b.returncode == 0, b_err.read_text()
    finally:
        for p in [a, *others]:
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.kill()
                p.wait()
    return {"db": db, "data": data, "held_at": held_at, "out": out, "a": json.loads(a_out),
            "b": json.loads(b_out), "b_err": b_err.read_text()}


def test_a_second_writer_with_no_wait_fails_at_once_with_one_line(contended: dict) -> None:
    for name in ("add_no_wait", "remove_no_wait"):
        rc, stdout, stderr = contended["out"][name]
        assert rc == 1 and stdout == ""
        line, = stderr.strip().splitlines()
        assert f"the search index at {contended['db']} is busy" in line and "Traceback" not in line


def test_search_and_status_run_while_a_writer_holds_the_lock(contended: dict) -> None:
    rc, stdout, stderr = contended["out"]["search"]
    assert rc == 0, stderr
    assert [Path(h["path"]).name for h in json.loads(stdout)][:1] == ["note-000.md"]
    rc, stdout, stderr = contended["out"]["status"]
    assert rc == 0, stderr
    assert json.loads(stdout)["documents"] >= contended["held_at"]


def test_a_waiting_writer_runs_after_the_first_and_embeds_nothing(contended: dict) -> None:
    a, b = contended["a"], contended["b"]
    assert a["added"] == N_NOTES and a["embedded"] == N_NOTES  # the no-wait remove took nothing away
    assert b["embedded"] == 0 and b["added"] == 0 and b["unchanged"] == N_NOTES
    assert contended["b_err"].count("waiting for another `tether index` run on") == 1
    con = sqlite3.connect(contended["db"])
    assert con.execute("SELECT count(*), count(DISTINCT path) FROM documents").fetchone() == (N_NOTES, N_NOTES)
    assert con.execute("SELECT count(*), count(DISTINCT text) FROM chunks").fetchone() == (N_NOTES, N_NOTES)
    con.execute("INSERT INTO chunks_fts(chunks_fts) VALUES('integrity-check')")


def test_a_killed_writer_leaves_no_stale_lock(tmp_path: Path) -> None:
    data = write_notes(tmp_path / "notes")
    db = tmp_path / "index.sqlite"
    a = start_writer(data, db)
    try:
        a.send_signal(signal.SIGKILL)
        a.wait(10)
    finally:
        if a.poll() is None:
            a.kill()
    assert a.returncode == -signal.SIGKILL
    assert Path(str(db) + ".lock").exists()  # the file stays; the kernel dropped the flock on it
    before = documents(db)
    out = subprocess.run(tether("index", "add", str(data), "--db", str(db), "--json", "--no-wait"),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "waiting" not in out.stderr
    report = json.loads(out.stdout)
    assert report["unchanged"] == before and report["added"] == N_NOTES - before


# ------------------------------------------------------------ the library, in one process


class Holder:
    """Another writer: holds the index's lock from a thread until told to let go."""

    def __init__(self, lock_path: Path):
        self.taken, self.release = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, args=(lock_path,), daemon=True)
        self.thread.start()
        assert self.taken.wait(10)

    def _run(self, lock_path: Path) -> None:
        with FileLock(lock_path):
            self.taken.set()
            self.release.wait(30)

    def stop(self) -> None:
        self.release.set()
        self.thread.join(10)


def test_library_wait_none_zero_and_seconds(index: Index, tmp_path: Path) -> None:
    note = tmp_path / "note.md"
    note.write_text("# Kayak\n\nThe kayak club meets at the boathouse on Saturdays.\n")
    holder = Holder(index.lock_path)
    try:
        with pytest.raises(IndexBusyError) as busy:
            index.add([note], wait=0)
        assert isinstance(busy.value, IndexStoreError) and busy.value.waited == 0
        assert str(index.path) in str(busy.value) and busy.value.path == str(index.path)
        with pytest.raises(IndexBusyError):
            index.remove([note], wait=0)
        start = time.monotonic()
        with pytest.raises(IndexBusyError, match=r"after waiting 0\.3 s") as busy:
            index.add([note], wait=0.3)
        assert 0.3 <= time.monotonic() - start < 5 and busy.value.waited == 0.3
        for bad in (-1, math.nan, True, "5"):
            with pytest.raises(InputError, match="wait must be"):
                index.add([note], wait=bad)  # type: ignore[arg-type]
        assert index.status().documents == 0  # readers do not take the lock
        assert index.search("kayak", 1, mode="bm25") == []

        calls: list[int] = []

        def on_wait() -> None:  # the holder finishes once we are known to wait
            calls.append(1)
            threading.Timer(0.2, holder.stop).start()

        report = index.add([note], on_wait=on_wait)  # wait=None: as long as it takes
        assert calls == [1] and report.added == 1
    finally:
        holder.stop()
    report = index.add([note], wait=0, on_wait=lambda: pytest.fail("nobody holds the lock"))
    assert report.unchanged == 1 and report.embedded == 0
    assert index.remove([note], wait=0) == 1
