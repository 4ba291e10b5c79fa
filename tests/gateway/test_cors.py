"""``tether serve --cors-origin``: a listed web app may call the gateway from the browser; no other origin may.

On the real gateway app (``create_app``, no model loaded: the privacy scan and the model list need none).
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from tether.cli import cli
from tether.cli.serve import serve_cmd  # importing it registers the command
from tether.errors import InputError
from tether.gateway import create_app
from tether.routing import Router
from tether.routing.config import RouterConfig

TINY = "smollm2-135m"
APP = "http://localhost:5173"
PREFLIGHT = {"Origin": APP, "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization, content-type, x-tether-consent"}
SCAN = {"text": "Mail jane@example.com"}


def client(base_url: str = "http://127.0.0.1:8400", remote: bool = False, **options) -> TestClient:
    app = create_app(Router(RouterConfig(device_model=TINY)), prewarm=False, **options)
    return TestClient(app, base_url=base_url, client=("192.168.1.77", 5000) if remote else ("127.0.0.1", 5000))


def listed(lines: str) -> set[str]:
    return {h.strip().lower() for h in lines.split(",")}


def test_a_listed_origin_gets_its_preflight_answered_and_can_read_where_a_request_ran():
    with client(cors_origins=(APP, "https://app.example")) as c:
        pre = c.options("/v1/chat/completions", headers=PREFLIGHT)
        assert pre.status_code == 200, pre.text
        assert pre.headers["access-control-allow-origin"] == APP
        assert {"authorization", "content-type", "x-tether-consent"} <= listed(pre.headers["access-control-allow-headers"])
        assert listed(pre.headers["access-control-allow-methods"]) == {"get", "post", "options"}
        # Chrome asks before a public site reaches this machine; a listed one may
        pna = c.options("/v1/models", headers={**PREFLIGHT, "Access-Control-Request-Private-Network": "true"})
        assert pna.status_code == 200 and pna.headers["access-control-allow-private-network"] == "true"

        r = c.post("/v1/privacy/scan", json=SCAN, headers={"Origin": APP})
        assert r.status_code == 200, r.text
        assert r.headers["access-control-allow-origin"] == APP and "origin" in listed(r.headers["vary"])
        assert r.headers["x-tether-tier"] == "device"
        exposed = listed(r.headers["access-control-expose-headers"])
        assert {h.lower() for h in r.headers if h.startswith("x-tether-")} <= exposed
        assert exposed == {"x-tether-tier", "x-tether-rule", "x-tether-reason"}

        r = c.get("/v1/models", headers={"Origin": "https://app.example"})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://app.example"
        # a listed origin asking for a method outside the list is told no by the preflight
        assert c.options("/v1/models", headers={**PREFLIGHT, "Access-Control-Request-Method": "DELETE"}).status_code == 400


def test_a_listed_origin_may_send_the_headers_the_openai_js_client_adds():
    """openai-node, in the browser (dangerouslyAllowBrowser), sends headers of its own; the preflight allows them."""
    sdk = ("authorization, content-type, accept, x-stainless-lang, x-stainless-package-version, x-stainless-os, "
           "x-stainless-arch, x-stainless-runtime, x-stainless-runtime-version, x-stainless-retry-count, "
           "x-stainless-timeout, openai-organization, openai-project")
    with client(cors_origins=(APP,)) as c:
        pre = c.options("/v1/chat/completions", headers={**PREFLIGHT, "Access-Control-Request-Headers": sdk})
        assert pre.status_code == 200, pre.text
        assert listed(sdk) <= listed(pre.headers["access-control-allow-headers"])
        assert "access-control-allow-credentials" not in pre.headers
        r = c.post("/v1/privacy/scan", json=SCAN, headers={"Origin": APP, "x-stainless-os": "MacOS",
                                                           "x-stainless-retry-count": "0"})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == APP
    with client(cors_origins=(APP,)) as c:  # another origin gets nothing for them
        pre = c.options("/v1/chat/completions", headers={**PREFLIGHT, "Origin": "http://evil.example",
                                                         "Access-Control-Request-Headers": sdk})
        assert pre.status_code == 403 and "access-control-allow-headers" not in pre.headers


@pytest.mark.parametrize("origin", ["http://localhost:5174", "https://localhost:5173", "http://evil.example", "null"])
def test_an_unlisted_origin_is_refused_exactly_as_without_the_list(origin):
    with client(cors_origins=(APP,)) as with_list, client() as without:
        for method, path, kwargs in [("GET", "/v1/models", {}), ("POST", "/v1/privacy/scan", {"json": SCAN}),
                                     ("OPTIONS", "/v1/chat/completions", {})]:
            headers = {**PREFLIGHT, "Origin": origin} if method == "OPTIONS" else {"Origin": origin}
            got = with_list.request(method, path, headers=headers, **kwargs)
            before = without.request(method, path, headers=headers, **kwargs)
            assert got.status_code == before.status_code == 403, (method, got.text)
            assert got.json() == before.json() and got.json()["error"]["code"] == "origin_not_allowed"
            assert dict(got.headers) == dict(before.headers)
            assert "access-control-allow-origin" not in got.headers


def test_the_key_still_applies_to_a_listed_origin_but_not_to_its_preflight():
    options = dict(base_url="http://192.168.1.20:8400", remote=True, api_key="s3cret-key", cors_origins=(APP,))
    with client(**options) as c:
        pre = c.options("/v1/privacy/scan", headers=PREFLIGHT)  # browsers send no Authorization here
        assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == APP
        r = c.post("/v1/privacy/scan", json=SCAN, headers={"Origin": APP})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert r.headers["access-control-allow-origin"] == APP  # so the page can read why
        r = c.post("/v1/privacy/scan", json=SCAN, headers={"Origin": APP, "Authorization": "Bearer s3cret-key"})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == APP
        # an unlisted origin's preflight from that machine meets the key first, as before
        assert c.options("/v1/privacy/scan", headers={**PREFLIGHT, "Origin": "http://evil.example"}).status_code == 401


def test_the_host_check_still_applies_to_a_listed_origin():
    with client(base_url="http://rebound.example:8400", cors_origins=(APP,)) as c:
        r = c.get("/v1/models", headers={"Origin": APP})
        assert r.status_code == 403 and r.json()["error"]["code"] == "host_not_allowed"


def test_origins_are_compared_as_browsers_send_them():
    with client(cors_origins=("HTTP://LocalHost:80", "http://[::1]:5173")) as c:
        assert c.get("/v1/models", headers={"Origin": "http://localhost"}).headers["access-control-allow-origin"] \
            == "http://localhost"
        assert c.get("/v1/models", headers={"Origin": "http://[::1]:5173"}).status_code == 200


@pytest.mark.parametrize("origin", ["*", "not a url", "http://localhost:5173/", "http://localhost:5173/app",
                                    "null", "ftp://localhost", "http://localhost:99999", "http://user@localhost"])
def test_a_wildcard_or_a_non_origin_is_a_one_line_error(origin):
    assert cli.commands["serve"] is serve_cmd
    r = CliRunner().invoke(cli, ["serve", "--port", "0", "--cors-origin", APP, "--cors-origin", origin],
                           env={"TETHER_ROUTER_CONFIG": "", "TETHER_RAISE_ERRORS": ""})
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit), r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "--cors-origin" in lines[0] and "Traceback" not in r.output, r.output
    assert ("every web site" if origin == "*" else "scheme://host[:port]") in lines[0]
    with pytest.raises(InputError):
        create_app(Router(RouterConfig(device_model=TINY)), prewarm=False, cors_origins=(origin,))
