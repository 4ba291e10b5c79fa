"""``--cors-origin`` in a real browser: a page on a listed loopback port reads an answer and its X-Tether-* headers,
a page on an unlisted port gets nothing. The gateway is ``create_app`` under uvicorn in a thread (no model needed:
the privacy scan and the model list run without one)."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.gateway.conftest import app_in_thread

FETCH = """async (gw) => {
  try {
    const r = await fetch(gw + '/v1/privacy/scan', {method: 'POST', body: JSON.stringify({text: 'Mail jane@example.com'}),
      headers: {'Content-Type': 'application/json', 'X-Tether-Consent': 'no'}});  // not simple: a preflight first
    return {status: r.status, tier: r.headers.get('X-Tether-Tier'), rule: r.headers.get('X-Tether-Rule'),
            bodyTier: (await r.json()).tether.tier};
  } catch (e) {
    return {blocked: e.name};
  }
}"""


class _Page(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802  (http.server's spelling)
        body = b"<!doctype html><title>web app</title><p>a web app on another port"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextmanager
def page_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def gateway(cors_origins: tuple[str, ...]):
    return app_in_thread(cors_origins=cors_origins)


def test_a_listed_page_reads_the_answer_and_an_unlisted_one_gets_nothing(page):
    with page_server() as listed, page_server() as unlisted, gateway((listed,)) as gw:
        page.goto(listed + "/")
        got = page.evaluate(FETCH, gw)
        assert got == {"status": 200, "tier": "device", "rule": "feature", "bodyTier": "device"}, got
        page.goto(unlisted + "/")
        assert page.evaluate(FETCH, gw) == {"blocked": "TypeError"}
        assert not page.js_errors
