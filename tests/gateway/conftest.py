"""One real ``tether serve`` process on loopback for the whole module (the model loads once)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

LISTENING = re.compile(r"listening on (http://\S+)")
MAX_STREAMS = 2


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(tmp: Path, *args: str, timeout: float = 180.0) -> Server:
    log = tmp / "serve.log"
    env = {**os.environ, "TETHER_LEDGER": str(tmp / "ledger.sqlite"), "TETHER_ROUTER_CONFIG": "",
           "TETHER_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "tether", "serve", "--port", "0", "--model", "smollm2-135m", *args],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = LISTENING.search(log.read_text(errors="replace"))
        if match:
            return Server(match.group(1), proc, log)
        if proc.poll() is not None:
            raise RuntimeError(f"tether serve exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        time.sleep(0.1)
    proc.kill()
    proc.wait(10)
    raise RuntimeError(f"tether serve did not start in {timeout:.0f} s:\n{log.read_text(errors='replace')}")


def stop_server(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(15)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(10)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    s = start_server(tmp_path_factory.mktemp("gateway"), "--max-streams", str(MAX_STREAMS))
    try:
        yield s
    finally:
        stop_server(s)
