"""The relay against hostile or broken peers, in process: real loopback servers stand in for
nodes and the log, so each fault is exact and fast."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from tether.cloud.attestation import Measurement, NodeIdentity, canonical_json, b64, make_attestation, node_config
from tether.cloud.node import SEALED_MEDIA_TYPE
from tether.cloud.relay import _FORCED_GAP, Relay

from tests.cloud.conftest import serve_in_thread as serve, wait_for


@pytest.fixture
def hanging():
    """Accepts connections and never answers (a node wedged before its headers)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held = []
    stop = threading.Event()

    def accept():
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    for c in held:
        c.close()
    sock.close()


@pytest.fixture
def nodes():
    served = []

    async def good(request):
        return Response(b"sealed-answer", media_type=SEALED_MEDIA_TYPE)

    async def huge_400(request):
        return Response(b"x" * (20 * 1024 * 1024), status_code=400, media_type="application/json")

    async def health(request):
        return JSONResponse({"ok": True})

    good_url, stop_good = serve([Route("/v1/envelope", good, methods=["POST"]), Route("/healthz", health)])
    bad_url, stop_bad = serve([Route("/v1/envelope", huge_400, methods=["POST"]), Route("/healthz", health)])
    served += [stop_good, stop_bad]
    yield {"good": good_url, "huge400": bad_url}
    for stop in served:
        stop()


def relay_request(*node_ids: str) -> dict:
    return {"targets": [{"node": n, "enc": "e", "key": "k"} for n in node_ids], "ct": "c"}


def test_a_hung_node_costs_only_the_header_timeout_then_the_next_answers(hanging, nodes):
    relay = Relay(None, {"hang": hanging, "good": nodes["good"]}, header_timeout=0.5, probe_interval=3600)
    with TestClient(relay.app(), base_url="http://127.0.0.1") as client:
        start = time.monotonic()
        r = client.post("/v1/relay", json=relay_request("hang", "good"))
        assert r.status_code == 200 and r.content == b"sealed-answer"
        assert r.headers["x-tether-node"] == "good"
        assert time.monotonic() - start < 5
        assert relay._down_until.get("hang", 0) > time.monotonic()  # cooled down for the next request


def test_a_node_rejection_is_the_bare_answer_whatever_the_node_sent(nodes):
    relay = Relay(None, {"big": nodes["huge400"]}, probe_interval=3600)
    with TestClient(relay.app(), base_url="http://127.0.0.1") as client:
        r = client.post("/v1/relay", json=relay_request("big"))
    assert r.status_code == 400 and r.json() == {"error": "rejected"}  # 20 MB never read or passed on


def _attestation(url: str, tag: str) -> dict:
    measurement = Measurement(code=tag * 64, model_sha256="b" * 64, config=node_config("m", n_ctx=2048, max_tokens=64))
    return make_attestation(NodeIdentity(), os.urandom(32), measurement, url=url, model="m", hardware={},
                            tokens_per_second=1.0)


def test_the_relay_routes_only_to_released_nodes_at_plain_addresses(nodes):
    """Anyone may announce a self-signed attestation; the relay must not become a proxy to it."""
    released = _attestation(nodes["good"], "a")
    unreleased = _attestation(nodes["good"], "c")
    identity = NodeIdentity()
    sneaky = _attestation(nodes["good"], "a")
    body = {k: v for k, v in sneaky.items() if k not in ("signature", "node_id", "signing_key")}
    body.update(node_id=identity.node_id, signing_key=b64(identity.public_bytes),
                url="http://127.0.0.1:9/internal/admin?q=")
    sneaky = {**body, "signature": b64(identity.sign(canonical_json(body)))}  # released measurement, odd URL
    directory = {"nodes": [{"attestation": a} for a in (released, unreleased, sneaky)] + [{"attestation": "junk"}, 5]}

    async def nodes_(request):
        return JSONResponse(directory)

    async def releases(request):
        return JSONResponse({"releases": {released["measurement"]: 1}})

    log_url, stop_log = serve([Route("/v1/log/nodes", nodes_), Route("/v1/log/releases", releases)])
    try:
        relay = Relay(log_url, probe_interval=0.05)
        with TestClient(relay.app(), base_url="http://127.0.0.1") as client:
            r = client.post("/v1/relay", json=relay_request(released["node_id"]))
            assert r.status_code == 200, (r.json(), relay.directory)
            for att in (unreleased, sneaky):
                r = client.post("/v1/relay", json=relay_request(att["node_id"]))
                assert r.status_code == 503 and r.json()["tried"] == 0
            assert set(client.get("/v1/relay/load").json()["nodes"]) == {released["node_id"]}
    finally:
        stop_log()


