"""Real processes on loopback: the log, the relay and nodes, each a ``tether`` subprocess."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tether.cloud.serving import spawn, stop

@dataclass
class Service:
    name: str
    proc: subprocess.Popen
    url: str
    out: Path
    err: Path
    home: Path
    info: dict[str, str] = field(default_factory=dict)

    def output(self) -> str:
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        stop(self.proc)


def _start_service(name: str, args: list[str], root: Path, timeout: float = 180.0) -> Service:
    """Start ``tether ARGS`` with its own cwd, HOME and TMPDIR under ``root``; wait until it listens."""
    home = root / name
    for sub in ("cwd", "home", "tmp"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    from tether.models import catalog

    env = {**os.environ, "HOME": str(home / "home"), "TMPDIR": str(home / "tmp"),
           "TETHER_CACHE_DIR": str(catalog.cache_dir()), "TETHER_THREADS": "1", "PYTHONUNBUFFERED": "1",
           "PYTHONDONTWRITEBYTECODE": "1", "XDG_DATA_HOME": str(home / "home" / ".local/share"),
           "XDG_STATE_HOME": str(home / "home" / ".local/state"), "XDG_CACHE_HOME": str(home / "home" / ".cache")}
    out, err = home / "stdout.txt", home / "stderr.txt"
    proc, url = spawn([sys.executable, "-m", "tether", *args], out, stderr=err, env=env, cwd=home / "cwd",
                      timeout=timeout)
    return Service(name, proc, url, out, err, home)


@pytest.fixture(scope="session")
def start_service():
    return _start_service


@contextlib.contextmanager
def log_and_relay(root: Path, token: str) -> Iterator[tuple[Service, Service, str]]:
    """A transparency log with a release logged (admin ``token``) and a relay on it, stopped on
    exit: (log, relay, the log's public key)."""
    from tests.cloud.standins import release

    services: list[Service] = []
    try:
        log = _start_service("log", ["log", "serve", "--port", "0", "--db", str(root / "log.sqlite"),
                                     "--key", str(root / "log.key"), "--admin-token", token], root)
        services.append(log)
        release(log.url, token)
        relay = _start_service("relay", ["relay", "serve", "--port", "0", "--log", log.url], root)
        services.append(relay)
        yield log, relay, re.search(r"log key: (\S+)", log.output()).group(1)
    finally:
        for s in services:
            s.stop()


def trickled(pieces: int, every: float, end: bytes):
    """A JSON answer sent one space every ``every`` seconds, ``pieces`` times, then ``end``: each
    read well inside a per-read timeout, the whole far past any overall one."""
    import asyncio

    from starlette.responses import StreamingResponse

    async def body():
        for _ in range(pieces):
            yield b" "
            await asyncio.sleep(every)
        yield end

    return StreamingResponse(body(), media_type="application/json")


def serve_in_thread(routes: list) -> tuple[str, Callable[[], None]]:
    """A real uvicorn on loopback in a thread; returns (url, stop)."""
    import threading
    import time

    import uvicorn
    from starlette.applications import Starlette

    from tether.cloud import serving

    sock, url = serving.bind("127.0.0.1", 0)
    srv = uvicorn.Server(uvicorn.Config(Starlette(routes=routes), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.02)

    def stop():
        srv.should_exit = True
        thread.join(10)

    return url, stop


@pytest.fixture
def nodes():
    """Stand-in nodes (``standins.stand_in``) a test starts; each is stopped after the test."""
    started: list = []
    yield started
    for node in started:
        node.stop()


def wait_for(predicate: Callable[[], object], seconds: float = 10.0) -> object:
    """Poll ``predicate`` until it returns something true (that is returned); fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)
