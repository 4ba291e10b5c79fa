"""Real processes on loopback: the log, the relay and nodes, each a ``tether`` subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

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
