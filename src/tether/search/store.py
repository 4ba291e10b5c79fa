"""The index file: one SQLite database in WAL mode, so searches run while indexing.

Each document is written in a single transaction (its row, chunks, vectors and
FTS rows together), so a killed indexer leaves whole documents or nothing, and
a rerun resumes without duplicates.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import urllib.parse
from pathlib import Path

from tether.errors import IndexStoreError
from tether.settings import mkdir_problem
from tether.sqlite_files import describe

SCHEMA_VERSION = 3

_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE documents (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        mtime_ns INTEGER NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        flags TEXT NOT NULL DEFAULT '',
        indexed_at REAL NOT NULL
    );
    CREATE TABLE chunks (
        id INTEGER PRIMARY KEY,
        doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        ord INTEGER NOT NULL,
        vec BLOB NOT NULL,  -- float16; before the text so rescoring reads no overflow pages
        item TEXT NOT NULL,
        title TEXT NOT NULL,
        text TEXT NOT NULL,
        UNIQUE (doc_id, ord)
    );
    CREATE INDEX chunks_doc ON chunks(doc_id);
    CREATE VIRTUAL TABLE chunks_fts USING fts5(title, text, content='chunks', content_rowid='id',
                                               tokenize='unicode61 remove_diacritics 2');
    CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN
        INSERT INTO chunks_fts(rowid, title, text) VALUES (new.id, new.title, new.text);
    END;
    CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN
        INSERT INTO chunks_fts(chunks_fts, rowid, title, text) VALUES ('delete', old.id, old.title, old.text);
    END;
    CREATE TABLE skipped (
        path TEXT PRIMARY KEY,
        reason TEXT NOT NULL,
        at REAL NOT NULL
    );
    CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
    """,
    # Which reader made a document's chunks (index.READER_VERSION): a file read by an older one is
    # read again at the next add although it did not change. Documents of a v1 index were read by reader 1.
    2: """
    ALTER TABLE documents ADD COLUMN reader INTEGER NOT NULL DEFAULT 1;
    """,
    # The hash of the text a chunk's vector was made from (index.text_hash): a chunk met again under
    # another path (a moved, renamed or copied file) takes the stored vector instead of being
    # embedded again. Chunks written before have none until their file is read again.
    3: """
    ALTER TABLE chunks ADD COLUMN hash INTEGER;
    CREATE INDEX chunks_hash ON chunks(hash);
    """,
}


def default_path() -> Path:
    """``$TETHER_INDEX``, else ``search.sqlite`` in the per-user data dir."""
    override = os.environ.get("TETHER_INDEX")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("tether")) / "search.sqlite"


# The tables the schema creates; a file holding them all (and a user_version) is ours.
_OURS = frozenset({"documents", "chunks", "chunks_fts", "skipped", "meta"})


def connect(path: str | os.PathLike[str], *, create: bool = True) -> sqlite3.Connection:
    """Open (creating and migrating if needed) the index at ``path``. The file is looked at read-only
    first: anything but a Tether index (another program's database, even one with a ``documents``
    table; a text file) is refused before a byte of it, or its journal mode, changes. With
    ``create=False`` an empty file or an empty database is refused too: only ``index add`` makes one."""
    path = Path(path).expanduser()
    found = _inspect(path)
    if found == "empty" and not create:
        raise IndexStoreError(f"{path}: not a Tether search index (the file is empty); "
                              f"build one with: tether index add --db {path} FOLDER")
    if found == "ours" and _unwritable(path):
        if not create:
            return _connect_read_only(path)
        raise IndexStoreError(f"{path}: in a read-only location; the index cannot be written there")
    if found != "ours" and path.parent.is_dir() and _unwritable(path):
        raise IndexStoreError(f"{path}: in a read-only location; an index cannot be made there")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        con.execute("PRAGMA foreign_keys=ON")
        con.execute("PRAGMA busy_timeout=30000")
        _migrate(con)
    except sqlite3.DatabaseError as exc:
        raise IndexStoreError(f"{path}: not a usable search index ({exc})") from None
    except OSError as exc:  # mkdir(exist_ok=True) on a file would read "File exists"
        raise IndexStoreError(f"{path}: cannot open ({mkdir_problem(exc)})") from None
    return con


def _unwritable(path: Path) -> bool:
    """Whether the index's folder cannot be written (a read-only mount, someone else's folder):
    there SQLite cannot make the ``-shm`` file a reader of a WAL database needs."""
    return not os.access(path.parent, os.W_OK)


