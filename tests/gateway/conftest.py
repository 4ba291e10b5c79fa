"""One real ``tether serve`` process on loopback for the whole module (the model loads once)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tether.cloud.serving import spawn, stop

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


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    s = start_server(tmp_path_factory.mktemp("gateway"), "--max-streams", str(MAX_STREAMS))
    try:
        yield s
    finally:
        stop_server(s)
