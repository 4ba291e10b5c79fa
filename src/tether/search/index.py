"""Incremental indexing and the ``Index`` facade.

A file is re-read only when its mtime or size changed, and re-embedded only
when its sha256 changed too. Files gone from a folder being indexed leave the
index. Each document commits on its own, so an interrupted run resumes where it
stopped on the next ``add``. Writers (``add``, ``remove``) hold ``<index>.lock``
(an OS ``flock`` through ``filelock``, dropped by the kernel if the process dies)
for their whole run, so two never embed the same files or interleave their
commits; readers (``search``, ``status``) never take it.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import sqlite3
import stat
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from tether.errors import IndexBusyError, IndexStoreError, InputError
from tether.search import embed, query as q, quant, store
from tether.search.chunk import chunks
from tether.search.extract import SUFFIXES, ExtractError, extract, kind_of
from tether.settings import path_problem
from tether.text import replace_surrogates, require_unicode

MAX_FILE_BYTES = 64 * 1024 * 1024
EMBED_BATCH = 32
# How files become chunks. Raise it when that changes what an unchanged file gives, so indexes
# built before are read again at their next add. 2: text in NFC (a decomposed note was unfindable).
# 3: mail in its declared charset (one bad byte lost the whole body), calendars read by icalendar,
# HTML mail without </head>, Markdown front matter, binary files skipped. 4: a NUL in text is a
# space (the embedder stopped reading at it), YAML dates as written, a repeat's BYSETPOS, BYHOUR and
# BYMINUTE in words (any other BY* part as written). 5: a null record is no item, null/true/false as written.
# 6: calendar days and months spelt out ("Saturday 5 December 2026"), so a search for "Saturday" finds them.
# 7: calendar stamps icalendar rejects but people write (``20240515T1000``, ``2024-05-16T09:30``) in words.
READER_VERSION = 7


class Skipped(BaseModel):
    path: str
    reason: str


class IndexReport(BaseModel):
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    chunks: int = 0
    embedded: int = 0  # chunks embedded this run; the others kept the vector they had
    skipped: list[Skipped] = Field(default_factory=list)
    flagged: dict[str, list[str]] = Field(default_factory=dict)
    seconds: float = 0.0


class IndexStatus(BaseModel):
    path: str
    documents: int
    chunks: int
    by_kind: dict[str, int]
    skipped: list[Skipped]
    flagged: dict[str, list[str]]
    file_bytes: int
    model: str
    outdated: int = 0  # documents an older Tether read; the next add of their files reads them again
    gone: list[str] = Field(default_factory=list)  # indexed files no longer on disk; search leaves them out


class Index:
    """One index file. Safe to search from one process while another indexes (WAL). Writers to
    one file take turns: ``add`` and ``remove`` hold ``<index>.lock`` while they run."""

    def __init__(self, con: sqlite3.Connection, path: Path):
        self.con = con
        self.path = path
        self._vectors: q.Vectors | None = None
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None, *, create: bool = True) -> Index:
        """The index at ``path`` (default: ``$TETHER_INDEX``, else the user data dir). With
        ``create=False`` a missing or empty file is an ``IndexStoreError``, so a mistyped path for a
        search is an error rather than a new, empty index (and the file is left as it was)."""
        p = Path(path).expanduser() if path else store.default_path()
        if not create and _gone(str(p)):
            raise IndexStoreError(f"no search index at {p}; build one with: tether index add FOLDER")
        return cls(store.connect(p, create=create), p)

    def close(self) -> None:
        self.con.close()

    @property
    def shown_path(self) -> str:
        """The index file's path as printable text (an undecodable byte becomes U+FFFD)."""
        return _shown(self.path)

    @property
    def lock_path(self) -> Path:
        """The writer lock next to the index file (kept on disk; only the OS lock on it matters)."""
        return Path(str(self.path) + ".lock")

    @contextmanager
    def _writing(self, wait: float | None, on_wait: Callable[[], object] | None) -> Iterator[None]:
        """Hold the writer lock. ``wait``: None waits as long as it takes, 0 not at all, a
        positive number that many seconds; then ``IndexBusyError``. ``on_wait`` is called once,
        before waiting, when another writer holds the lock."""
        from filelock import FileLock, Timeout

        lock = FileLock(self.lock_path)

        def take(**how: object) -> bool:
            try:
                lock.acquire(**how)  # type: ignore[arg-type]
            except Timeout:
                return False
            except OSError as exc:  # a read-only folder: the index could not be written either
                raise IndexStoreError(f"{_shown(self.lock_path)}: cannot lock the index "
                                      f"({exc.strerror or exc})") from None
            return True

        if not take(blocking=False):
            if wait == 0:
                raise IndexBusyError(self.shown_path)
            if on_wait is not None:
                on_wait()
            if not take(timeout=-1 if wait is None or math.isinf(wait) else wait):
                raise IndexBusyError(self.shown_path, wait or 0.0)
        try:
            yield
        finally:
            lock.release()

    # ------------------------------------------------------------ indexing

    def add(self, paths: Iterable[str | os.PathLike[str]], *, progress: bool = False, wait: float | None = None,
            on_wait: Callable[[], object] | None = None) -> IndexReport:
        """Index files and folders. A path that does not exist and is not indexed raises
        ``InputError`` before anything is written; bad files inside are skipped and reported.

        Runs holding the writer lock: while another ``add`` or ``remove`` holds it, ``wait=None``
        waits for it (and then finds its files unchanged), ``wait=0`` raises ``IndexBusyError`` at
        once, ``wait=N`` after N seconds. ``on_wait`` is called once if this call has to wait."""
        if isinstance(paths, (str, bytes, os.PathLike)):
            raise InputError("add() takes a list of paths, e.g. index.add([folder])")
        named = [_storable(raw) for raw in paths]  # argument errors come before any wait
        _check_wait(wait)
        with self._writing(wait, on_wait):
            return self._add(named, progress)

    def _add(self, named: list[Path], progress: bool) -> IndexReport:
        start = time.perf_counter()
        report = IndexReport()
        files: list[Path] = []
        roots: list[Path] = []
        gone: list[str] = []
        unreadable: list[OSError] = []
        for p in named:
            try:
                os.stat(p)
            except (FileNotFoundError, NotADirectoryError):
                pass
            except OSError as exc:  # a name too long, a loop of links: is_dir() would raise it
                raise InputError(f"{_shown(p)}: cannot read ({exc.strerror or type(exc).__name__})") from None
            if p.is_dir():
                roots.append(p)
                files.extend(_walk(p, unreadable.append))
            elif p.is_file():
                roots.append(p)  # nothing is under a file: what was indexed there as a folder goes below
                if kind_of(p) is None:
                    report.skipped.append(Skipped(path=_shown(p), reason=f"unsupported file type {p.suffix!r}"))
                else:
                    files.append(p)
            elif not p.exists() and self._indexed_under(p):
                roots.append(p)  # a deleted folder: what was indexed under it leaves the index below
            elif self._doc_id(str(p)) is not None:
                gone.append(str(p))
            else:
                raise _not_addable(p)
        for path in gone:  # named explicitly but deleted since: it leaves the index
            self._delete(path)
            report.removed += 1
        files = list(dict.fromkeys(files))  # `add d d/sub d/a.md` reads each file once
        seen = {str(f) for f in files} | {_shown(f) for f in files}  # a name not UTF-8 is skipped under its shown one
        hidden = [str(e.filename).rstrip(os.sep) + os.sep for e in unreadable]
        for exc in unreadable:  # reported, and what was indexed inside stays: it may be back next time
            report.skipped.append(Skipped(path=_shown(Path(str(exc.filename))),
                                          reason=f"cannot read folder ({exc.strerror or type(exc).__name__})"))
        # Files first, then what left: a moved or renamed file finds its chunks' vectors still stored.
        with _progress(progress, len(files)) as advance:
            for f in files:
                self._add_file(f, report)
                advance(f.name)
        for root in roots:
            prefix = str(root).rstrip(os.sep) + os.sep
            # documents, and skipped files (their report entry goes with them), under the root and
            # at the root itself (a file that became a folder, or is gone)
            for path, indexed in self.con.execute(
                    "SELECT path, 1 FROM documents WHERE path = ? OR substr(path, 1, ?) = ? "
                    "UNION ALL SELECT path, 0 FROM skipped WHERE path = ? OR substr(path, 1, ?) = ?",
                    (str(root), len(prefix), prefix, str(root), len(prefix), prefix)).fetchall():
                if path not in seen and not path.startswith(tuple(hidden)) and not _still_there(path, root):
                    self._delete(path)
                    report.removed += indexed
        # Anywhere else in the index: a file gone from a folder that is still there was deleted or
        # moved away. One whose folder is gone too is kept (an unmounted drive looks like that);
        # search leaves it out and status lists it.
        for path, indexed in self.con.execute("SELECT path, 1 FROM documents UNION ALL SELECT path, 0 FROM skipped"
                                              ).fetchall():
            if path not in seen and _gone(path) and os.path.isdir(os.path.dirname(path)):
                self._delete(path)
                report.removed += indexed
        report.seconds = time.perf_counter() - start
        return report

    def remove(self, paths: Iterable[str | os.PathLike[str]], *, wait: float | None = None,
               on_wait: Callable[[], object] | None = None) -> int:
        """Drop files (or everything under folders) from the index; returns how many documents.
        Holds the writer lock; ``wait`` and ``on_wait`` as for ``add``."""
        if isinstance(paths, (str, bytes, os.PathLike)):
            raise InputError("remove() takes a list of paths, e.g. index.remove([folder])")
        named = [_shown(_absolute(raw)) for raw in paths]  # a name with undecodable bytes was stored this way, if at all
        _check_wait(wait)
        with self._writing(wait, on_wait):
            return self._remove(named)

    def _remove(self, named: list[str]) -> int:
        n = 0
        for p in named:
            prefix = p.rstrip(os.sep) + os.sep
            for (path,) in self.con.execute("SELECT path FROM documents WHERE path = ? OR substr(path, 1, ?) = ?",
                                             (p, len(prefix), prefix)).fetchall():
                self._delete(path)
                n += 1
            with self._tx():  # skipped files are not documents, but they leave the report too
                self.con.execute("DELETE FROM skipped WHERE path = ? OR substr(path, 1, ?) = ?", (p, len(prefix), prefix))
        return n

    def _indexed_under(self, folder: Path) -> bool:
        prefix = str(folder).rstrip(os.sep) + os.sep
        return self.con.execute("SELECT 1 FROM documents WHERE substr(path, 1, ?) = ? LIMIT 1",
                                (len(prefix), prefix)).fetchone() is not None

    def _doc_id(self, path: str) -> int | None:
        row = self.con.execute("SELECT id FROM documents WHERE path=?", (path,)).fetchone()
        return row[0] if row else None

    def _delete(self, path: str) -> None:
        with self._tx():
            self.con.execute("DELETE FROM documents WHERE path=?", (path,))
            self.con.execute("DELETE FROM skipped WHERE path=?", (path,))
            self._bump()

    def _skip(self, report: IndexReport, path: str, reason: str, *, keep: bool = False) -> None:
        """Report ``path`` as skipped. What was indexed from it before goes (the index never
        answers with content the file no longer has), unless ``keep``: we could not even look."""
        report.skipped.append(Skipped(path=path, reason=reason))
        with self._tx():
            if not keep and self.con.execute("DELETE FROM documents WHERE path=?", (path,)).rowcount:
                self._bump()
            self.con.execute("INSERT INTO skipped(path, reason, at) VALUES (?, ?, ?) ON CONFLICT(path) DO UPDATE "
                             "SET reason=excluded.reason, at=excluded.at", (path, reason, time.time()))

    def _add_file(self, f: Path, report: IndexReport) -> None:
        path = str(f)
        if _shown(f) != path:  # SQLite stores UTF-8 text; such a name cannot be stored or shown as it is
            return self._skip(report, _shown(f), "the file name is not valid UTF-8")
        try:
            st = f.stat()
        except PermissionError as exc:  # a folder we may list but not enter: its files are not known to change
            return self._skip(report, path, f"cannot stat ({exc.strerror}); indexed text kept", keep=True)
        except OSError as exc:
            return self._skip(report, path, f"cannot stat ({exc.strerror})")
        if not stat.S_ISREG(st.st_mode):  # a pipe would block the read forever
            return self._skip(report, path, "not a regular file")
        row = self.con.execute("SELECT id, mtime_ns, size, sha256, reader FROM documents WHERE path=?",
                               (path,)).fetchone()
        current = row is not None and row[4] >= READER_VERSION  # else read again: this Tether reads it better
        if current and row[1] == st.st_mtime_ns and row[2] == st.st_size:
            report.unchanged += 1
            return None
        if st.st_size > MAX_FILE_BYTES:
            return self._skip(report, path, f"larger than {MAX_FILE_BYTES // 2**20} MiB")
        try:
            raw = _read_regular(f, MAX_FILE_BYTES)
        except PermissionError as exc:  # as for a refused stat: nothing says its text is gone
            kept = "; indexed text kept" if row else ""
            return self._skip(report, path, f"cannot read ({exc.strerror}){kept}", keep=True)
        except OSError as exc:
            return self._skip(report, path, f"cannot read ({exc.strerror})")
        if raw is None:  # swapped for a pipe or device after the stat above, or grown past the limit
            return self._skip(report, path, "not a regular file (it changed while being read)")
        sha = hashlib.sha256(raw).hexdigest()
        if current and row[3] == sha:
            with self._tx():
                self.con.execute("UPDATE documents SET mtime_ns=?, size=? WHERE id=?", (st.st_mtime_ns, st.st_size, row[0]))
            report.unchanged += 1
            return None
        try:
            doc = extract(f, raw)
        except ExtractError as exc:
            return self._skip(report, path, str(exc))
        except Exception as exc:  # a parser bug on hostile input must not stop the run
            return self._skip(report, path, f"cannot parse ({type(exc).__name__}: {' '.join(str(exc).split())[:160]})")
        pieces = [(it.key, it.title, c) for it in doc.items for c in chunks(it.text if it.text.strip() else it.title)]
        # A JSON or YAML "\ud800" escape decodes to a lone surrogate: no model or column takes it.
        cleaned = [(key, *(replace_surrogates(x) for x in (title, text))) for key, title, text in pieces]
        if any(t[1] or c[1] for _, t, c in cleaned):
            doc.flags.append("invalid-unicode")
        # NFC, as queries are: a decomposed Korean or accented note (macOS, some exporters) would
        # otherwise hold terms no typed query makes. A NUL (a JSON "\u0000", a stray byte in mail)
        # becomes a space: the embedder stops reading at it, and neither FTS nor `ask` needs it.
        pieces = [(key, unicodedata.normalize("NFC", t[0].replace("\x00", " ")),
                   unicodedata.normalize("NFC", c[0].replace("\x00", " "))) for key, t, c in cleaned]
        texts = [embed_text(title, c) for _, title, c in pieces]
        # A changed file (a mailbox with one new message, a note with one edited paragraph) keeps
        # the vectors of the chunks it still has, and a moved or copied one takes those stored
        # under its other path: embedding is nearly all of indexing's cost.
        known = self._known_vectors(row[0]) if row else {}
        known.update(self._stored_vectors([t for t in dict.fromkeys(texts) if t not in known]))
        todo = list(dict.fromkeys(t for t in texts if t not in known))
        for i in range(0, len(todo), EMBED_BATCH):
            batch = todo[i:i + EMBED_BATCH]
            known.update(zip(batch, (v.tobytes() for v in quant.to_stored(embed.passages(batch)))))
        stored = [known[t] for t in texts]
        report.embedded += len(todo)
        with self._tx():
            self.con.execute("DELETE FROM documents WHERE path=?", (path,))
            self.con.execute("DELETE FROM skipped WHERE path=?", (path,))
            cur = self.con.execute(
                "INSERT INTO documents(path, kind, mtime_ns, size, sha256, flags, indexed_at, reader) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (path, doc.kind, st.st_mtime_ns, st.st_size, sha, ",".join(dict.fromkeys(doc.flags)), time.time(),
                 READER_VERSION))
            doc_id = cur.lastrowid
            self.con.executemany(
                "INSERT INTO chunks(doc_id, ord, vec, item, title, text, hash) VALUES (?,?,?,?,?,?,?)",
                [(doc_id, n, v, key, title, text, text_hash(t))
                 for n, ((key, title, text), v, t) in enumerate(zip(pieces, stored, texts))])
            self._bump()
        if row:
            report.updated += 1
        else:
            report.added += 1
        report.chunks += len(pieces)
        if doc.flags:
            report.flagged[path] = list(dict.fromkeys(doc.flags))
        return None

    def _known_vectors(self, doc_id: int) -> dict[str, bytes]:
        rows = self.con.execute("SELECT title, text, vec FROM chunks WHERE doc_id=?", (doc_id,))
        # a damaged vector is embedded again rather than carried over
        return {embed_text(title, text): vec for title, text, vec in rows
                if isinstance(vec, bytes) and len(vec) == q.VEC_BYTES}

    def _stored_vectors(self, texts: list[str]) -> dict[str, bytes]:
        """Vectors already stored for any of ``texts``, under any path, found by their hash (and
        the text compared, so a hash collision embeds rather than borrows)."""
        by_hash = {text_hash(t): t for t in texts}
        found: dict[str, bytes] = {}
        hashes = list(by_hash)
        for start in range(0, len(hashes), 900):  # SQLite variable limit
            part = hashes[start:start + 900]
            for h, title, text, vec in self.con.execute(
                    f"SELECT hash, title, text, vec FROM chunks WHERE hash IN ({','.join('?' * len(part))})", part):
                t = by_hash[h]
                if t not in found and embed_text(title, text) == t and isinstance(vec, bytes) and len(vec) == q.VEC_BYTES:
                    found[t] = vec
        return found

    def _bump(self) -> None:
        store.set_meta(self.con, "generation", os.urandom(8))

    def _tx(self) -> "_Tx":
        return _Tx(self.con)

    # ------------------------------------------------------------ status and search

    def status(self) -> IndexStatus:
        con = self.con
        by_kind = dict(con.execute("SELECT kind, count(*) FROM documents GROUP BY kind ORDER BY kind").fetchall())
        flagged = {p: f.split(",") for p, f in con.execute("SELECT path, flags FROM documents WHERE flags != ''")}
        size = sum(Path(str(self.path) + s).stat().st_size for s in ("", "-wal") if Path(str(self.path) + s).exists())
        return IndexStatus(
            path=_shown(self.path), documents=sum(by_kind.values()),
            chunks=con.execute("SELECT count(*) FROM chunks").fetchone()[0], by_kind=by_kind,
            skipped=[Skipped(path=p, reason=r) for p, r in con.execute("SELECT path, reason FROM skipped ORDER BY path")],
            flagged=flagged, file_bytes=size, model=embed.MODEL_NAME,
            outdated=con.execute("SELECT count(*) FROM documents WHERE reader < ?", (READER_VERSION,)).fetchone()[0],
            gone=[p for (p,) in con.execute("SELECT path FROM documents ORDER BY path") if _gone(p)])

    def vectors(self) -> q.Vectors:
        """The in-memory binary codes, rebuilt when another writer changed the index."""
        with self._lock:
            gen = store.get_meta(self.con, "generation")
            if self._vectors is None or self._vectors.generation != gen:
                self._vectors = q.Vectors.load(self.con)
            return self._vectors

    def search(self, text: str, k: int = 10, mode: q.Mode = "hybrid") -> list[q.Hit]:
        """Top ``k`` chunks for ``text``; ``mode`` picks BM25, dense, exact dense, or their fusion.

        Chunks of files no longer on disk (moved or deleted since they were indexed) are left
        out, and the next ones ranked take their places: a result must be a file one can open."""
        text, qvec = self._query(text, k, mode)
        depth = k
        while True:
            ranked = self._ranked(text, depth, mode, qvec)
            hits = q.hits(self.con, ranked)
            gone = {p for p in {h.path for h in hits} if _gone(p)}
            kept = [h for h in hits if h.path not in gone]
            if len(kept) >= k or len(ranked) < depth or depth >= MAX_K:
                if qvec is None:
                    return kept[:k]
                with self._damage_named():  # a BM25 hit's vector is read here first
                    return q.similarities(self.con, kept[:k], qvec)
            depth = min(MAX_K, 2 * depth + len(hits) - len(kept))

    def ranked(self, text: str, k: int = 10, mode: q.Mode = "hybrid") -> list[tuple[int, float]]:
        text, qvec = self._query(text, k, mode)
        return self._ranked(text, k, mode, qvec)

    def _query(self, text: str, k: int, mode: q.Mode) -> tuple[str, Any]:
        """The query checked and cut to what the embedder reads, and its vector (None for BM25),
        made once: search() may rank it again, deeper."""
        require_unicode(text, "the query")
        if not text.strip():
            raise InputError("the query is empty")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise InputError(f"k must be a whole number from 1 to {MAX_K}, not {k!r}")
        if mode not in ("hybrid", "bm25", "dense", "exact"):
            raise InputError(f"unknown search mode {mode!r}; use hybrid, bm25, dense or exact")
        text = text[:MAX_QUERY_CHARS]  # the embedder reads 512 tokens at most; a pasted book would take minutes
        return text, None if mode == "bm25" else embed.query(text)

    def _ranked(self, text: str, k: int, mode: q.Mode, qvec: Any) -> list[tuple[int, float]]:
        with self._damage_named():
            if mode == "bm25":
                return q.bm25(self.con, text, k)
            if mode == "exact":
                return q.exact(self.con, qvec, k)
            if mode == "dense":
                return q.dense(self.con, self.vectors(), qvec, k)
            depth = max(k, q.FUSE_DEPTH)
            return q.rrf(q.bm25(self.con, text, depth), q.dense(self.con, self.vectors(), qvec, depth))[:k]

    @contextlib.contextmanager
    def _damage_named(self) -> Iterator[None]:
        try:
            yield
        except IndexStoreError as exc:  # a damaged vector: name the file and the way out
            raise IndexStoreError(f"{self.shown_path}: {exc}; rebuild it: delete the file and run "
                                  "tether index add on your folders again") from None