def _read_only_uri(path: Path) -> str:
    """The URI that reads ``path`` without writing a byte. In a folder that cannot be written, and
    with nothing waiting in a ``-wal`` file, the database is opened as immutable: SQLite then
    needs no ``-shm`` (nor takes locks), and nothing can change it there but its owner."""
    # quote() of the bytes: a path that is not UTF-8 (a surrogate-escaped byte) still names the file
    uri = "file:" + urllib.parse.quote(os.fsencode(path.absolute())) + "?mode=ro"
    if _unwritable(path) and not _wal_pending(path):
        uri += "&immutable=1"
    return uri


def _wal_pending(path: Path) -> bool:
    try:
        return Path(str(path) + "-wal").stat().st_size > 0
    except OSError:
        return False


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """A reader's connection to an index in a folder it cannot write: no journal mode set, no
    migration (either would write)."""
    try:
        con = sqlite3.connect(_read_only_uri(path), uri=True, timeout=30.0, isolation_level=None,
                              check_same_thread=False)
        con.execute("PRAGMA busy_timeout=30000")
        version = con.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise _read_only_problem(path, exc) from None
    if version > SCHEMA_VERSION:
        con.close()
        raise _newer(version)
    if version < SCHEMA_VERSION:
        con.close()
        raise IndexStoreError(f"{path}: made by an older Tether (schema v{version}) and in a read-only location, "
                              "where it cannot be upgraded; copy it to a folder you can write")
    return con


def _read_only_problem(path: Path, exc: sqlite3.Error) -> IndexStoreError:
    """What a read-only folder costs: a WAL index with changes not yet in the file needs a
    ``-shm`` file that cannot be made there."""
    return IndexStoreError(f"{path}: cannot be read in a read-only location ({exc}); copy it, with its -wal "
                           "and -shm files, to a folder you can write")


def holds_index(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a Tether index already (False: missing or empty, so ``connect`` would
    make a new one); anything else there is an ``IndexStoreError``, as ``connect`` would raise."""
    return _inspect(Path(path).expanduser()) == "ours"


def _inspect(path: Path) -> str:
    """"missing", "empty" (no bytes, or no tables) or "ours", found read-only; anything else
    raises ``IndexStoreError``."""
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except OSError as exc:  # a name too long, a loop of links, no permission
        raise IndexStoreError(f"{path}: cannot open ({exc.strerror or type(exc).__name__})") from None
    if not stat.S_ISREG(st.st_mode):
        raise IndexStoreError(f"{path}: not a Tether search index (not a regular file)")
    if st.st_size == 0:
        return "empty"
    try:
        with contextlib.closing(sqlite3.connect(_read_only_uri(path), uri=True, timeout=30.0)) as con:
            names = {r[0] for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")}
            version = con.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as exc:  # "file is not a database" (a text file, say), or locked
        if _unwritable(path) and _wal_pending(path):
            raise _read_only_problem(path, exc) from None
        raise IndexStoreError(f"{path}: not a usable search index ({exc})") from None
    if not names:
        if not version:
            return "empty"
        raise IndexStoreError(f"{path}: not a Tether search index (an SQLite database with no tables)")
    if _OURS <= names and version >= 1:
        return "ours"
    if version > SCHEMA_VERSION and {"documents", "chunks"} <= names:
        return "ours"  # a newer Tether's index: _migrate says so
    raise IndexStoreError(f"{path}: not a search index: {describe(sorted(names))}")


def _migrate(con: sqlite3.Connection) -> None:
    version = con.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise _newer(version)
    for v in range(version + 1, SCHEMA_VERSION + 1):
        con.execute("BEGIN IMMEDIATE")
        try:
            if con.execute("PRAGMA user_version").fetchone()[0] < v:  # another process may have migrated

                for stmt in _statements(_MIGRATIONS[v]):
                    con.execute(stmt)
                con.execute(f"PRAGMA user_version={v}")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise


def _newer(version: int) -> IndexStoreError:
    return IndexStoreError(f"index schema v{version} is newer than this Tether (v{SCHEMA_VERSION})")


def _statements(script: str) -> list[str]:
    out, buf = [], ""
    for line in script.strip().splitlines():
        buf += line + "\n"
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    return out


def get_meta(con: sqlite3.Connection, key: str) -> bytes | None:
    row = con.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
    return row[0] if row else None


def set_meta(con: sqlite3.Connection, key: str, value: bytes | str) -> None:
    con.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (key, value))