def test_the_prober_survives_a_malformed_address_and_unknown_ids_do_not_storm_the_log(nodes):
    fetches = []

    async def nodes_(request):
        fetches.append(time.monotonic())
        return JSONResponse({"nodes": []})

    async def releases(request):
        return JSONResponse({"releases": {}})

    log_url, stop_log = serve([Route("/v1/log/nodes", nodes_), Route("/v1/log/releases", releases)])
    try:
        relay = Relay(log_url, {"odd": "http://[::1", "good": nodes["good"]}, probe_interval=0.05, cooldown=60)
        with TestClient(relay.app(), base_url="http://127.0.0.1") as client:
            time.sleep(0.3)  # several probe rounds, each meeting the malformed address
            r = client.post("/v1/relay", json=relay_request("odd", "good"))
            assert r.status_code == 200 and r.headers["x-tether-node"] == "good"
            assert client.get("/v1/relay/load").json()["nodes"]["odd"]["healthy"] is False
            fetches.clear()
            start = time.monotonic()
            for _ in range(8):
                r = client.post("/v1/relay", json=relay_request(*[f"{i:016x}" for i in range(8)]))
                assert r.status_code == 503 and r.json()["tried"] == 0
            elapsed = time.monotonic() - start
            # 64 unknown ids: one read per request at most (the 8 ids of a request share it), and
            # reads at least _FORCED_GAP apart, so unknown ids cannot make the relay hammer the log.
            assert len(fetches) <= 8
            assert all(b - a >= _FORCED_GAP * 0.9 for a, b in zip(fetches, fetches[1:])), fetches
            assert elapsed < 8 * _FORCED_GAP + 2
    finally:
        stop_log()


def test_a_node_announced_just_after_a_directory_read_is_found_not_refused(nodes):
    """The device reads the log itself, so it can know a new node before the relay does: a
    request for an id the relay has not seen makes it read the log again, even right after
    a read (it waits out the gap instead of answering 503 "tried": 0)."""
    announced: list[dict] = []
    released = _attestation(nodes["good"], "a")

    async def nodes_(request):
        return JSONResponse({"nodes": list(announced)})

    async def releases(request):
        return JSONResponse({"releases": {released["measurement"]: 1}})

    log_url, stop_log = serve([Route("/v1/log/nodes", nodes_), Route("/v1/log/releases", releases)])
    try:
        relay = Relay(log_url, probe_interval=3600, directory_ttl=3600)
        with TestClient(relay.app(), base_url="http://127.0.0.1") as client:
            r = client.post("/v1/relay", json=relay_request("0" * 16))  # a forced read, just now
            assert r.status_code == 503 and r.json()["tried"] == 0
            announced.append({"attestation": released})
            r = client.post("/v1/relay", json=relay_request(released["node_id"]))
            assert r.status_code == 200 and r.headers["x-tether-node"] == released["node_id"]
            r = client.post("/v1/relay", json=relay_request("1" * 16))  # still unknown after a read: 503
            assert r.status_code == 503 and r.json()["tried"] == 0
    finally:
        stop_log()


def test_a_rejection_moves_on_to_the_next_target(nodes):
    """A stale entry (a restarted node's old id at its URL) rejects every wrap; the next target may open it."""
    async def reject(request):
        return JSONResponse({"error": "rejected"}, status_code=400)

    url, stop_reject = serve([Route("/v1/envelope", reject, methods=["POST"])])
    try:
        relay = Relay(None, {"stale": url, "other": url, "good": nodes["good"]}, probe_interval=3600)
        with TestClient(relay.app(), base_url="http://127.0.0.1") as client:
            r = client.post("/v1/relay", json=relay_request("stale", "good"))
            assert r.status_code == 200 and r.headers["x-tether-node"] == "good"
            r = client.post("/v1/relay", json=relay_request("stale", "other"))
            assert r.status_code == 400 and r.json() == {"error": "rejected"}
            assert r.headers["x-tether-rejected"] == "stale,other"  # the device cools exactly these
    finally:
        stop_reject()


