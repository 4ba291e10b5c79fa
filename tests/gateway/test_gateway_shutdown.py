"""Stopping ``tether serve`` (Ctrl-C) while a stream is open: the stream's cleanup must not fail on
the engine thread the shutdown already took away. (uvicorn's own notice that it cancelled the
request after its graceful-shutdown timeout is expected and not checked here.)"""

from __future__ import annotations

import signal

import httpx

from tests.gateway.conftest import start_server


def test_ctrl_c_during_an_open_stream_does_not_fail_its_cleanup(tmp_path):
    server = start_server(tmp_path)
    body = {"model": "device", "stream": True, "max_tokens": 1000, "temperature": 0,
            "messages": [{"role": "user", "content": "Write a very long story about a lighthouse keeper."}]}
    try:
        with httpx.Client(timeout=60) as c, c.stream("POST", server.url + "/v1/chat/completions", json=body) as r:
            assert r.status_code == 200
            lines = r.iter_lines()
            next(lines)
            server.proc.send_signal(signal.SIGINT)
            server.proc.wait(timeout=30)
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(timeout=10)
    log = server.output()
    assert "RuntimeError" not in log and "cannot schedule new futures" not in log, log[-3000:]
