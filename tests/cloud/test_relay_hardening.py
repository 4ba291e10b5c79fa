"""The relay against a node that dies mid-answer and against addresses that are no node.

Real processes on loopback: ``tether relay serve``, ``tether node serve --upstream`` (fronting a
stand-in engine in this process) and ``tether log serve``; the "nodes" that are not nodes are
real loopback servers in this process.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tether.cloud.attestation import NodeIdentity, make_attestation, unb64
from tether.cloud.envelope import KeyPair, seal_request
from tether.cloud.node import SEALED_MEDIA_TYPE
from tether.errors import EnvelopeError

from tests.cloud.conftest import log_and_relay, serve_in_thread, wait_for

SECRET = "internal-service-secret-4f1c"


def _not_a_node(media_type: str | None) -> tuple[str, callable]:
    """Answers every POST /v1/envelope with 200, ``SECRET`` in the body, and the given content-type;
    its /healthz is a 200 JSON page, as many internal services have."""
    async def envelope(request: Request) -> Response:
        resp = Response(f'{{"secret": "{SECRET}"}}'.encode())
        if media_type is None:
            del resp.headers["content-type"]
        else:
            resp.headers["content-type"] = media_type
        return resp

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return serve_in_thread([Route("/v1/envelope", envelope, methods=["POST"]), Route("/healthz", health)])


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def _relay_request(*node_ids: str) -> dict:
    return {"targets": [{"node": n, "enc": "e", "key": "k"} for n in node_ids], "ct": "c"}


# ---------------------------------------------------------------- a node killed mid-answer


def test_a_node_killed_mid_stream_is_one_warning_line_and_a_truncated_answer(tmp_path, start_service):
    release = threading.Event()

    async def completions(request: Request) -> Response:
        body = await request.json()
        if not body.get("stream"):  # the node's start-up speed measurement
            return JSONResponse({"id": "e", "object": "chat.completion", "model": "m", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "one two"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}})

        async def sse():
            yield b'data: {"id": "e", "object": "chat.completion.chunk", "model": "m", "choices": ' \
                  b'[{"index": 0, "delta": {"content": "first "}, "finish_reason": null}]}\n\n'
            for _ in range(600):  # then nothing: the node is killed while it waits
                if release.is_set():
                    return
                await asyncio.sleep(0.1)

        return StreamingResponse(sse(), media_type="text/event-stream")

    engine, stop_engine = serve_in_thread([Route("/v1/chat/completions", completions, methods=["POST"])])
    services = []
    try:
        node = start_service("node", ["node", "serve", "-m", "smollm2-135m", "--upstream", engine,
                                      "--model-sha256", "0" * 64, "--port", "0"], tmp_path)
        services.append(node)
        att = httpx.get(f"{node.url}/v1/attestation", timeout=10).json()
        node_id = att["node_id"]
        relay = start_service("relay", ["relay", "serve", "--port", "0", "--node", f"{node_id}={node.url}"], tmp_path)
        services.append(relay)

        sealed, openers = seal_request({"messages": [{"role": "user", "content": "a secret question"}],
                                        "stream": True}, [(node_id, unb64(att["hpke_key"]))])
        opener = openers[node_id]
        frames = []
        with httpx.stream("POST", f"{relay.url}/v1/relay", json=sealed.to_json(), timeout=30) as r:
            assert r.status_code == 200 and r.headers["x-tether-node"] == node_id
            chunks = r.iter_raw()
            while not frames:
                frames += list(opener.feed(next(chunks)))
            node.kill()
            for data in chunks:  # the relay's answer ends; no network error reaches the device
                frames += list(opener.feed(data))
        assert frames[0]["choices"][0]["delta"]["content"] == "first " and {"done": True} not in frames
        with pytest.raises(EnvelopeError, match="truncated"):
            opener.close()  # what the device reads as a truncated answer: it cools the node, fails over

        wait_for(lambda: "failed mid-answer" in relay.err.read_text(errors="replace"), 15.0)
        time.sleep(0.5)  # anything uvicorn would add after
        err = relay.err.read_text(errors="replace")
        assert "Traceback" not in err and "Exception in ASGI application" not in err, err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and node_id in lines[0], lines
        assert "secret" not in err
        assert httpx.get(f"{relay.url}/healthz", timeout=5).json()["ok"] is True
        assert httpx.get(f"{relay.url}/v1/relay/load", timeout=5).json()["nodes"][node_id]["healthy"] is False
    finally:
        release.set()
        for s in services:
            s.stop()
        stop_engine()


# ---------------------------------------------------------------- addresses that are no node


@pytest.mark.parametrize("media_type", ["application/json", "text/event-stream", None,
                                        "application/tether-sealed-but-not"])
def test_a_200_that_is_not_sealed_is_never_passed_on(tmp_path, start_service, media_type):
    async def good(request: Request) -> Response:
        return Response(b"sealed-answer", media_type=SEALED_MEDIA_TYPE)

    fake, stop_fake = _not_a_node(media_type)
    real, stop_real = serve_in_thread([Route("/v1/envelope", good, methods=["POST"])])
    relay = None
    try:
        relay = start_service("relay", ["relay", "serve", "--port", "0", "--node", f"fake={fake}",
                                        "--node", f"real={real}"], tmp_path)
        r = httpx.post(f"{relay.url}/v1/relay", json=_relay_request("fake"), timeout=30)
        assert SECRET not in r.text
        assert r.status_code == 503 and r.json() == {"error": "no target node reachable", "tried": 1}
        r = httpx.post(f"{relay.url}/v1/relay", json=_relay_request("fake", "real"), timeout=30)
        assert r.status_code == 200 and r.headers["x-tether-node"] == "real" and r.content == b"sealed-answer"
        assert "Traceback" not in relay.output()
    finally:
        if relay is not None:
            relay.stop()
        stop_fake()
        stop_real()


def test_load_tells_an_announced_service_that_answers_from_a_closed_port(tmp_path):
    """An announcement may aim at any host:port; ``/v1/relay/load`` must not say which of them answer."""
    from tests.cloud.standins import RELEASE, stand_in

    fake, stop_fake = _not_a_node("application/json")
    stops = [stop_fake]
    try:
        with log_and_relay(tmp_path, "hardening-admin") as (log, relay, _key):
            announced = {}
            for name, url in (("answers", fake), ("closed", _closed_port())):
                att = make_attestation(NodeIdentity(), KeyPair().public_bytes, RELEASE, url=url, model="m",
                                       hardware={}, tokens_per_second=1.0)
                assert httpx.post(f"{log.url}/v1/log/nodes", json=att, timeout=10).status_code == 200
                announced[name] = att["node_id"]
            node = stand_in(log.url, "m", "answer")  # a real node: its health is still reported
            stops.append(node.stop)

            def load():
                nodes = httpx.get(f"{relay.url}/v1/relay/load", timeout=5).json()["nodes"]
                if {*announced.values(), node.node_id} <= set(nodes):
                    return nodes
                return None

            def settled():
                nodes = load()
                return nodes if nodes and not any(nodes[n]["healthy"] for n in announced.values()) else None

            wait_for(settled, 15.0)
            time.sleep(2.5)  # another probe round: the answer does not flip back
            nodes = load()
            assert nodes[announced["answers"]] == nodes[announced["closed"]] == {"inflight": 0, "healthy": False}
            assert nodes[node.node_id]["healthy"] is True
            r = httpx.post(f"{relay.url}/v1/relay", json=_relay_request(announced["answers"]), timeout=30)
            assert r.status_code == 503 and SECRET not in r.text
    finally:
        for stop in stops:
            stop()
