"""Stopping ``tether serve`` (Ctrl-C) while a stream is open: the generation stops, the stream ends
with a "cancelled" frame, and its cleanup does not fail on the engine thread the shutdown took away."""

from __future__ import annotations

import json
import signal

import httpx

from tests.conftest import run_async
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
            rest = [line for line in lines if line]
            server.proc.wait(timeout=30)
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(timeout=10)
    log = server.output()
    assert "RuntimeError" not in log and "cannot schedule new futures" not in log, log[-3000:]
    # Ctrl-C stops the generation: the stream ends at once, saying why, rather than when uvicorn's
    # graceful-shutdown wait runs out and it cancels the response (which logged a traceback)
    assert json.loads(rest[-1].removeprefix("data: "))["error"]["code"] == "cancelled", rest[-3:]
    assert "Traceback" not in log and "Exception in ASGI application" not in log, log[-3000:]


def test_a_stream_whose_engine_thread_the_shutdown_took_ends_as_cancelled_not_as_a_bug(caplog):
    """The race behind the test above, made certain: the shutdown takes the engine thread while a
    stream waits between two tokens. The executor then refuses the next token's read with a
    RuntimeError, which used to be logged as a failed stream (a bug); it is a cancelled one."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from tether.gateway.chat import _Stream
    from tether.gateway.core import Gateway

    engine_thread = ThreadPoolExecutor(1)
    engine_thread.shutdown()
    outcomes: list[str] = []

    async def finish(_chunk):
        return None

    async def unfinished(outcome, deltas):
        outcomes.append(outcome)

    chunk = {"choices": [{"index": 0, "delta": {"content": "Once"}}]}
    stream = _Stream(Gateway(router=None), engine_thread, iter([chunk]), {"choices": []}, threading.Event(), finish,
                     unfinished=unfinished)

    async def read_all():
        return [frame async for frame in stream.frames()]

    frames = run_async(read_all())
    error = json.loads(frames[-1].decode().removeprefix("data: "))["error"]
    assert "cancelled" in error["message"]
    assert outcomes == ["abandoned"]
    assert "stream failed" not in caplog.text