def test_the_prober_calls_a_stale_entry_down_when_its_url_answers_for_another_node():
    async def health(request):
        return JSONResponse({"ok": True, "node_id": "new"})

    url, stop_node = serve([Route("/healthz", health)])
    try:
        relay = Relay(None, {"old": url, "new": url}, probe_interval=0.05, cooldown=60)
        with TestClient(relay.app(), base_url="http://127.0.0.1") as client:
            deadline = time.monotonic() + 5
            while not relay._down_until.get("old"):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            load = client.get("/v1/relay/load").json()["nodes"]
            assert load["old"]["healthy"] is False and load["new"]["healthy"] is True
    finally:
        stop_node()


def test_a_body_too_large_for_the_relay_or_for_every_node_is_413_with_the_limit(nodes):
    from tether.cloud.node import MAX_BODY

    def too_large(limit: str):
        async def envelope(request):
            return JSONResponse({"error": "too large"}, status_code=413, headers={"x-tether-max-body": limit})
        return serve([Route("/v1/envelope", envelope, methods=["POST"])])

    (small, stop_small), (smaller, stop_smaller), (odd, stop_odd) = too_large("2000"), too_large("1000"), too_large("lots")
    try:
        relay = Relay(None, {"small": small, "smaller": smaller, "odd": odd, "good": nodes["good"]}, probe_interval=3600)
        with TestClient(relay.app(), base_url="http://127.0.0.1") as client:
            r = client.post("/v1/relay", content=b"x" * (MAX_BODY + 1))
            assert r.status_code == 413 and r.json()["limit"] == MAX_BODY and r.json()["by"] == "relay"
            r = client.post("/v1/relay", json=relay_request("small", "smaller"))
            assert r.status_code == 413 and r.json()["limit"] == 1000 and r.json()["by"] == "nodes"
            r = client.post("/v1/relay", json=relay_request("odd"))
            assert r.status_code == 413 and r.json()["limit"] is None  # a header that is no number is not passed on
            r = client.post("/v1/relay", json=relay_request("small", "good"))  # another node takes it
            assert r.status_code == 200 and r.headers["x-tether-node"] == "good"
    finally:
        stop_small()
        stop_smaller()
        stop_odd()


def test_a_relay_that_cannot_read_the_log_warns_once_per_outage_and_healthz_says_stale(tmp_path, start_service, caplog):
    """A real ``tether log serve`` stopped and started again on the same port, database and key."""
    import logging

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["log", "serve", "--port", str(port), "--db", str(tmp_path / "log.sqlite"), "--key", str(tmp_path / "log.key")]
    log = start_service("log", args, tmp_path)
    relay = Relay(log.url, probe_interval=0.05, directory_ttl=0.05)
    warnings = lambda: [r.getMessage() for r in caplog.records if r.name == "tether.relay"]  # noqa: E731
    try:
        with caplog.at_level(logging.WARNING, logger="tether.relay"), \
                TestClient(relay.app(), base_url="http://127.0.0.1") as client:
            health = lambda: client.get("/healthz").json()  # noqa: E731
            wait_for(lambda: health()["log"]["stale"] is False)
            assert health()["ok"] is True and health()["log"]["directory_age_s"] < 5 and warnings() == []

            log.stop()
            down = wait_for(lambda: (h := health())["log"]["stale"] and h)
            time.sleep(0.5)  # ten more failed refreshes
            assert down["ok"] is True  # it still routes, on the last directory
            assert down["log"]["error"] and down["log"]["unreadable_for_s"] is not None
            assert health()["log"]["directory_age_s"] >= 0.5
            assert len(warnings()) == 1, warnings()
            assert f"transparency log {log.url} unreadable" in warnings()[0]
            assert client.get("/v1/log/sth").status_code == 502  # the mirror says so too, never an old answer

            log = start_service("log-again", args, tmp_path)
            wait_for(lambda: health()["log"]["stale"] is False)
            assert health()["log"]["unreadable_for_s"] is None and health()["log"]["error"] is None
            assert len(warnings()) == 2 and "readable again after" in warnings()[1]
    finally:
        log.stop()


