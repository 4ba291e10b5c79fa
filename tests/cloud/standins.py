"""Stand-in nodes for the device client's tests: real loopback servers that hold real node keys,
announced to a real log, each with one exact behaviour (answer, hang, stall, refuse as too large)."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from dataclasses import dataclass
from typing import Callable

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tether.cloud.attestation import Measurement, NodeIdentity, make_attestation, node_config
from tether.cloud.envelope import KeyPair, ReplayGuard, open_request
from tether.cloud.node import SEALED_MEDIA_TYPE

from tests.cloud.conftest import serve_in_thread

RELEASE = Measurement(code="d" * 64, model_sha256="e" * 64, config=node_config("stand-in", n_ctx=512, max_tokens=64))


def release(log_url: str, token: str) -> None:
    r = httpx.post(f"{log_url}/v1/log/releases", json=RELEASE.components(),
                   headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 200, r.text


@dataclass
class StandIn:
    node_id: str
    url: str
    served: list  # one entry per envelope received
    stop: Callable[[], None]


def _completion(text: str) -> dict:
    return {"id": "c", "object": "chat.completion", "model": "stand-in",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


def _chunk(text: str) -> dict:
    return {"id": "c", "object": "chat.completion.chunk", "model": "stand-in",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


def stand_in(log_url: str, model: str, behaviour: str, *, tokens_per_second: float = 100.0,
             stall: float = 3600.0, pause: float = 0.0, limit: int | None = None,
             node_token: str | None = None) -> StandIn:
    """``behaviour``: ``answer`` (at once), ``hang`` (headers, then nothing), ``no_message`` / ``not_text`` (a
    sealed frame that is no chat completion), ``flood`` (50 chunks per ``max_tokens`` when streamed), ``stall`` (one chunk, with
    ``pause`` a second one ``pause`` seconds later, then nothing for ``stall`` seconds), ``too_large`` (HTTP 413 with its limit, as a node with a smaller
    body limit than the relay's answers). With ``limit``, an envelope over ``limit`` bytes gets that 413
    whatever the behaviour, and a smaller one gets the behaviour.

    Answers sealed right but shaped wrong for their mode, each otherwise a normal node:
    ``empty_choices`` (not streamed: ``"choices": []``), ``done_as_answer`` (not streamed: ``{"done": true}``),
    ``message_in_stream`` (streamed: a chunk with ``message`` where ``delta`` belongs). Too large:
    ``fat_chunks`` (streamed: 1 MiB chunks), ``fat_answer`` (streamed: 300 chunks of 60 KiB)."""
    identity, keys, guard = NodeIdentity(), KeyPair(), ReplayGuard()
    node_id = identity.node_id
    closing = threading.Event()
    served: list = []

    async def wait(seconds: float) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while not closing.is_set() and loop.time() < end:
            await asyncio.sleep(0.05)

    async def envelope(request: Request) -> Response:
        body = await request.body()
        if behaviour == "too_large" or (limit is not None and len(body) > limit):
            served.append("too_large")
            most = 1000 if limit is None else limit
            return JSONResponse({"error": f"body larger than {most} bytes"}, status_code=413,
                                headers={"x-tether-max-body": str(most)})
        served.append(behaviour)
        chat, sealer = open_request(json.loads(body), node_id, keys, guard)

        async def frames():
            if behaviour == "hang":
                await wait(3600)
                return
            if behaviour == "no_message":  # sealed, but no chat completion: a buggy or hostile node
                yield sealer.seal({"id": "c", "choices": [{}]}, final=True)
                return
            if behaviour == "not_text":
                yield sealer.seal({"id": "c", "choices": [{"delta": {"content": 5}, "message": {"content": 5}}]},
                                  final=True)
                return
            if behaviour == "empty_choices" and not chat.get("stream"):
                yield sealer.seal({"id": "c", "object": "chat.completion", "choices": []}, final=True)
                return
            if behaviour == "done_as_answer" and not chat.get("stream"):
                yield sealer.seal({"done": True}, final=True)
                return
            if behaviour == "message_in_stream" and chat.get("stream"):
                yield sealer.seal({"id": "c", "object": "chat.completion.chunk",
                                   "choices": [{"index": 0, "message": {"content": "hi"}}]})
                yield sealer.seal({"done": True}, final=True)
                return
            if behaviour in ("fat_chunks", "fat_answer") and chat.get("stream"):
                size, count = (2**20, int(chat.get("max_tokens") or 16) + 4) if behaviour == "fat_chunks" \
                    else (60 * 1024, 300)
                for _ in range(count):  # within max_tokens' frame count (fat_answer: in a long answer's)
                    yield sealer.seal(_chunk("x" * size))
                    await asyncio.sleep(0)
                yield sealer.seal({"done": True}, final=True)
                return
            if behaviour == "flood" and chat.get("stream"):  # far more chunks than max_tokens allows
                for _ in range(int(chat.get("max_tokens") or 16) * 50):
                    yield sealer.seal(_chunk("x"))
                yield sealer.seal({"done": True}, final=True)
                return
            if not chat.get("stream"):
                yield sealer.seal(_completion(f"answer from {node_id}"), final=True)
                return
            yield sealer.seal(_chunk("first "))
            if behaviour == "stall":
                if pause:
                    await wait(pause)
                    yield sealer.seal(_chunk("second "))
                await wait(stall)
            yield sealer.seal(_chunk(f"answer from {node_id}"))
            yield sealer.seal({"done": True}, final=True)

        return StreamingResponse(frames(), media_type=SEALED_MEDIA_TYPE)

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True, "node_id": node_id})

    url, stop_server = serve_in_thread([Route("/v1/envelope", envelope, methods=["POST"]), Route("/healthz", health)])
    att = make_attestation(identity, keys.public_bytes, RELEASE, url=url, model=model, hardware={},
                           tokens_per_second=tokens_per_second)
    headers = {"Authorization": f"Bearer {node_token}"} if node_token else {}
    r = httpx.post(f"{log_url}/v1/log/nodes", json=att, headers=headers, timeout=10)
    assert r.status_code == 200, r.text

    def stop() -> None:
        closing.set()
        stop_server()

    return StandIn(node_id, url, served, stop)


def unique_model(tag: str) -> str:
    """Each test's nodes serve their own model name, so a device sees only them in the shared log."""
    return f"{tag}-{os.urandom(4).hex()}"
