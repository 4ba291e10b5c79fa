"""Retrieval: BM25 (FTS5), dense (binary Hamming candidates, float16 rescoring), fused by RRF.

Reciprocal rank fusion needs no score calibration between BM25 and cosine:
each list contributes 1 / (RRF_K + rank). Keyword matches rescue names, ids and
rare words that a small embedder blurs; vectors rescue paraphrases.
"""

from __future__ import annotations

import sqlite3
import threading
import unicodedata
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel

from tether.errors import IndexStoreError
from tether.search import embed, quant
from tether.search.store import get_meta

Mode = Literal["hybrid", "bm25", "dense", "exact"]
MODES = ("hybrid", "bm25", "dense", "exact")
RRF_K = 60
FUSE_DEPTH = 50  # candidates taken from each list before fusion
CANDIDATES = 1000  # nearest by Hamming distance, scored with int4 codes in memory
RESCORE = 400  # best int4 candidates rescored with their float16 vectors from disk

STOP_WORDS = frozenset("a an and are as at be by did do does for from had has have how i in is it me my "
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
    similarity: float | None = None  # cosine of the chunk's vector with the query's (None: a BM25-only search)


TOKENIZE = "unicode61 remove_diacritics 2"  # chunks_fts's tokenizer (store.py, schema v1)
_tokenizer: sqlite3.Connection | None = None
_tokenizer_lock = threading.Lock()


def terms(text: str) -> list[str]:
    """The terms FTS5 makes of ``text`` when it indexes it, in order. Splitting the query any other
    way misses words: ``str.lower()`` turns "İstanbul" into "i" + U+0307 + "stanbul", and ``\\w+``
    cuts a decomposed "résumé" at its accents."""
    global _tokenizer
    text = unicodedata.normalize("NFC", text)
    with _tokenizer_lock:
        if _tokenizer is None:
            con = sqlite3.connect(":memory:", check_same_thread=False)
            con.execute(f"CREATE VIRTUAL TABLE q USING fts5(t, tokenize='{TOKENIZE}')")
            con.execute("CREATE VIRTUAL TABLE v USING fts5vocab(q, 'instance')")
            _tokenizer = con
        with _tokenizer:
            _tokenizer.execute("DELETE FROM q")
            _tokenizer.execute("INSERT INTO q(t) VALUES (?)", (text,))
            return [r[0] for r in _tokenizer.execute("SELECT term FROM v ORDER BY offset")]


def fts_query(text: str) -> str | None:
    every = terms(text)
    words = [w for w in every if w not in STOP_WORDS] or every
    if not words:
        return None
    return " OR ".join('"' + w.replace('"', '""') + '"' for w in dict.fromkeys(words))


def bm25(con: sqlite3.Connection, text: str, k: int) -> list[tuple[int, float]]:
    q = fts_query(text)
    if q is None:
        return []
    rows = con.execute("SELECT rowid, bm25(chunks_fts, 2.0, 1.0) AS s FROM chunks_fts WHERE chunks_fts MATCH ? "
                       "ORDER BY s LIMIT ?", (q, k)).fetchall()
    return [(int(r), -float(s)) for r, s in rows]


@dataclass
class Vectors:
    """In-memory side of the dense index, 248 bytes per chunk (float32 takes 1,536):
    id (8), centered sign bits (48) and int4 residuals (192)."""

    generation: bytes | None
    ids: np.ndarray
    codes: np.ndarray
    nibbles: np.ndarray
    center: np.ndarray
    scale: np.ndarray

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.ids, self.codes, self.nibbles, self.center, self.scale))

    @classmethod
    def load(cls, con: sqlite3.Connection) -> Vectors:
        gen = get_meta(con, "generation")
        rows = con.execute("SELECT id, vec FROM chunks ORDER BY id").fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        if not rows:
            return cls.build(gen, ids, np.zeros((0, embed.DIM), np.float32))
        mat = _matrix([r[1] for r in rows], ids.tolist())
        return cls.build(gen, ids, mat)

    @classmethod
    def build(cls, generation: bytes | None, ids: np.ndarray, mat: np.ndarray) -> Vectors:
        center = mat.mean(axis=0).astype(np.float32) if len(mat) else np.zeros(embed.DIM, np.float32)
        res = mat - center
        scale = quant.int4_scale(res) if len(mat) else np.ones(embed.DIM, np.float32)
        return cls(generation, ids, quant.binary_codes(mat, center), quant.int4_codes(res, scale), center, scale)


