"""How every cloud service serves: slow or abandoned requests are cut off, on a real uvicorn over loopback."""

from __future__ import annotations

import logging
import socket
import threading
import time

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from tether.cloud import serving

from tests.conftest import run_async


async def echo(request):
    try:
        body = await serving.read_body(request, 64, timeout=0.5)
    except serving.BodyError as exc:
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    return JSONResponse({"size": len(body)})


@pytest.fixture
def server(monkeypatch):
    import uvicorn

    monkeypatch.setattr(serving, "HEADER_TIMEOUT", 0.5)
    app = Starlette(routes=[Route("/echo", echo, methods=["POST"])], exception_handlers=serving.json_http_errors())
    sock, url = serving.bind("127.0.0.1", 0)
    config = uvicorn.Config(app, http=serving._protocol(), log_level="warning", lifespan="off",
                            limit_concurrency=serving.MAX_CONNECTIONS)
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield url, sock.getsockname()[1]
    srv.should_exit = True
    thread.join(10)


def _raw(port: int, data: bytes, wait: float = 5.0) -> bytes:
    """Send ``data`` and read until the server closes or ``wait`` passes."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(data)
        got = b""
        try:
            while chunk := s.recv(4096):
                got += chunk
        except TimeoutError:
            return got + b"<still open>"
        return got


def test_half_sent_headers_are_cut_off(server):
    url, port = server
    start = time.monotonic()
    assert _raw(port, b"POST /echo HTTP/1.1\r\nHost: x\r\n") == b""  # closed, nothing said
    assert time.monotonic() - start < 3
    assert _raw(port, b"", wait=3) == b""  # a connection that says nothing is closed too
    assert httpx.post(f"{url}/echo", content=b"hi", timeout=5).json() == {"size": 2}  # others are served


def test_a_body_that_never_finishes_gets_408(server):
    _, port = server
    answer = _raw(port, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n0123456789")
    assert answer.startswith(b"HTTP/1.1 408") and b"request body not received within 0.5 s" in answer


def test_oversized_bodies_and_unknown_paths_are_json_errors(server):
    url, _ = server
    r = httpx.post(f"{url}/echo", content=b"x" * 65, timeout=5)
    assert r.status_code == 413 and r.json() == {"error": "body larger than 64 bytes"}
    r = httpx.post(f"{url}/echo", content=b"x" * 65, headers={"content-length": "65"}, timeout=5)
    assert r.status_code == 413
    r = httpx.get(f"{url}/nowhere", timeout=5)
    assert r.status_code == 404 and r.json() == {"error": "Not Found"}
    r = httpx.get(f"{url}/echo", timeout=5)
    assert r.status_code == 405 and r.json() == {"error": "Method Not Allowed"}


def test_a_client_that_hangs_up_mid_body_leaves_no_traceback(server, caplog):
    url, port = server
    with caplog.at_level(logging.ERROR):
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n01234")
        time.sleep(0.3)
        assert httpx.post(f"{url}/echo", content=b"ok", timeout=5).json() == {"size": 2}
    assert not [r for r in caplog.records if "Exception in ASGI application" in r.getMessage()]


def test_accepted_connections_send_small_bodies_at_once():
    """asyncio (and so uvicorn) sets TCP_NODELAY only on sockets made for IPPROTO_TCP; without it
    Nagle held every small body written after its headers for the client's delayed ACK (~40 ms a
    request on a kept-alive connection, found by benchmarks/embeddings.py)."""
    import asyncio

    sock, _ = serving.bind("127.0.0.1", 0)
    seen: list[int] = []

    async def main() -> None:
        async def on_connect(reader, writer):  # type: ignore[no-untyped-def]
            seen.append(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(on_connect, sock=sock)
        async with server:
            _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
            for _ in range(100):
                if seen:
                    break
                await asyncio.sleep(0.01)
            writer.close()

    run_async(main())  # on a thread of its own: the browser tests' Playwright keeps a loop running here
    assert seen and seen[0] != 0
