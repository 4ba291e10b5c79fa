"""The private cloud end to end: a log, a relay and two nodes, each a real process on loopback.

Runs on smollm2-135m. Tests run in file order; the last one kills a node.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tether.cloud.client import CloudClient
from tether.errors import NodeRejectedError, TransparencyLogError

MODEL = "smollm2-135m"
METRICS = "node-operator-metrics"
OPERATOR = {"Authorization": f"Bearer {METRICS}"}
TOKEN = "cluster-admin-token"


class WriteWatcher:
    """Samples /proc for files a process holds open for writing (the statelessness test reads them)."""

    def __init__(self) -> None:
        self.pids: set[int] = set()
        self.paths: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in list(self.pids):
                self.paths.update(files_open_for_writing(pid))
            time.sleep(0.02)


def files_open_for_writing(pid: int) -> set[str]:
    found: set[str] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return found
    for fd in fds:
        try:
            target = os.readlink(fd_dir / fd)
            flags = int(re.search(r"flags:\s*(\d+)", Path(f"/proc/{pid}/fdinfo/{fd}").read_text()).group(1), 8)
        except (OSError, AttributeError):
            continue
        if flags & 0o3 and target.startswith("/") and not target.startswith(("/dev/", "/proc/")):
            found.add(target.removesuffix(" (deleted)"))
    return found


@pytest.fixture(scope="module")
def cloud(tmp_path_factory, start_service):
    root = tmp_path_factory.mktemp("cloud")
    watcher = WriteWatcher()
    watcher.start()
    services = []
    try:
        log = start_service("log", ["log", "serve", "--port", "0", "--db", str(root / "log.sqlite"),
                                    "--key", str(root / "log.key"), "--admin-token", TOKEN], root)
        services.append(log)
        log_key = re.search(r"log key: (\S+)", log.output()).group(1)
        from click.testing import CliRunner

        released = CliRunner().invoke(_cli(), ["log", "release", "--log", log.url, "--model", MODEL,
                                               "--n-ctx", "2048", "--max-tokens", "256", "--token", TOKEN])
        assert released.exit_code == 0, released.output
        nodes = []
        for name in ("node-a", "node-b"):
            node = start_service(name, ["node", "serve", "-m", MODEL, "--port", "0", "--n-ctx", "2048",
                                        "--max-tokens", "256", "--log", log.url, "--metrics-token", METRICS], root)
            node.info["node_id"] = re.search(r"node (\w+) ", node.output()).group(1)
            watcher.pids.add(node.proc.pid)
            services.append(node)
            nodes.append(node)
        relay = start_service("relay", ["relay", "serve", "--port", "0", "--log", log.url], root)
        watcher.pids.add(relay.proc.pid)
        services.append(relay)
        # No log URL: the device reads the log through the relay's mirror, as by default.
        client = CloudClient(None, relay.url, log_key=log_key, state_path=root / "device-state.json",
                             k=2, read_timeout=30, cooldown=60)
        yield {"log": log, "relay": relay, "nodes": nodes, "client": client, "root": root, "log_key": log_key,
               "watcher": watcher, "services": services}
        client.close()
    finally:
        watcher.stop()
        for s in services:
            s.stop()


def _cli():
    from tether.cli import cli
    from tether.cli import cloud, log  # noqa: F401  (register the groups)

    return cli


def ask(prompt: str, **extra) -> dict:
    return {"messages": [{"role": "user", "content": prompt}], "temperature": 0, **extra}


def content(completion: dict) -> str:
    return completion["choices"][0]["message"]["content"]


def test_both_nodes_are_verified_through_the_log(cloud):
    verdicts = cloud["client"].refresh()
    ids = {n.info["node_id"] for n in cloud["nodes"]}
    assert {v.node_id for v in verdicts if v.trusted} == ids
    assert all(v.reason == "verified" for v in verdicts)


def test_device_audits_the_log_through_the_relay_only(cloud):
    client = cloud["client"]
    assert client.log.url == cloud["relay"].url  # it was never given the log's address
    assert client.log.last_sth["size"] == httpx.get(f"{cloud['log'].url}/v1/log/sth", timeout=5).json()["size"]
    # The mirror is read-only: nothing can be released or announced through it.
    for path in ("releases", "nodes"):
        assert httpx.post(f"{cloud['relay'].url}/v1/log/{path}", json={}, timeout=5).status_code == 405


def test_cli_lists_trusted_nodes_knowing_only_the_relay(cloud):
    from click.testing import CliRunner

    result = CliRunner().invoke(_cli(), ["cloud", "nodes", "--relay", cloud["relay"].url, "--log-key", cloud["log_key"],
                                         "--json"], env={"TETHER_CLOUD_STATE": str(cloud["root"] / "cli-state.json"),
                                                         "TETHER_LOG_URL": None})
    assert result.exit_code == 0, result.output
    trusted = {v["node_id"] for v in json.loads(result.stdout) if v["trusted"]}
    assert trusted == {n.info["node_id"] for n in cloud["nodes"]}


class _Capture(http.server.BaseHTTPRequestHandler):
    seen: list[dict] = []

    def do_GET(self) -> None:
        _Capture.seen.append({"path": self.path, "headers": dict(self.headers), "peer": self.client_address[0]})
        body = json.dumps({"public_key": "captured"}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_relay_log_mirror_forwards_no_device_header_and_reports_a_dead_log(cloud, start_service):
    """What the log operator receives, captured: the path and query, none of the device's headers."""
    capture = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    threading.Thread(target=capture.serve_forever, daemon=True).start()
    log_url = f"http://127.0.0.1:{capture.server_address[1]}"
    relay = start_service("relay-capture", ["relay", "serve", "--port", "0", "--log", log_url], cloud["root"])
    try:
        marks = {"user-agent": "device-ua-7f3a", "cookie": "session=device-cookie-7f3a",
                 "x-forwarded-for": "203.0.113.77", "authorization": "Bearer device-token-7f3a",
                 "x-device-id": "device-id-7f3a"}
        r = httpx.get(f"{relay.url}/v1/log/entries", params={"start": 3, "end": 4}, headers=marks, timeout=5)
        assert r.status_code == 200 and r.json() == {"public_key": "captured"}
        forwarded = [s for s in _Capture.seen if s["path"].startswith("/v1/log/entries")]
        assert [s["path"] for s in forwarded] == ["/v1/log/entries?start=3&end=4"]
        sent = json.dumps(forwarded[0]["headers"]).lower()
        assert not any(v.lower() in sent for v in marks.values())
        assert not {"forwarded", "x-forwarded-for", "x-real-ip", "cookie"} & {h.lower() for h in forwarded[0]["headers"]}

        capture.shutdown()
        capture.server_close()
        dead = httpx.get(f"{relay.url}/v1/log/sth", timeout=15)
        assert dead.status_code == 502 and "transparency log unreachable" in dead.json()["error"]
        device = CloudClient(None, relay.url, log_key=cloud["log_key"], state_path=cloud["root"] / "dead-log.json")
        try:
            with pytest.raises(TransparencyLogError, match="HTTP 502: transparency log unreachable"):
                device.refresh()
        finally:
            device.close()
        assert relay.proc.poll() is None
    finally:
        relay.stop()


