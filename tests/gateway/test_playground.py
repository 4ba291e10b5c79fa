"""The playground's routes and assets, without a browser (see browser/ for the page itself)."""

from __future__ import annotations

import re

from starlette.applications import Starlette
from starlette.testclient import TestClient

from tether.gateway.playground import ASSETS, playground_routes


def client() -> TestClient:
    return TestClient(Starlette(routes=playground_routes()))


def test_index_is_served_at_root_with_a_strict_policy():
    r = client().get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "<title>Tether playground</title>" in r.text
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp and "script-src 'self'" in csp


def test_assets_are_served_under_playground():
    c = client()
    for name, kind in [("app.js", "javascript"), ("style.css", "text/css")]:
        r = c.get(f"/playground/{name}")
        assert r.status_code == 200, name
        assert kind in r.headers["content-type"], r.headers["content-type"]
        assert r.headers["x-content-type-options"] == "nosniff"
    assert c.get("/playground/nope.js").status_code == 404
    assert c.get("/playground/../playground.py").status_code == 404


def test_page_references_only_its_own_assets():
    """No CDN, nothing remote: the page loads offline from the gateway alone."""
    html = (ASSETS / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sorted(refs) == ["/playground/app.js", "/playground/style.css"]
    for name in ("index.html", "app.js", "style.css"):
        text = (ASSETS / name).read_text()
        assert not re.search(r"https?://|//cdn|@import", text), name


def test_page_calls_the_gateway_api():
    js = (ASSETS / "app.js").read_text()
    for path in ("/v1/chat/completions", "/v1/notifications/summarize", "/v1/writing/proofread",
                 "/v1/writing/rewrite", "/v1/writing/summarize", "/v1/replies", "/v1/emoji", "/v1/privacy/scan",
                 "/v1/route/recent"):
        assert f'"{path}"' in js, path
    assert '"X-Tether-Consent"' in js
    # text from the user or a model is never written as HTML
    assert "innerHTML" not in js and "insertAdjacentHTML" not in js and "document.write" not in js


def test_every_element_the_script_uses_exists():
    html = (ASSETS / "index.html").read_text()
    js = (ASSETS / "app.js").read_text()
    ids = set(re.findall(r'\$\("([a-z-]+)"\)', js))
    assert ids, "no ids found"
    missing = [i for i in sorted(ids) if f'id="{i}"' not in html]
    assert not missing
