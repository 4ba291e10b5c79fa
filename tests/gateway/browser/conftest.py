"""Fixtures for the playground's browser tests: the system Chromium driven by Playwright, and servers.

Chromium is Debian's (``apt-get install chromium chromium-driver``, which
``make test`` does as root); Playwright never downloads a browser here. The tests
skip, saying why, when Chromium or Playwright is missing, unless ``TETHER_REQUIRE_BROWSER=1``
(set by ``.ci/run``): then a missing browser fails them, so CI cannot go green without them.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from tether.cloud.serving import spawn, stop

CHROMIUM = os.environ.get("TETHER_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
TINY = "smollm2-135m"
NAMED = "Please email Alice Johnson at alice.johnson@example.com about the Berlin contract."
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-dev-shm-usage"]


def missing(why: str) -> None:
    if os.environ.get("TETHER_REQUIRE_BROWSER") == "1":
        pytest.fail(f"TETHER_REQUIRE_BROWSER=1, but {why}")
    pytest.skip(why)


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        missing(f"{CHROMIUM} is absent: install Debian's chromium (apt-get install -y chromium chromium-driver)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed: pip install -r requirements/browser.txt")
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


# ------------------------------------------------------------------ the real gateway


@pytest.fixture(scope="session")
def gateway(tmp_path_factory):
    """``tether serve --port 0`` on the tiny model, with no cloud configured, a throwaway ledger and
    a small search index ($TETHER_INDEX: the user's index, as the gateway reads it by default)."""
    tmp = tmp_path_factory.mktemp("gateway")
    config = tmp / "router.toml"  # no private cloud, no third party: only the device
    config.write_text(f'device_model = "{TINY}"\n')
    from tests.gateway.test_gateway_search import build_index

    env = {**os.environ, "TETHER_LEDGER": str(tmp / "ledger.sqlite"), "TETHER_ROUTER_CONFIG": str(config),
           "TETHER_THREADS": os.environ.get("TETHER_THREADS", "2"), "TETHER_INDEX": str(build_index(tmp / "files"))}
    log = tmp / "serve.log"
    proc, url = spawn([sys.executable, "-m", "tether", "serve", "--host", "127.0.0.1", "--port", "0"], log, env=env)
    try:
        assert 'id="consent-modal"' in httpx.get(url + "/", timeout=30).text
        yield type("Server", (), {"url": url, "log": log, "proc": proc})()
    finally:
        stop(proc, timeout=15)


@contextmanager
def serving_with_provider(tmp: Path, config: str) -> Iterator[Any]:
    """``tether serve`` on the tiny model with the stand-in OpenAI-compatible provider (it echoes)
    on loopback as its third party; ``config`` is the rest of router.toml."""
    from tests.routing.conftest import start_provider, stop_provider

    provider = start_provider(tmp)
    (tmp / "router.toml").write_text(f'device_model = "{TINY}"\n{config}\n[third_party]\n'
                                     f'base_url = "{provider.url}"\nmodel = "gpt-test"\nretries = 0\n')
    env = {**os.environ, "TETHER_LEDGER": str(tmp / "ledger.sqlite"), "TETHER_ROUTER_CONFIG": str(tmp / "router.toml"),
           "TETHER_THREADS": os.environ.get("TETHER_THREADS", "2")}
    try:
        proc, url = spawn([sys.executable, "-m", "tether", "serve", "--host", "127.0.0.1", "--port", "0"],
                          tmp / "serve.log", env=env)
    except BaseException:
        stop_provider(provider)
        raise
    try:
        yield type("Server", (), {"url": url, "proc": proc, "provider": provider})()
    finally:
        stop(proc, timeout=15)
        stop_provider(provider)


@pytest.fixture(scope="session")
def third_party_gateway(tmp_path_factory):
    """A third party configured, behind consent = "ask"."""
    with serving_with_provider(tmp_path_factory.mktemp("third-party-gateway"), 'consent = "ask"\ncascade = []\n') as s:
        yield s


def watch_the_dialog(page) -> None:
    """Record in the page whether the consent dialog is ever shown, however briefly."""
    page.evaluate("""() => {
        const modal = document.getElementById('consent-modal');
        window.dialogShown = !modal.hidden;
        new MutationObserver(() => { if (!modal.hidden) window.dialogShown = true; })
            .observe(modal, {attributes: true});
    }""")
