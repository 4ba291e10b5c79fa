"""One real ``tether serve`` process on loopback for the whole module (the model loads once)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from tether.cloud.serving import bind, spawn, stop

MAX_STREAMS = 2


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(tmp: Path, *args: str, timeout: float = 180.0, router_config: Path | None = None,
                 model: str = "smollm2-135m") -> Server:
    log = tmp / "serve.log"
    env = {**os.environ, "TETHER_LEDGER": str(tmp / "ledger.sqlite"), "TETHER_ROUTER_CONFIG": str(router_config or ""),
           "TETHER_THREADS": "1"}
    proc, url = spawn([sys.executable, "-m", "tether", "serve", "--port", "0", "--model", model, *args],
                      log, env=env, timeout=timeout)
    return Server(url, proc, log)


def stop_server(server: Server) -> None:
    stop(server.proc, timeout=15)


@contextmanager
def behind_a_provider(tmp: Path, config: dict[str, Any], *args: str) -> Iterator[tuple[Server, Any]]:
    """A real ``tether serve`` (``args``) whose router config is ``config``, its third party the real
    OpenAI-compatible stand-in on loopback (model gpt-test; ``config["third_party"]`` adds to that).
    Yields (server, provider); both are stopped afterwards."""
    from tests.routing.conftest import start_provider, stop_provider

    provider = start_provider(tmp)
    try:
        path = tmp / "router.json"
        third = {"base_url": provider.url, "model": "gpt-test", **config.get("third_party", {})}
        path.write_text(json.dumps({**config, "third_party": third}))
        server = start_server(tmp, *args, router_config=path)
        try:
            yield server, provider
        finally:
            stop_server(server)
    finally:
        stop_provider(provider)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    s = start_server(tmp_path_factory.mktemp("gateway"), "--max-streams", str(MAX_STREAMS))
    try:
        yield s
    finally:
        stop_server(s)


@contextmanager
def app_in_thread(**options: Any) -> Iterator[str]:
    """``create_app(router, prewarm=False, **options)`` under a real uvicorn in a thread, for
    tests that need no model (it loads only when asked); yields its URL. ``log_config=None``:
    uvicorn's records reach the root logger, so caplog sees a traceback if one is logged."""
    import uvicorn

    from tether.gateway import create_app
    from tether.routing import Router
    from tether.routing.config import RouterConfig

    sock, url = bind("127.0.0.1", 0)
    app = create_app(Router(RouterConfig(device_model="smollm2-135m")), prewarm=False, **options)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", log_config=None))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(300):
            if server.started:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the gateway did not start")
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
