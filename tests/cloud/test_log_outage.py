"""A transparency-log outage, on real processes: a log and a relay (``tether`` subprocesses), a
stand-in node, and between the device and the log a loopback proxy that forwards, fails with 503,
drops connections, or serves a tree head signed by another key.

An outage keeps the nodes verified against the last tree head in use while that head is young
enough; a failed check never does."""

from __future__ import annotations

import time

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tether.cloud.attestation import b64, canonical_json
from tether.cloud.client import CloudClient
from tether.cloud.transparency import MAX_STH_AGE
from tether.errors import LogUnreachableError, NoNodeAvailableError, TransparencyLogError

from tests.cloud.conftest import log_and_relay, serve_in_thread
from tests.cloud.standins import stand_in, unique_model

TOKEN = "outage-admin"
HI = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    root = tmp_path_factory.mktemp("outage")
    with log_and_relay(root, TOKEN) as (log, relay, key):
        state = {"mode": "up", "seen": []}

        async def forward(request: Request) -> Response:
            state["seen"].append(request.url.path)
            if state["mode"] == "503":
                return JSONResponse({"error": "log restarting"}, status_code=503)
            if state["mode"] == "garbage":
                return Response(b"<html>bad gateway</html>", status_code=502)
            async with httpx.AsyncClient() as http:
                upstream = await http.get(log.url + request.url.path, params=request.query_params, timeout=10)
            body = upstream.json()
            if state["mode"] == "forged" and request.url.path == "/v1/log/sth":
                body = _resigned(body)
            return JSONResponse(body, status_code=upstream.status_code)

        url, stop = serve_in_thread([Route("/{path:path}", forward)])
        try:
            yield {"log": log, "relay": relay, "key": key, "root": root, "proxy": url, "state": state}
        finally:
            stop()


def _resigned(sth: dict) -> dict:
    """The same tree head, signed by a key the device never pinned."""
    fields = {k: v for k, v in sth.items() if k != "signature"}
    return {**fields, "signature": b64(Ed25519PrivateKey.generate().sign(canonical_json(fields)))}


@pytest.fixture
def node(cloud):
    cloud["state"]["mode"] = "up"
    model = unique_model("outage")
    standin = stand_in(cloud["log"].url, model, "answer")
    yield model, standin
    standin.stop()
    cloud["state"]["mode"] = "up"


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def _client(cloud, model: str, clock: Clock) -> CloudClient:
    return CloudClient(cloud["proxy"], cloud["relay"].url, log_key=cloud["key"], model=model, directory_ttl=0,
                       state_path=cloud["root"] / f"device-{time.monotonic_ns()}.json", clock=clock)


@pytest.mark.parametrize("outage", ["503", "garbage", "closed"])
def test_an_outage_keeps_the_verified_nodes_until_their_tree_head_is_too_old(cloud, node, outage, caplog):
    model, standin = node
    clock = Clock()
    client = _client(cloud, model, clock)
    try:
        assert client.chat(HI)["x_tether"]["node"] == standin.node_id
        assert client.log_outage is None
        if outage == "closed":  # nothing listens at the log's address any more
            client.log.url = "http://127.0.0.1:9"
        else:
            cloud["state"]["mode"] = outage
        clock.offset = MAX_STH_AGE / 2
        with caplog.at_level("WARNING", logger="tether.cloud"):
            for _ in range(3):  # every request retries the log (directory_ttl=0) and is still served
                assert client.chat(HI)["x_tether"]["node"] == standin.node_id
        assert client.log_outage is not None
        assert any(sign in client.log_outage["error"] for sign in ("unreachable", "HTTP 503", "HTTP 502"))
        assert len([r for r in caplog.records if "verified" in r.getMessage()]) == 1  # one warning per outage

        clock.offset = MAX_STH_AGE + 5  # the last verified head is now older than a fresh one may be
        with pytest.raises(LogUnreachableError, match="past the 600 s a tree head is trusted"):
            client.chat(HI)
    finally:
        client.close()
    assert len(standin.served) == 4


def test_the_log_coming_back_ends_the_outage_and_re_verifies(cloud, node, caplog):
    model, standin = node
    client = _client(cloud, model, Clock())
    try:
        client.chat(HI)
        cloud["state"]["mode"] = "503"
        client.chat(HI)
        assert client.log_outage is not None
        cloud["state"]["mode"] = "up"
        with caplog.at_level("WARNING", logger="tether.cloud"):
            assert client.chat(HI)["x_tether"]["node"] == standin.node_id
        assert client.log_outage is None
        assert any("readable again" in r.getMessage() for r in caplog.records)
    finally:
        client.close()


def test_a_tree_head_signed_by_another_key_is_refused_even_with_verified_nodes_in_hand(cloud, node):
    model, standin = node
    client = _client(cloud, model, Clock())
    try:
        client.chat(HI)
        cloud["state"]["mode"] = "forged"
        with pytest.raises(TransparencyLogError) as caught:
            client.chat(HI)
    finally:
        client.close()
    assert not isinstance(caught.value, LogUnreachableError)
    assert "not the one pinned" in str(caught.value)
    assert len(standin.served) == 1


def test_a_device_that_never_read_the_log_has_nothing_to_fall_back_on(cloud, node):
    model, _ = node
    cloud["state"]["mode"] = "503"
    client = _client(cloud, model, Clock())
    try:
        with pytest.raises(LogUnreachableError, match="HTTP 503"):
            client.chat(HI)
    finally:
        client.close()


def test_an_attestation_that_ages_out_during_the_outage_is_dropped(cloud, node):
    model, standin = node
    clock = Clock()
    client = _client(cloud, model, clock)
    client.max_attestation_age = 100.0
    try:
        client.chat(HI)
        cloud["state"]["mode"] = "503"
        clock.offset = 150.0  # the head is still young enough (600 s); the node's attestation is not
        with pytest.raises(NoNodeAvailableError) as caught:
            client.chat(HI)
    finally:
        client.close()
    assert "no verified node" in str(caught.value)
    assert len(standin.served) == 1
