"""Who may call the gateway: the Host, Origin and key checks, on a real ASGI app."""

from __future__ import annotations

import subprocess
import sys

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from tether.gateway.local_only import LocalOnly


def app(**options) -> Starlette:
    async def ok(request):
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route("/v1/models", ok)], middleware=[Middleware(LocalOnly, **options)])


def test_with_a_key_other_machines_must_send_it_and_this_one_need_not():
    keyed = app(api_key="s3cret-key")
    remote = TestClient(keyed, base_url="http://192.168.1.20:8400", client=("192.168.1.77", 5000))
    r = remote.get("/v1/models")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert "s3cret" not in r.text
    assert remote.get("/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert remote.get("/v1/models", headers={"Authorization": "Bearer s3cret-key"}).json() == {"ok": True}
    local = TestClient(keyed, base_url="http://127.0.0.1:8400", client=("127.0.0.1", 5000))
    assert local.get("/v1/models").status_code == 200
    # without a key nothing changes: loopback-only by default
    assert TestClient(app(), base_url="http://192.168.1.20", client=("192.168.1.77", 5)).get("/v1/models").status_code == 200


def test_serving_a_network_interface_without_a_key_is_refused_in_one_line():
    env = {"PATH": "/usr/bin:/bin", "TETHER_GATEWAY_KEY": ""}
    r = subprocess.run([sys.executable, "-m", "tether", "serve", "--host", "0.0.0.0", "--port", "0"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode != 0 and "TETHER_GATEWAY_KEY" in r.stderr and "--no-key" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    # a host that is no address is named as a typo, not as a network interface that needs a key
    r = subprocess.run([sys.executable, "-m", "tether", "serve", "--host", "999.1.1.1", "--port", "0"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode != 0 and "is not an IP address" in r.stderr and "TETHER_GATEWAY_KEY" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
