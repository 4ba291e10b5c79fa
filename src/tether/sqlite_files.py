"""Tether keeps its state in SQLite files a user names on the command line (``--db``,
``--ledger``). A typo can name some other program's database; Tether must refuse it rather
than add its own tables to it."""

from __future__ import annotations

import contextlib
import os
import sqlite3


def foreign_tables(path: str | os.PathLike[str], ours: set[str]) -> list[str]:
    """The tables of the SQLite file at ``path`` when it has tables but none of ``ours``
    (someone else's database); empty for a missing, empty or Tether file. Never writes."""
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        return []
    try:
        with contextlib.closing(sqlite3.connect(f"file:{os.fspath(path)}?mode=ro", uri=True)) as con:
            names = [r[0] for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    except sqlite3.DatabaseError:
        return []  # not a database at all: the caller's own open reports that
    return [] if not names or ours & set(names) else names


def describe(names: list[str]) -> str:
    shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    return f"it is another program's SQLite database (tables: {shown}); Tether will not add its tables to it"