def test_end_to_end_request(cloud):
    out = cloud["client"].chat(ask("Name three colours.", max_tokens=24))
    assert out["object"] == "chat.completion"
    assert content(out).strip()
    assert out["usage"]["completion_tokens"] > 0
    assert out["x_tether"]["node"] in {n.info["node_id"] for n in cloud["nodes"]}


def test_end_to_end_stream_matches_the_plain_answer(cloud):
    body = ask("Write one sentence about the sea.", max_tokens=40)
    plain = content(cloud["client"].chat(body))
    stream = cloud["client"].stream(body)
    chunks = list(stream)
    assert len(chunks) > 3 and chunks[0]["object"] == "chat.completion.chunk"
    assert stream.text == plain  # greedy: same text, streamed or not, on either node
    assert chunks[-1]["choices"][0]["finish_reason"] in {"stop", "length"}
    assert stream.failovers == 0


def test_json_schema_and_logprobs_inside_the_envelope(cloud):
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "rank": {"type": "integer"}},
              "required": ["city", "rank"], "additionalProperties": False}
    out = cloud["client"].chat(ask("Name a big city and its rank.", max_tokens=48, logprobs=True, top_logprobs=2,
                                   response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": schema}}))
    parsed = json.loads(content(out))
    assert set(parsed) == {"city", "rank"} and isinstance(parsed["rank"], int)
    lps = out["choices"][0]["logprobs"]["content"]
    assert len(lps) == out["usage"]["completion_tokens"]
    assert all(lp["logprob"] <= 0 and len(lp["top_logprobs"]) == 2 for lp in lps)


def test_request_over_the_context_window_is_a_clear_sealed_error(cloud):
    with pytest.raises(NodeRejectedError, match="context window"):
        cloud["client"].chat(ask("word " * 3000, max_tokens=16))


def _sealed(cloud, body: dict) -> dict:
    client = cloud["client"]
    sealed, openers = client.seal(body, client.nodes()[:1])
    return sealed.to_json(), openers


def test_tampered_ciphertext_is_rejected(cloud):
    relay = cloud["relay"].url
    message, _ = _sealed(cloud, ask("hello", max_tokens=4))
    raw = bytearray(base64.b64decode(message["ct"]))
    raw[len(raw) // 2] ^= 0x40
    tampered = {**message, "ct": base64.b64encode(bytes(raw)).decode()}
    r = httpx.post(f"{relay}/v1/relay", json=tampered, timeout=30)
    assert r.status_code == 400 and r.json() == {"error": "rejected"}
    wrapped = dict(message)
    wrapped["targets"] = [{**message["targets"][0], "key": base64.b64encode(b"\0" * 48).decode()}]
    r = httpx.post(f"{relay}/v1/relay", json=wrapped, timeout=30)
    assert r.status_code == 400 and r.json() == {"error": "rejected"}  # same answer, whatever failed
    # The untampered original still works: the rejections spent nothing.
    r = httpx.post(f"{relay}/v1/relay", json=message, timeout=60)
    assert r.status_code == 200


def test_replayed_request_is_rejected(cloud):
    relay = cloud["relay"].url
    message, openers = _sealed(cloud, ask("hello again", max_tokens=4))
    first = httpx.post(f"{relay}/v1/relay", json=message, timeout=60)
    assert first.status_code == 200
    node = first.headers["x-tether-node"]
    frames = list(openers[node].feed(first.content))
    assert frames and frames[-1]["object"] == "chat.completion"
    again = httpx.post(f"{relay}/v1/relay", json=message, timeout=60)
    assert again.status_code == 400 and again.json() == {"error": "rejected"}


def test_relay_refuses_malformed_and_unknown_targets(cloud):
    relay = cloud["relay"].url
    assert httpx.post(f"{relay}/v1/relay", content=b"{not json", timeout=10).status_code == 400
    deep = b"[" * 50_000 + b"]" * 50_000  # deeper than the JSON parser's recursion limit
    assert httpx.post(f"{relay}/v1/relay", content=deep, timeout=10).json() == {"error": "malformed relay request"}
    node = cloud["nodes"][0].url
    r = httpx.post(f"{node}/v1/envelope", content=deep, timeout=10)
    assert r.status_code == 400 and r.json() == {"error": "rejected"}  # the same bare answer as any bad envelope
    assert "RecursionError" not in cloud["nodes"][0].output()
    assert httpx.post(f"{relay}/v1/relay", json={"targets": [], "ct": ""}, timeout=10).status_code == 400
    unknown = {"targets": [{"node": "0" * 16, "enc": "", "key": ""}], "ct": ""}
    r = httpx.post(f"{relay}/v1/relay", json=unknown, timeout=10)
    assert r.status_code == 503  # not in the log: the relay is not an open proxy
    health = httpx.get(f"{relay}/healthz", timeout=10).json()
    assert health["ok"] is True and health["log"]["stale"] is False  # it reads the log it routes by


def test_unlogged_node_is_refused(cloud, start_service):
    # Same code and model, different config: a measurement nobody released.
    rogue = start_service("node-rogue", ["node", "serve", "-m", MODEL, "--port", "0", "--n-ctx", "2048",
                                         "--max-tokens", "200", "--log", cloud["log"].url], cloud["root"])
    cloud["services"].append(rogue)
    try:
        rogue_id = re.search(r"node (\w+) ", rogue.output()).group(1)
        # It is logged (auditable) but not listed: the directory holds released measurements only.
        assert re.search(r"attestation logged at index (\d+)", rogue.output())
        assert rogue_id not in {v.node_id for v in cloud["client"].refresh()}
        assert rogue_id not in {n.node_id for n in cloud["client"].nodes()}
        for _ in range(4):
            out = cloud["client"].chat(ask("Say hi.", max_tokens=4))
            assert out["x_tether"]["node"] != rogue_id
    finally:
        rogue.stop()


def test_load_200_requests_at_concurrency_8(cloud):
    """Every request has its own prompt (a topic and a padding of its own length), so its answer and
    prompt token count, asked alone first, identify it: a reply that reached the wrong request fails."""
    client = cloud["client"]
    topics = ["cats", "rivers", "bread", "trains", "winter", "music", "chess", "tea", "clouds", "bridges"]
    prompts = [f"Give one word about {topics[i % 10]}." + " Please." * (i // 10) for i in range(200)]

    def fingerprint(out: dict) -> tuple[str, int]:
        return content(out), out["usage"]["prompt_tokens"]

    expected = [fingerprint(client.chat(ask(p, max_tokens=6))) for p in prompts]  # one at a time
    assert len(set(expected)) >= 190  # nearly every request is told apart from every other

    def one(i: int) -> tuple[int, tuple[str, int]]:
        return i, fingerprint(client.chat(ask(prompts[i], max_tokens=6)))

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(200)))
    assert [i for i, _ in results] == list(range(200))  # none lost
    mixed = [(i, prompts[i], got, expected[i]) for i, got in results if got != expected[i]]
    assert not mixed, f"{len(mixed)} answers do not match their own request, e.g. {mixed[:3]}"


def test_node_keeps_nothing_from_a_request(cloud):
    """Canaries go through the nodes; afterwards no trace of them is in any output, dir, or file written."""
    client = cloud["client"]
    canaries = [f"CANARY-{uuid.uuid4().hex}" for _ in range(6)]
    for i, canary in enumerate(canaries):
        body = ask(f"Repeat this code exactly: {canary}", max_tokens=40)
        if i % 2:
            assert list(client.stream(body))
        else:
            client.chat(body)
    time.sleep(0.5)
    places: list[Path] = []
    for s in cloud["services"]:
        if s.name.startswith("node") or s.name == "relay":
            places += [s.out, s.err]
            places += [p for p in s.home.rglob("*") if p.is_file()]
    places += [Path(p) for p in cloud["watcher"].paths]
    assert any(p.name == "stderr.txt" for p in places)
    assert "served stream=" in cloud["nodes"][0].output() + cloud["nodes"][1].output()  # metrics are logged
    for path in places:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        for canary in canaries:
            assert canary.encode() not in data, f"{canary} found in {path}"
    extra = {p for p in cloud["watcher"].paths
             if not any(p.startswith(str(s.home)) for s in cloud["services"])}
    assert not extra, f"nodes opened files for writing outside their sandbox: {extra}"


def test_router_sends_work_to_the_private_cloud_through_the_client(cloud, tmp_path):
    from tether.routing.config import RouterConfig
    from tether.routing.ledger import Ledger
    from tether.routing.router import RouteRequest, Router
    from tether.routing.tiers import DeviceTier, PrivateCloudTier

    ledger = Ledger(tmp_path / "ledger.sqlite")
    router = Router(RouterConfig(difficulty_threshold=0.5), device=DeviceTier(MODEL),
                    private_cloud=PrivateCloudTier(cloud["client"]), ledger=ledger)
    router.state.report(low_power=True)
    out = router.respond(RouteRequest("Write one sentence about Lisbon.", kind="chat", max_tokens=16))
    assert (out.decision.rule, out.tier, out.degraded) == ("low_power", "private_cloud", False)
    assert out.text.strip() and out.model == MODEL
    assert ledger.entries()[0].tier == "private_cloud" and ledger.entries()[0].cost_usd > 0


def test_node_killed_mid_stream_completes_on_the_other(cloud):
    client = cloud["client"]
    body = ask("Tell a short story about a lighthouse keeper.", max_tokens=160)
    expected = content(client.chat(body))
    stream = client.stream(body)
    it = iter(stream)
    pieces = [next(it) for _ in range(6)]
    victim_id = stream.nodes[-1]
    victim = next(n for n in cloud["nodes"] if n.info["node_id"] == victim_id)
    victim.kill()
    pieces += list(it)
    assert stream.failovers == 1
    assert len(stream.nodes) == 2 and stream.nodes[-1] != victim_id
    assert not any(p.get("x_tether", {}).get("restart") for p in pieces)
    assert stream.text == expected
    # The dead node is now skipped without delay.
    out = client.chat(ask("Say hi.", max_tokens=4))
    assert out["x_tether"]["node"] != victim_id
    # The relay's health checks find it too, so a device that never met the dead node avoids it.
    relay = cloud["relay"].url
    deadline = time.monotonic() + 10
    while httpx.get(f"{relay}/v1/relay/load", timeout=5).json()["nodes"][victim_id]["healthy"]:
        assert time.monotonic() < deadline, "the relay never noticed the dead node"
        time.sleep(0.2)
    fresh = CloudClient(cloud["log"].url, relay, log_key=cloud["log_key"], k=1, attempts=1,
                        state_path=cloud["root"] / "fresh-device.json")
    try:
        for _ in range(4):
            assert fresh.chat(ask("Say hi.", max_tokens=4))["x_tether"]["node"] != victim_id
    finally:
        fresh.close()


def test_nodes_re_attest_and_devices_refuse_stale_attestations(cloud, start_service):
    """A node re-signs its attestation while it runs, with a fresh request key each time, and still
    opens what a device seals to the key it attested before; one that stops re-attesting ages out."""
    log_url = cloud["log"].url
    node = start_service("node-c", ["node", "serve", "-m", MODEL, "--port", "0", "--n-ctx", "2048",
                                    "--max-tokens", "256", "--log", log_url, "--reattest-every", "1"], cloud["root"])
    try:
        node_id = re.search(r"node (\w+) ", node.output()).group(1)
        first = re.search(r"attestation logged at index (\d+)", node.output()).group(1)

        def listed() -> dict:
            return next(n for n in httpx.get(f"{log_url}/v1/log/nodes", timeout=5).json()["nodes"]
                        if n["attestation"]["node_id"] == node_id)

        start = listed()
        early = CloudClient(log_url, cloud["relay"].url, log_key=cloud["log_key"], k=1, directory_ttl=3600,
                            state_path=cloud["root"] / "early-device.json")
        early.refresh()
        early._nodes = {node_id: early._nodes[node_id]}  # this node only, as attested at start-up
        deadline = time.monotonic() + 20
        while listed()["attestation"]["issued_at"] < start["attestation"]["issued_at"] + 2:
            assert node.proc.poll() is None and time.monotonic() < deadline, node.output()
            time.sleep(0.3)
        assert listed()["index"] > int(first) and "re-attested" in node.output()
        assert listed()["attestation"]["hpke_key"] != start["attestation"]["hpke_key"]  # a new key each time
        try:  # sealed to the start-up key, two rotations ago: still opened while that attestation is trusted
            assert early.chat(ask("Say hi.", max_tokens=4))["x_tether"]["node"] == node_id
        finally:
            early.close()

        strict = CloudClient(log_url, cloud["relay"].url, log_key=cloud["log_key"], max_attestation_age=2.5,
                             state_path=cloud["root"] / "strict-device.json")
        try:
            verdicts = {v.node_id: v for v in strict.refresh()}
            assert verdicts[node_id].trusted
            for old in cloud["nodes"]:  # announced once at start-up, minutes ago
                if old.proc.poll() is None:
                    assert not verdicts[old.info["node_id"]].trusted
                    assert "stale" in verdicts[old.info["node_id"]].reason
            assert [n.node_id for n in strict.nodes()] == [node_id]
        finally:
            strict.close()
    finally:
        node.stop()


def test_a_cancelled_plain_request_stops_the_node(cloud):
    """The gateway cancels a plain request whose client went away; the node must stop generating
    then, not finish an answer nobody reads (the client streams under the hood to allow it)."""
    import threading
    import time

    import httpx

    from tether.errors import GenerationCancelledError
    from tether.models.engine import cancellation

    def alive(node):
        try:
            return httpx.get(node.url + "/healthz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False  # an earlier test killed it

    def info(node):
        return httpx.get(node.url + "/v1/info", timeout=10, headers=OPERATOR).json()["metrics"]

    nodes = [n for n in cloud["nodes"] if alive(n)]
    assert nodes
    served = sum(info(n)["served"] for n in nodes)
    event, outcome = threading.Event(), {}

    def run():
        with cancellation(event):
            try:
                outcome["value"] = cloud["client"].chat(ask("Count from 1 to 400, one number per line.", max_tokens=256))
            except GenerationCancelledError as exc:
                outcome["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(info(n)["inflight"] for n in nodes):
        time.sleep(0.05)
    event.set()
    worker.join(30)
    assert isinstance(outcome.get("error"), GenerationCancelledError), outcome
    while time.monotonic() < deadline and any(info(n)["inflight"] for n in nodes):
        time.sleep(0.05)
    assert not any(info(n)["inflight"] for n in nodes)
    assert sum(info(n)["served"] for n in nodes) == served  # no answer was finished
    # and a plain request under an ambient cancel that is never set still gets its whole answer
    with cancellation(threading.Event()):
        out = cloud["client"].chat(ask("Name three colours.", max_tokens=24, logprobs=True))
    assert content(out).strip() and out["usage"]["completion_tokens"] == len(out["choices"][0]["logprobs"]["content"])
    assert out["x_tether"]["node"] in {n.info["node_id"] for n in cloud["nodes"]}


def test_a_nodes_request_counters_are_for_its_operator_only(cloud):
    """Counters that move with each request tell a poller when an answer ran and how long it was:
    the public sees what the node is, the operator (with the metrics token) what it did."""
    import httpx

    node = next(n for n in cloud["nodes"] if n.proc.poll() is None)  # an earlier test may have killed one
    cloud["client"].chat(ask("Say hi.", max_tokens=4))
    public = httpx.get(node.url + "/v1/info", timeout=10).json()
    assert public["node_id"] == node.info["node_id"] and "metrics" not in public
    wrong = httpx.get(node.url + "/v1/info", timeout=10, headers={"Authorization": "Bearer guess"}).json()
    assert "metrics" not in wrong
    health = httpx.get(node.url + "/healthz", timeout=10).json()
    assert health == {"ok": True, "node_id": node.info["node_id"]}
    served = sum(httpx.get(n.url + "/v1/info", timeout=10, headers=OPERATOR).json()["metrics"]["served"]
                 for n in cloud["nodes"] if n.proc.poll() is None)
    assert served >= 1

