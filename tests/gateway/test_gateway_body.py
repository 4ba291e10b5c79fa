"""Reading a request body: a deadline (408), and a client that leaves mid-body is a quiet
cancelled request, not a 500 traceback. The gateway is ``create_app`` under uvicorn in a thread
(no model is needed: the body never arrives), with a 1 s deadline so the test does not wait 30."""

from __future__ import annotations

import json
import logging
import socket
import time

import httpx

from tests.gateway.conftest import app_in_thread

DEADLINE = 1.0
HEAD = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n" + b'{"model": ')  # 10 of the 1000 bytes promised


def gateway():
    return app_in_thread(body_timeout=DEADLINE)


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def _read_response(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 1 << 30


def test_a_body_that_never_arrives_is_a_408_within_the_deadline():
    with gateway() as url, _connect(url) as conn:
        start = time.monotonic()
        conn.sendall(HEAD)
        raw = _read_response(conn)
        took = time.monotonic() - start
    assert raw.startswith(b"HTTP/1.1 408"), raw[:200]
    assert DEADLINE * 0.9 <= took < DEADLINE + 5
    err = json.loads(raw.split(b"\r\n\r\n", 1)[1])["error"]
    assert err["code"] == "request_timeout" and err["type"] == "invalid_request_error"
    assert f"{DEADLINE:g} s" in err["message"]


def test_a_client_that_leaves_mid_body_is_a_quiet_cancelled_request(caplog):
    with caplog.at_level(logging.ERROR), gateway() as url:
        before = httpx.get(url + "/healthz", timeout=10).json()
        with _connect(url) as conn:
            conn.sendall(HEAD)
            time.sleep(0.3)
        for _ in range(40):  # the server notices the closed socket at once
            if httpx.get(url + "/healthz", timeout=10).json()["cancelled"] > before["cancelled"]:
                break
            time.sleep(0.05)
        after = httpx.get(url + "/healthz", timeout=10).json()
        assert after["cancelled"] == before["cancelled"] + 1
        assert after["errors"] == before["errors"]
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not logged, logged
