"""Retrieval: BM25 (FTS5), dense (binary Hamming candidates, int8 rescoring), fused by RRF.

Reciprocal rank fusion needs no score calibration between BM25 and cosine:
each list contributes 1 / (RRF_K + rank). Keyword matches rescue names, ids and
rare words that a small embedder blurs; vectors rescue paraphrases.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel

from tether.search import embed, quant
from tether.search.store import get_meta

Mode = Literal["hybrid", "bm25", "dense", "exact"]
MODES = ("hybrid", "bm25", "dense", "exact")
RRF_K = 60
FUSE_DEPTH = 50  # candidates taken from each list before fusion
RESCORE = 200  # binary candidates rescored with int8 vectors

_STOP = frozenset("a an and are as at be by did do does for from had has have how i in is it me my "
                  "of on or our the that this to was we were what when where which who why will with "
                  "you your".split())


class Hit(BaseModel):
    chunk_id: int
    path: str
    kind: str
    item: str
    title: str
    text: str
    score: float


def fts_query(text: str) -> str | None:
    words = [w for w in re.findall(r"\w+", text.lower()) if w not in _STOP]
    if not words:
        words = re.findall(r"\w+", text.lower())
    if not words:
        return None
    return " OR ".join(f'"{w}"' for w in dict.fromkeys(words))


def bm25(con: sqlite3.Connection, text: str, k: int) -> list[tuple[int, float]]:
    q = fts_query(text)
    if q is None:
        return []
    rows = con.execute("SELECT rowid, bm25(chunks_fts, 2.0, 1.0) AS s FROM chunks_fts WHERE chunks_fts MATCH ? "
                       "ORDER BY s LIMIT ?", (q, k)).fetchall()
    return [(int(r), -float(s)) for r, s in rows]


@dataclass
class Vectors:
    """In-memory side of the dense index: chunk ids and centered sign bits (48 bytes/chunk)."""

    generation: bytes | None
    ids: np.ndarray
    codes: np.ndarray
    center: np.ndarray

    @property
    def nbytes(self) -> int:
        return self.ids.nbytes + self.codes.nbytes + self.center.nbytes

    @classmethod
    def load(cls, con: sqlite3.Connection) -> Vectors:
        gen = get_meta(con, "generation")
        rows = con.execute("SELECT id, vec FROM chunks ORDER BY id").fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        if not rows:
            return cls(gen, ids, np.zeros((0, embed.DIM // 64), np.uint64), np.zeros(embed.DIM, np.float32))
        mat = quant.from_int8(np.frombuffer(b"".join(r[1] for r in rows), dtype=np.int8).reshape(len(rows), -1))
        return cls.build(gen, ids, mat)

    @classmethod
    def build(cls, generation: bytes | None, ids: np.ndarray, mat: np.ndarray) -> Vectors:
        center = mat.mean(axis=0).astype(np.float32)
        return cls(generation, ids, quant.binary_codes(mat, center), center)


def int8_vectors(con: sqlite3.Connection, ids: list[int]) -> dict[int, np.ndarray]:
    out: dict[int, np.ndarray] = {}
    for start in range(0, len(ids), 900):  # SQLite variable limit
        part = ids[start:start + 900]
        marks = ",".join("?" * len(part))
        for cid, blob in con.execute(f"SELECT id, vec FROM chunks WHERE id IN ({marks})", part):
            out[cid] = np.frombuffer(blob, dtype=np.int8)
    return out


def dense(con: sqlite3.Connection, vecs: Vectors, qvec: np.ndarray, k: int,
          rescore: int = RESCORE) -> list[tuple[int, float]]:
    n = len(vecs.ids)
    if n == 0:
        return []
    qcode = quant.binary_codes(qvec[None, :], vecs.center)[0]
    dist = quant.hamming(vecs.codes, qcode)
    r = min(rescore, n)
    cand = np.argpartition(dist, r - 1)[:r] if r < n else np.arange(n)
    cand_ids = vecs.ids[cand].tolist()
    stored = int8_vectors(con, cand_ids)
    cand_ids = [c for c in cand_ids if c in stored]
    if not cand_ids:
        return []
    mat = quant.from_int8(np.stack([stored[c] for c in cand_ids]))
    scores = mat @ qvec
    order = np.argsort(-scores)[:k]
    return [(cand_ids[i], float(scores[i])) for i in order]


def exact(con: sqlite3.Connection, qvec: np.ndarray, k: int) -> list[tuple[int, float]]:
    """Brute force over every stored vector (a baseline; no binary candidates)."""
    rows = con.execute("SELECT id, vec FROM chunks").fetchall()
    if not rows:
        return []
    mat = quant.from_int8(np.frombuffer(b"".join(r[1] for r in rows), dtype=np.int8).reshape(len(rows), -1))
    scores = mat @ qvec
    order = np.argsort(-scores)[:k]
    return [(rows[i][0], float(scores[i])) for i in order]


def rrf(*lists: list[tuple[int, float]], k: int = RRF_K) -> list[tuple[int, float]]:
    fused: dict[int, float] = {}
    for ranked in lists:
        for rank, (cid, _) in enumerate(ranked):
            fused[cid] = fused.get(cid, 0.0) + 1.0 / (k + rank + 1)
    return sorted(fused.items(), key=lambda x: -x[1])


def hits(con: sqlite3.Connection, ranked: list[tuple[int, float]]) -> list[Hit]:
    if not ranked:
        return []
    ids = [c for c, _ in ranked]
    marks = ",".join("?" * len(ids))
    rows = {r[0]: r for r in con.execute(
        "SELECT c.id, d.path, d.kind, c.item, c.title, c.text FROM chunks c JOIN documents d ON d.id = c.doc_id "
        f"WHERE c.id IN ({marks})", ids)}
    return [Hit(chunk_id=c, path=rows[c][1], kind=rows[c][2], item=rows[c][3], title=rows[c][4],
                text=rows[c][5], score=s) for c, s in ranked if c in rows]