MAX_K = 1000
MAX_QUERY_CHARS = 4000


def embed_text(title: str, chunk: str) -> str:
    """What gets embedded for a chunk: its item's title gives short chunks their context."""
    return f"{title}\n{chunk}" if title and not chunk.startswith(title) else chunk


def text_hash(text: str) -> int:
    """64 bits of BLAKE2b of an embedded text, as SQLite's signed INTEGER: finds a stored vector."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big", signed=True)


class _Tx:
    def __init__(self, con: sqlite3.Connection):
        self.con = con

    def __enter__(self) -> None:
        self.con.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.con.execute("ROLLBACK" if exc_type else "COMMIT")


def check_new_paths(paths: Iterable[str | os.PathLike[str]]) -> None:
    """``InputError`` unless every path is a file or folder now, and not all of them files of a type
    Tether does not read (``notes.docx``). For an index not made yet (where no path can be an
    indexed file since deleted), so a typo writes nothing, not even the index."""
    named = [_storable(raw) for raw in paths]
    for p in named:
        if not (p.is_dir() or p.is_file()):
            raise _not_addable(p)
    if named and all(p.is_file() and kind_of(p) is None for p in named):
        raise InputError(f"nothing to index: {_shown(named[0])}: unsupported file type {named[0].suffix!r} "
                         f"(Tether reads {' '.join(sorted(SUFFIXES))})")


def all_skipped(paths: Iterable[str | os.PathLike[str]], report: IndexReport) -> bool:
    """Whether ``paths`` are all files, and none of them was indexed (each was skipped)."""
    named = [_absolute(raw) for raw in paths]
    return (bool(report.skipped) and not (report.added or report.updated or report.unchanged or report.removed)
            and all(p.is_file() for p in named))


def _storable(raw: str | os.PathLike[str]) -> Path:
    """``raw`` made absolute; ``InputError`` if SQLite, which holds UTF-8 text, could neither store
    nor match it."""
    p = _absolute(raw)
    if _shown(p) != str(p):
        raise InputError(f"{_shown(p)}: the path is not valid UTF-8; rename it (or index its parent folder)")
    return p


def _not_addable(p: Path) -> InputError:
    if p.exists():
        return InputError(f"{_shown(p)}: not a regular file or folder (a device, pipe or socket cannot be indexed)")
    if p.is_symlink():  # exists() follows it: "no such file" for a link one can list was a puzzle
        return InputError(f"{_shown(p)}: a symbolic link that leads nowhere (its target is gone, or it loops)")
    return InputError(f"{_shown(p)}: no such file or directory")


def _check_wait(wait: object) -> None:
    if wait is None:
        return
    if isinstance(wait, bool) or not isinstance(wait, (int, float)) or math.isnan(wait) or wait < 0:
        raise InputError(f"wait must be None (no limit) or a number of seconds >= 0, not {wait!r}")


def _absolute(raw: str | os.PathLike[str]) -> Path:
    """Absolute and normalised (``d/sub/..`` is ``d``), so one file is never indexed under two names.
    Symlinks are kept as named. An empty path is refused: ``Path("")`` is the current folder, and
    ``tether index remove "$UNSET"`` must not empty the index (nor ``add`` index a whole home)."""
    text = os.fspath(raw)
    if not text.strip():
        raise InputError("an empty path was given; name a file or folder (use . for the current folder)")
    if problem := path_problem(text):  # from the library: a command line escapes what it cannot decode
        raise InputError(f"{ascii(text)}: the path {problem}")
    return Path(os.path.abspath(Path(raw).expanduser()))


def _read_regular(path: Path, limit: int) -> bytes | None:
    """The bytes of ``path`` if what gets opened is a regular file of at most ``limit`` bytes,
    else None. Opened non-blocking and checked on the descriptor: a file swapped for a FIFO
    between a stat and the read must not block indexing forever."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            raw = f.read(limit + 1)
        return raw if len(raw) <= limit else None
    finally:
        os.close(fd)


