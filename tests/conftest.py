"""Shared fixtures. Every test uses the real llama.cpp engine and real models.

``TETHER_CACHE_DIR`` points at a per-run temp dir unless the caller set it, so
the suite proves that models assemble from the installed weight packages.
"""

from __future__ import annotations

import os
import tempfile

import pytest

if "TETHER_CACHE_DIR" not in os.environ:
    os.environ["TETHER_CACHE_DIR"] = tempfile.mkdtemp(prefix="tether-test-cache-")
# Never write to the user's own ledger or read their router config from the tests.
os.environ["TETHER_LEDGER"] = os.path.join(tempfile.mkdtemp(prefix="tether-test-ledger-"), "ledger.sqlite")
os.environ.pop("TETHER_ROUTER_CONFIG", None)

def run_async(coro):
    """``asyncio.run`` on a thread of its own: Playwright's sync API (the browser tests' session
    fixture) keeps an event loop running on the main thread, where asyncio.run refuses to start."""
    import asyncio
    import threading

    out: dict = {}

    def main() -> None:
        try:
            out["value"] = asyncio.run(coro)
        except BaseException as exc:  # noqa: BLE001  (re-raised on the caller's thread)
            out["error"] = exc

    thread = threading.Thread(target=main)
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


TINY = "smollm2-135m"  # fast: engine, session and CLI plumbing
SMALL = "qwen2.5-0.5b"  # feature behaviour (marked `quality`)


@pytest.fixture(scope="session")
def tiny():
    from tether.models.engine import load

    return load(TINY)


@pytest.fixture(scope="session")
def small():
    from tether.models.engine import load

    return load(SMALL)