VEC_BYTES = embed.DIM * np.dtype(quant.STORED_DTYPE).itemsize


def _matrix(blobs: list[bytes], ids: list[int]) -> np.ndarray:
    """The stored vectors as rows; a blob of the wrong size (a damaged or hand-edited file) is an
    ``IndexStoreError``, not a reshape error or, worse, rows silently shifted into each other."""
    for cid, blob in zip(ids, blobs):
        if not isinstance(blob, bytes) or len(blob) != VEC_BYTES:
            size = f"{len(blob)} bytes" if isinstance(blob, bytes) else f"a {type(blob).__name__}"
            raise IndexStoreError(f"the index is damaged: chunk {cid} holds {size} where its vector "
                                  f"takes {VEC_BYTES}")
    return quant.from_stored(np.frombuffer(b"".join(blobs), dtype=quant.STORED_DTYPE).reshape(len(blobs), embed.DIM))


def similarities(con: sqlite3.Connection, hits: list[Hit], qvec: np.ndarray) -> list[Hit]:
    """``hits`` with their ``similarity`` to the query vector, from their stored float16 vectors."""
    stored = stored_vectors(con, [h.chunk_id for h in hits])
    ids = [h.chunk_id for h in hits if h.chunk_id in stored]
    sims = dict(zip(ids, (_matrix([stored[c] for c in ids], ids) @ qvec).tolist())) if ids else {}
    return [h.model_copy(update={"similarity": round(sims[h.chunk_id], 4)}) if h.chunk_id in sims else h for h in hits]


def stored_vectors(con: sqlite3.Connection, ids: list[int]) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    for start in range(0, len(ids), 900):  # SQLite variable limit
        part = ids[start:start + 900]
        marks = ",".join("?" * len(part))
        for cid, blob in con.execute(f"SELECT id, vec FROM chunks WHERE id IN ({marks})", part):
            out[cid] = blob
    return out


def dense(con: sqlite3.Connection, vecs: Vectors, qvec: np.ndarray, k: int,
          candidates: int = CANDIDATES, rescore: int = RESCORE) -> list[tuple[int, float]]:
    """Three stages, each on fewer vectors with more bits: Hamming over all sign bits, int4
    dot products on the ``candidates`` nearest, float16 from disk on the best ``rescore``."""
    n = len(vecs.ids)
    if n == 0:
        return []
    qcode = quant.binary_codes(qvec[None, :], vecs.center)
    cand = _smallest(quant.hamming(vecs.codes, qcode).astype(np.int32), candidates)
    if len(cand) > max(rescore, k):
        approx = quant.int4_scores(vecs.nibbles[cand], qvec - vecs.center, vecs.scale)
        cand = cand[_smallest(-approx, max(rescore, k))]
    cand_ids = vecs.ids[cand].tolist()
    stored = stored_vectors(con, cand_ids)
    cand_ids = [c for c in cand_ids if c in stored]
    if not cand_ids:
        return []
    mat = _matrix([stored[c] for c in cand_ids], cand_ids)
    scores = mat @ qvec
    order = np.argsort(-scores)[:k]
    return [(cand_ids[i], float(scores[i])) for i in order]


def _smallest(values: np.ndarray, r: int) -> np.ndarray:
    return np.argpartition(values, r - 1)[:r] if r < len(values) else np.arange(len(values))


def exact(con: sqlite3.Connection, qvec: np.ndarray, k: int) -> list[tuple[int, float]]:
    """Brute force over every stored vector (a baseline; no binary candidates)."""
    rows = con.execute("SELECT id, vec FROM chunks").fetchall()
    if not rows:
        return []
    mat = _matrix([r[1] for r in rows], [r[0] for r in rows])
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