def _shown(path: Path) -> str:
    """``path`` as valid UTF-8 text: undecodable bytes in a file name become U+FFFD."""
    return os.fsencode(path).decode("utf-8", errors="replace")


def _gone(path: str) -> bool:
    """Whether the file at ``path`` is no longer there (not: we may not look). A path with U+FFFD
    may be how a name that is not UTF-8 is shown (a skipped file's): it is there if its folder
    holds a name shown that way."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        if "\ufffd" not in path:
            return True
        folder, name = os.path.split(path)
        try:
            return not any(n.decode("utf-8", errors="replace") == name for n in os.listdir(os.fsencode(folder)))
        except OSError:
            return True
    except OSError:
        return False
    return False


def _still_there(path: str, root: Path) -> bool:
    """Whether a document the walk did not meet is still a file it could have met: False when it
    is gone, is now a folder or pipe, or a folder on its way became a symlink (which the walk
    does not follow); True when we may not stat it, so an unreadable file keeps its document."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True
    if not stat.S_ISREG(st.st_mode):
        return False
    parent = Path(path).parent
    while parent != root and root in parent.parents:
        if parent.is_symlink():
            return False
        parent = parent.parent
    return True


def _walk(root: Path, on_error: Callable[[OSError], None] | None = None) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root, onerror=on_error):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if not name.startswith(".") and kind_of(p) is not None:
                yield p


class _progress:
    """A rich progress bar on stderr when asked for and attached to a terminal."""

    def __init__(self, enabled: bool, total: int):
        self.enabled = enabled
        self.total = total
        self.bar = None

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            console = Console(stderr=True)
            if console.is_terminal:
                self.bar = Progress(TextColumn("indexing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                    TextColumn("{task.description}"), console=console, transient=True)
                self.bar.start()
                self.task = self.bar.add_task("", total=self.total)

        def advance(name: str) -> None:
            if self.bar is not None:
                self.bar.update(self.task, advance=1, description=name[:40])

        return advance

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
