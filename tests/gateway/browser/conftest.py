"""Fixtures for the playground's browser tests: the system Chromium driven by Playwright, and servers.

Chromium is Debian's (``apt-get install chromium chromium-driver``); Playwright
never downloads a browser here. The tests skip, saying why, when Chromium or
Playwright is missing, or while the gateway (``tether.gateway.app.create_app``)
has not landed.
"""

from __future__ import annotations

import importlib
import inspect
import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

CHROMIUM = os.environ.get("TETHER_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
TINY = "smollm2-135m"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-dev-shm-usage"]


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium (apt-get install -y chromium chromium-driver)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed: pip install -r requirements/browser.txt")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.js_errors = errors  # type: ignore[attr-defined]
    yield pg
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    except Exception:  # noqa: BLE001  (a screenshot is a nicety; never mask the test's own result)
        pass
    context.close()


# ------------------------------------------------------------------ servers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _ThreadServer:
    """An ASGI app under uvicorn on a background thread."""

    def __init__(self, app):
        import uvicorn

        self.port = _free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="session")
def fake_gateway():
    """The playground in front of a model-free stand-in for the API (see fake_gateway.py)."""
    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here))
    try:
        fake = importlib.import_module("fake_gateway")
    finally:
        sys.path.remove(str(here))
    app = fake.build()
    with _ThreadServer(app) as srv:
        srv.app = app
        yield srv


def _serve_command() -> list[str] | None:
    """``tether serve`` if the CLI has it."""
    tether = shutil.which("tether", path=str(Path(sys.executable).parent)) or shutil.which("tether")
    cmd = [tether] if tether else [sys.executable, "-m", "tether"]
    try:
        out = subprocess.run([*cmd, "serve", "--help"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return [*cmd, "serve"] if out.returncode == 0 else None


@pytest.fixture(scope="session")
def gateway(tmp_path_factory):
    """The real gateway (``tether serve --port 0``, or ``create_app()`` in-process), on the tiny model, no cloud."""
    try:
        from tether.gateway.app import create_app  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"the gateway has not landed yet (tether.gateway.app.create_app: {exc})")
    tmp = tmp_path_factory.mktemp("gateway")
    config = tmp / "router.toml"  # no private cloud, no third party: only the device
    config.write_text(f'device_model = "{TINY}"\n')
    env = {**os.environ, "TETHER_LEDGER": str(tmp / "ledger.sqlite"), "TETHER_ROUTER_CONFIG": str(config),
           "TETHER_THREADS": os.environ.get("TETHER_THREADS", "2")}
    import tether.gateway.app as gateway_app

    serves_page = "playground_routes" in inspect.getsource(gateway_app)
    serve = _serve_command() if serves_page else None
    if serve is not None:
        yield from _subprocess_gateway(serve, env)
    else:  # create_app() in this process; the playground appended until create_app includes it
        yield from _inprocess_gateway(env)


def _check_serves_playground(url: str) -> None:
    r = httpx.get(url + "/", timeout=30)
    if r.status_code != 200 or 'id="consent-modal"' not in r.text:
        pytest.skip("the gateway does not serve the playground at / yet: add *playground_routes() "
                    "(tether.gateway.playground) to create_app's routes")


def _subprocess_gateway(serve: list[str], env: dict[str, str]):
    proc = subprocess.Popen([*serve, "--host", "127.0.0.1", "--port", "0"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines: queue.Queue[str] = queue.Queue()
    log: list[str] = []

    def pump():
        for line in proc.stdout:  # type: ignore[union-attr]
            log.append(line)
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    url = None
    deadline = time.monotonic() + 180
    try:
        while url is None:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("tether serve did not report 'listening on URL':\n" + "".join(log[-40:]))
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            m = re.search(r"listening on (https?://\S+)", line)
            if m:
                url = m.group(1).rstrip("/.")
        _check_serves_playground(url)
        yield type("Server", (), {"url": url, "log": log, "proc": proc})()
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _inprocess_gateway(env: dict[str, str]):
    from tether.gateway.app import create_app

    saved = {k: os.environ.get(k) for k in ("TETHER_LEDGER", "TETHER_ROUTER_CONFIG", "TETHER_THREADS")}
    os.environ.update({k: env[k] for k in saved})
    try:
        app = create_app()
        if not any(getattr(r, "path", None) == "/" for r in app.routes):
            from tether.gateway.playground import playground_routes

            app.router.routes.extend(playground_routes())
        with _ThreadServer(app) as srv:
            _check_serves_playground(srv.url)
            yield srv
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