def _relay_in_thread(relay: Relay):
    """The relay's app under a real uvicorn on loopback (lifespan on: its prober runs); (url, stop)."""
    import uvicorn

    from tether.cloud import serving

    sock, url = serving.bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(relay.app(), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_for(lambda: server.started)

    def stop():
        server.should_exit = True
        thread.join(10)

    return url, stop


def test_answers_in_flight_past_the_pool_make_the_relay_busy_not_the_node_down():
    """With every forwarding connection held by an answer in flight, one more request is the
    relay's 503 "relay busy": the node is not called down and its health probe still gets
    through. (At 256 answers in flight the relay blamed the node for its own pool: 503 "no
    target node reachable" after the 10 s header timeout, and healthy: false.)"""
    import asyncio

    import httpx
    from starlette.responses import StreamingResponse

    release = threading.Event()

    async def envelope(request):
        await request.body()

        async def frames():
            yield b"x"
            while not release.is_set():
                await asyncio.sleep(0.05)

        return StreamingResponse(frames(), media_type=SEALED_MEDIA_TYPE)

    async def health(request):
        return JSONResponse({"ok": True, "node_id": "n"})

    from tether.cloud.serving import MAX_CONNECTIONS

    assert Relay(None, {"n": "http://127.0.0.1:9"}).max_forwarded >= MAX_CONNECTIONS  # as many as it admits

    node_url, stop_node = serve([Route("/v1/envelope", envelope, methods=["POST"]), Route("/healthz", health)])
    relay = Relay(None, {"n": node_url}, max_forwarded=2, busy_timeout=0.5, header_timeout=3, probe_interval=0.1)
    url, stop_relay = _relay_in_thread(relay)
    http = httpx.Client(timeout=10)
    held = []
    try:
        for _ in range(2):  # the whole pool, each answer in flight
            stream = http.stream("POST", f"{url}/v1/relay", json=relay_request("n"))
            resp = stream.__enter__()
            reading = resp.iter_raw()  # kept: a reader dropped mid-answer closes its connection
            held.append((stream, reading))
            assert resp.status_code == 200 and next(reading) == b"x"
        start = time.monotonic()
        extra = http.post(f"{url}/v1/relay", json=relay_request("n"))
        assert extra.status_code == 503 and "relay busy" in extra.json()["error"], extra.text
        assert time.monotonic() - start < 2.5  # the busy wait, not the node's header timeout
        assert relay._down_until.get("n", 0) <= time.monotonic()  # not blamed on the node
        time.sleep(0.3)  # probe rounds, while the pool is still full
        load = http.get(f"{url}/v1/relay/load").json()["nodes"]["n"]
        assert load == {"inflight": 2, "healthy": True}, load
        for stream, _ in held:
            stream.__exit__(None, None, None)
        held.clear()
        wait_for(lambda: relay.inflight.get("n") == 0)
        for _ in range(4):  # each slot comes back, also from a device that hangs up at once
            with http.stream("POST", f"{url}/v1/relay", json=relay_request("n")) as resp:
                assert resp.status_code == 200
        with http.stream("POST", f"{url}/v1/relay", json=relay_request("n")) as resp:
            assert resp.status_code == 200 and next(resp.iter_raw()) == b"x"
    finally:
        for stream, _ in held:
            stream.__exit__(None, None, None)
        release.set()
        http.close()
        stop_relay()
        stop_node()


def test_a_node_s_health_answer_cannot_hold_or_bloat_the_prober():
    """Anyone may announce a node, and the relay probes every listed address: a /healthz that
    trickles (each read inside the probe's per-read timeout) or never ends held the whole probe
    round (every node's health went stale) and was read into memory to its last byte."""
    import asyncio

    from starlette.responses import StreamingResponse

    from tests.cloud.conftest import trickled

    sent = [0]

    async def bloat(request):
        async def body():
            yield b'{"ok": true, "node_id": "bloat", "pad": "'
            for _ in range(2048):  # 128 MiB
                sent[0] += 65536
                yield b"x" * 65536
                await asyncio.sleep(0)  # lets the server notice the probe hang up
            yield b'"}'
        return StreamingResponse(body(), media_type="application/json")

    async def slow(request):
        return trickled(40, 0.25, b'{"ok": true, "node_id": "slow"}')  # 10 s, a byte every 0.25 s

    bloat_url, stop_bloat = serve([Route("/healthz", bloat)])
    slow_url, stop_slow = serve([Route("/healthz", slow)])
    relay = Relay(None, {"bloat": bloat_url, "slow": slow_url}, cooldown=60)

    async def probe(node_id, url):
        start = time.monotonic()
        await relay._probe(node_id, url)
        return time.monotonic() - start

    async def both():
        try:
            return await asyncio.gather(probe("bloat", bloat_url), probe("slow", slow_url))
        finally:
            await relay.probe_http.aclose()

    try:
        took = asyncio.run(both())
        assert sent[0] < 16 * 2**20, sent[0]  # what flow control lets through before the probe stops reading
        assert max(took) < 4, took
        assert relay._down_until.get("bloat") and relay._down_until.get("slow")
    finally:
        stop_bloat()
        stop_slow()
