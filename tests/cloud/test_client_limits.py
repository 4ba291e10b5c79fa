"""The device client's limits, on real processes: a log and a relay (``tether`` subprocesses) and
stand-in nodes that hold real keys and hang, stall or answer (``standins.py``).

Every request has one overall deadline however many nodes hang, a node that never answers
costs one attempt's read timeout, and a request over a body limit is one typed error, not a
retry on every node."""

from __future__ import annotations

import time

import httpx
import pytest
from starlette.responses import JSONResponse
from starlette.routing import Route

from tether.cloud.client import CloudClient
from tether.cloud.node import MAX_BODY
from tether.errors import (CloudDeadlineError, NoNodeAvailableError, RequestTooLargeError, TierUnavailableError,
                           TransparencyLogError)
from tether.routing.tiers import PrivateCloudTier

from tests.cloud.conftest import log_and_relay, serve_in_thread, trickled
from tests.cloud.standins import stand_in, unique_model

TOKEN = "limits-admin"
HI = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    root = tmp_path_factory.mktemp("limits")
    with log_and_relay(root, TOKEN) as (log, relay, key):
        yield {"log": log, "relay": relay, "key": key, "root": root}


def _client(cloud, model: str, **kw) -> CloudClient:
    client = CloudClient(None, cloud["relay"].url, log_key=cloud["key"], model=model,
                         state_path=cloud["root"] / f"device-{time.monotonic_ns()}.json", **kw)
    assert len(client.nodes()) >= 1
    return client


def test_hanging_nodes_cost_one_read_timeout_each_within_one_overall_deadline(cloud, nodes):
    """Six nodes that take the request and never answer: without an overall deadline six attempts
    would take six read timeouts."""
    model = unique_model("hang")
    nodes += [stand_in(cloud["log"].url, model, "hang") for _ in range(6)]
    client = _client(cloud, model, k=1, attempts=6, read_timeout=1.0, deadline=2.5)
    try:
        start = time.monotonic()
        with pytest.raises(CloudDeadlineError) as caught:
            client.chat(HI)
        took = time.monotonic() - start
    finally:
        client.close()
    assert 2.4 < took < 4.0, took
    assert caught.value.deadline == 2.5 and "2.5 s deadline" in str(caught.value)
    assert isinstance(caught.value, NoNodeAvailableError)  # callers that handle "no node" handle this too
    tried = {n.node_id for n in nodes if n.served}
    assert len(tried) >= 2  # each hung node was given up after its read timeout and another tried
    assert str(caught.value).count("failed mid-answer: timed out") == len(tried) - 1, str(caught.value)
    assert all(nid in str(caught.value) for nid in tried)  # the last one was still waited on at the deadline


def test_a_hanging_node_is_abandoned_and_the_next_one_answers(cloud, nodes):
    model = unique_model("hang-then-good")
    hang = stand_in(cloud["log"].url, model, "hang", tokens_per_second=300)  # ranked first, so the relay tries it first
    good = stand_in(cloud["log"].url, model, "answer", tokens_per_second=1)
    nodes += [hang, good]
    client = _client(cloud, model, k=2, attempts=3, read_timeout=1.0, deadline=10)
    try:
        start = time.monotonic()
        out = client.chat(HI)
        took = time.monotonic() - start
    finally:
        client.close()
    assert hang.served and out["x_tether"]["node"] == good.node_id
    assert out["choices"][0]["message"]["content"] == f"answer from {good.node_id}"
    assert took < 5, took


def test_a_stream_that_stalls_past_the_deadline_ends_at_the_deadline_not_the_read_timeout(cloud, nodes):
    """httpx bounds each read, not their sum: a chunk at 0 s and at 2 s, then a stall. The read
    that starts at 2 s may wait until 5 s; the 3 s deadline must still end it at 3 s."""
    model = unique_model("stall")
    nodes.append(stand_in(cloud["log"].url, model, "stall", pause=2.0, stall=8))
    client = _client(cloud, model, k=1, attempts=3, read_timeout=20.0, deadline=3.0)
    got = []
    try:
        start = time.monotonic()
        with pytest.raises(CloudDeadlineError, match="still answering"):
            for chunk in client.stream(HI):
                got.append(chunk)
        took = time.monotonic() - start
        assert 2.9 < took < 3.8, took
        # The client is usable afterwards: the stalled socket was shut down, not left in the pool.
        assert client.chat(HI)["x_tether"]["node"] == nodes[0].node_id
    finally:
        client.close()
    assert [c["choices"][0]["delta"]["content"] for c in got] == ["first ", "second "]


def test_without_a_deadline_a_stalled_stream_waits_for_the_node(cloud, nodes):
    """The same stall, ``deadline=None``: the answer completes (the deadline is what ended it above)."""
    model = unique_model("stall-no-deadline")
    nodes.append(stand_in(cloud["log"].url, model, "stall", pause=1.0, stall=1.5))
    client = _client(cloud, model, k=1, read_timeout=20.0, deadline=None)
    try:
        text = "".join(c["choices"][0]["delta"]["content"] for c in client.stream(HI) if c.get("choices"))
    finally:
        client.close()
    assert text == f"first second answer from {nodes[0].node_id}"


BIG = {"messages": [{"role": "user", "content": "x" * (MAX_BODY + 1000)}]}


def test_a_request_over_the_relay_limit_is_one_typed_error_before_anything_is_sent(cloud, nodes):
    model = unique_model("big")
    nodes += [stand_in(cloud["log"].url, model, "answer") for _ in range(3)]
    client = _client(cloud, model, k=1, attempts=3)
    try:
        with pytest.raises(RequestTooLargeError) as caught:
            client.chat(BIG)
        with pytest.raises(RequestTooLargeError):
            list(client.stream(BIG))
        # Just under the plaintext check, over the limit once sealed (base64): caught after sealing.
        sealed_over = {"messages": [{"role": "user", "content": "x" * (MAX_BODY * 3 // 4)}]}
        with pytest.raises(RequestTooLargeError) as sealed:
            client.chat(sealed_over)
        assert client.chat(HI)["choices"]  # nothing was cooled
    finally:
        client.close()
    assert caught.value.limit == MAX_BODY and f"at most {MAX_BODY:,} bytes" in str(caught.value)
    assert sealed.value.size > MAX_BODY and "bytes sealed" in str(sealed.value)
    assert not any(n.served[:-1] for n in nodes)  # at most the last small chat reached a node


def test_the_relay_s_413_is_the_typed_error_with_the_relay_s_limit_and_is_not_retried(cloud, nodes):
    """A device whose own limit is larger than the relay's (another version) meets the relay's 413."""
    model = unique_model("big-relay")
    nodes += [stand_in(cloud["log"].url, model, "answer") for _ in range(3)]
    client = _client(cloud, model, k=1, attempts=3, max_request_bytes=4 * MAX_BODY)
    try:
        start = time.monotonic()
        with pytest.raises(RequestTooLargeError) as caught:
            client.chat(BIG)
        assert time.monotonic() - start < 10
        assert not client._cooling  # no node was blamed
    finally:
        client.close()
    assert caught.value.limit == MAX_BODY and caught.value.where == "the relay"
    assert caught.value.size > MAX_BODY
    assert not any(n.served for n in nodes)


def test_nodes_that_answer_413_are_the_typed_error_with_their_limit(cloud, nodes):
    model = unique_model("big-node")
    nodes += [stand_in(cloud["log"].url, model, "too_large") for _ in range(2)]
    client = _client(cloud, model, k=2, attempts=3)
    try:
        with pytest.raises(RequestTooLargeError) as caught:
            client.chat({"messages": [{"role": "user", "content": "x" * 2000}]})
    finally:
        client.close()
    assert caught.value.limit == 1000 and caught.value.where == "the nodes behind the relay"
    assert sum(len(n.served) for n in nodes) == 2  # each target once: one attempt, no retries


def test_the_router_s_message_for_a_too_large_request_is_one_line(cloud, nodes):
    model = unique_model("big-router")
    nodes.append(stand_in(cloud["log"].url, model, "answer"))
    from tether.models.engine import Message, Sampling

    tier = PrivateCloudTier(_client(cloud, model, k=1))
    try:
        with pytest.raises(TierUnavailableError) as caught:
            tier.complete([Message("user", "x" * (MAX_BODY + 10))], Sampling.greedy(8))
    finally:
        tier.client.close()
    message = str(caught.value)
    assert "\n" not in message and "too large" in message and f"{MAX_BODY:,}" in message
    assert caught.value.status == 413


def test_a_real_node_answers_an_over_limit_body_with_413_and_its_limit(tmp_path, start_service):
    """A ``tether node serve`` process (fronting a stand-in engine, so no model is loaded)."""
    async def completions(request):
        return JSONResponse({"id": "x", "object": "chat.completion", "model": "m", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "one two"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}})

    engine, stop_engine = serve_in_thread([Route("/v1/chat/completions", completions, methods=["POST"])])
    node = start_service("node", ["node", "serve", "-m", "smollm2-135m", "--upstream", engine, "--model-sha256",
                                  "0" * 64, "--port", "0"], tmp_path)
    try:
        r = httpx.post(f"{node.url}/v1/envelope", content=b"x" * (MAX_BODY + 1), timeout=30)
        assert r.status_code == 413 and r.headers["x-tether-max-body"] == str(MAX_BODY)
        small = httpx.post(f"{node.url}/v1/envelope", content=b"{}", timeout=30)
        assert small.status_code == 400 and small.json() == {"error": "rejected"}  # everything else: unchanged
    finally:
        node.stop()
        stop_engine()


def _hostile_relay(cloud, *, reject_first: int = 0, load: bytes | None = None, big_error: int = 0,
                   trickle: bool = False):
    """A relay in front of the real one: it rejects the first ``reject_first`` requests (naming no
    node), answers ``/v1/relay/load`` with ``load``, or sends ``big_error`` bytes with its 400."""
    import asyncio

    from starlette.requests import Request
    from starlette.responses import Response, StreamingResponse

    seen = {"posts": 0, "sent": 0}

    async def relay(request: Request) -> Response:
        seen["posts"] += 1
        body = await request.body()
        if seen["posts"] <= reject_first:
            if big_error:
                async def chunks():
                    for _ in range(big_error // 2**20):
                        seen["sent"] += 2**20
                        yield b"x" * 2**20
                        await asyncio.sleep(0)
                return StreamingResponse(chunks(), status_code=400)
            return JSONResponse({"error": "rejected"}, status_code=400)
        async with httpx.AsyncClient() as c:
            r = await c.post(f"{cloud['relay'].url}/v1/relay", content=body, timeout=60,
                             headers={"content-type": "application/json"})
        return Response(r.content, status_code=r.status_code,
                        headers={k: v for k, v in r.headers.items() if k in ("content-type", "x-tether-node")})

    async def relay_load(request: Request) -> Response:
        if trickle:
            return trickled(30, 1, b'{"nodes": {}}')
        if load is not None:
            return Response(load, media_type="application/json")
        async with httpx.AsyncClient() as c:
            r = await c.get(f"{cloud['relay'].url}/v1/relay/load", timeout=10)
        return Response(r.content, status_code=r.status_code, media_type="application/json")

    url, stop = serve_in_thread([Route("/v1/relay", relay, methods=["POST"]), Route("/v1/relay/load", relay_load)])
    return url, stop, seen


def test_a_relays_rejection_is_not_taken_as_the_nodes_word_for_later_requests(cloud, nodes):
    """The rejection is the relay's unsigned say-so: it leaves those nodes out of this request's
    next attempt, but cools none, so a relay cannot reject its way to its favourite every time."""
    model = unique_model("steer")
    nodes += [stand_in(cloud["log"].url, model, "answer") for _ in range(3)]
    url, stop, seen = _hostile_relay(cloud, reject_first=1)
    client = CloudClient(cloud["log"].url, url, log_key=cloud["key"], model=model, k=1, attempts=3,
                         state_path=cloud["root"] / f"device-{time.monotonic_ns()}.json")
    try:
        assert client.chat(HI)["choices"]
        assert seen["posts"] == 2 and not client._cooling
    finally:
        client.close()
        stop()


def test_a_relays_huge_error_body_is_not_read_whole(cloud, nodes):
    model = unique_model("bloat")
    nodes += [stand_in(cloud["log"].url, model, "answer") for _ in range(2)]
    url, stop, seen = _hostile_relay(cloud, reject_first=1, big_error=400 * 2**20)
    client = CloudClient(cloud["log"].url, url, log_key=cloud["key"], model=model, k=1, attempts=3,
                         state_path=cloud["root"] / f"device-{time.monotonic_ns()}.json")
    try:
        assert client.chat(HI)["choices"]  # the next attempt answered
    finally:
        client.close()
        stop()
    assert seen["sent"] < 64 * 2**20, seen  # the device hung up after its 64 KiB; socket buffers hold the rest


@pytest.mark.parametrize("load", [b'{"nodes": {"x": {"inflight": 1e999}}}', b'{"nodes": [1]}', b"\xff"])
def test_a_relays_load_view_that_makes_no_sense_is_ignored(cloud, nodes, load):
    """The view is advisory: an infinite in-flight count (an OverflowError in int()) or junk is dropped."""
    model = unique_model("load")
    nodes.append(stand_in(cloud["log"].url, model, "answer"))
    url, stop, _ = _hostile_relay(cloud, load=load)
    client = CloudClient(cloud["log"].url, url, log_key=cloud["key"], model=model,
                         state_path=cloud["root"] / f"device-{time.monotonic_ns()}.json")
    try:
        assert client.chat(HI)["choices"]
    finally:
        client.close()
        stop()


def test_a_relay_that_trickles_its_load_view_does_not_hold_the_request(cloud, nodes):
    """httpx's timeout is per read: the load view gets 2 s for the whole answer, then is dropped."""
    model = unique_model("trickle")
    nodes.append(stand_in(cloud["log"].url, model, "answer"))
    url, stop, _ = _hostile_relay(cloud, trickle=True)
    client = CloudClient(cloud["log"].url, url, log_key=cloud["key"], model=model, deadline=10.0,
                         state_path=cloud["root"] / f"device-{time.monotonic_ns()}.json")
    try:
        client.nodes()
        start = time.monotonic()
        assert client.chat(HI)["choices"]
        assert time.monotonic() - start < 8  # 25+ s before, past the 10 s deadline
    finally:
        client.close()
        stop()


def test_a_mirror_whose_entry_index_is_not_a_number_is_one_clear_error(cloud, nodes):
    """A log mirror (the relay's) that wraps each entry's index in a list, and its lists' indices
    too: the device refuses the read with a reason instead of dying on an unhashable list, and
    a mirror's odd lists alone change nothing, since the directory comes from the entries."""
    from starlette.requests import Request
    from starlette.responses import Response

    model = unique_model("mirror")
    nodes.append(stand_in(cloud["log"].url, model, "answer"))
    log_url = cloud["log"].url
    state = {"entries": False}

    async def mirror(request: Request) -> Response:
        async with httpx.AsyncClient() as c:
            r = await c.get(f"{log_url}{request.url.path}", params=request.query_params, timeout=10)
        body = r.json()
        if request.url.path == "/v1/log/releases":
            return JSONResponse({**body, "releases": {m: [i] for m, i in body["releases"].items()}})
        if request.url.path == "/v1/log/nodes":
            return JSONResponse({**body, "nodes": [{**n, "index": [n["index"]]} for n in body["nodes"]]})
        if request.url.path == "/v1/log/entries" and state["entries"]:
            return JSONResponse({"entries": [{**e, "index": [e["index"]]} for e in body["entries"]]})
        return Response(r.content, status_code=r.status_code, media_type="application/json")

    paths = ("key", "sth", "entries", "proof/inclusion", "proof/consistency", "releases", "nodes")
    url, stop = serve_in_thread([Route(f"/v1/log/{p}", mirror) for p in paths])

    def device() -> CloudClient:
        return CloudClient(None, url, log_key=cloud["key"], model=model,
                           state_path=cloud["root"] / f"device-{time.monotonic_ns()}.json")

    client = device()
    try:
        assert [v.trusted for v in client.refresh() if v.model == model] == [True]  # odd lists: ignored
    finally:
        client.close()
    state["entries"] = True
    client = device()
    try:
        with pytest.raises(TransparencyLogError, match=r"sent entry \[1\] where entry 1 was due"):
            client.refresh()
        with pytest.raises(TransparencyLogError):
            client.chat(HI)
    finally:
        client.close()
        stop()


def test_a_device_state_whose_folder_is_a_file_says_so(cloud, nodes):
    """mkdir(exist_ok=True) on a parent that is a file raises FileExistsError: saving the pinned
    tree head said "cannot save cloud state …: File exists", which reads as if all were well."""
    from tether.errors import TransparencyLogError

    model = unique_model("state")
    nodes.append(stand_in(cloud["log"].url, model, "answer"))
    blocker = cloud["root"] / f"notes-{time.monotonic_ns()}.txt"
    blocker.write_text("a file, not a folder")
    client = CloudClient(None, cloud["relay"].url, log_key=cloud["key"], model=model, state_path=blocker / "state.json")
    try:
        with pytest.raises(TransparencyLogError, match=f"cannot save cloud state {blocker / 'state.json'}: "
                                                       f"{blocker} is a file, not a folder") as info:
            client.nodes()
        assert "File exists" not in str(info.value)
    finally:
        client.close()
    assert blocker.read_text() == "a file, not a folder"


def _slow_front(relay_url: str):
    """A relay front that forwards everything to the real relay, the log mirror's reads
    ``state["delay"]`` seconds late; ``state["reads"]`` records each log read (path, query)."""
    import asyncio

    from starlette.requests import Request
    from starlette.responses import Response

    state: dict = {"delay": 0.0, "reads": []}

    async def forward(request: Request) -> Response:
        if request.url.path.startswith("/v1/log/"):
            state["reads"].append((request.url.path, dict(request.query_params)))
            await asyncio.sleep(state["delay"])
        async with httpx.AsyncClient() as c:
            r = await c.request(request.method, f"{relay_url}{request.url.path}", params=request.query_params,
                                content=await request.body(), timeout=60,
                                headers={"content-type": request.headers.get("content-type", "application/json")})
        return Response(r.content, status_code=r.status_code,
                        headers={k: v for k, v in r.headers.items() if k in ("content-type", "x-tether-node")})

    url, stop = serve_in_thread([Route("/{path:path}", forward, methods=["GET", "POST"])])
    return url, stop, state


def test_a_slow_log_read_ends_at_the_request_deadline(cloud, nodes, tmp_path):
    """Each log read through the relay takes 1 s and the device has not read the log yet: the
    request ends at its 2 s deadline (it took 2 s per read, every listed node proven, before)."""
    import importlib

    from click.testing import CliRunner

    from tether.cli import cli

    importlib.import_module("tether.cli.cloud")  # registers the group

    model = unique_model("slow-log")
    nodes += [stand_in(cloud["log"].url, model, "answer") for _ in range(5)]
    url, stop, state = _slow_front(cloud["relay"].url)
    state["delay"] = 1.0
    client = CloudClient(None, url, log_key=cloud["key"], model=model, deadline=2.0,
                         state_path=tmp_path / "device.json")
    try:
        start = time.monotonic()
        with pytest.raises(CloudDeadlineError) as caught:
            client.chat(HI)
        assert time.monotonic() - start < 2.6
        assert "2 s deadline (the transparency log was still being read)" in str(caught.value)
        start = time.monotonic()
        result = CliRunner().invoke(cli, ["cloud", "chat", "hi", "--relay", url, "--log-key", cloud["key"],
                                          "--model", model, "--deadline", "2", "--no-stream"],
                                    env={"TETHER_CLOUD_STATE": str(tmp_path / "cli.json")})
        assert time.monotonic() - start < 5.0  # the privacy check before the request included
        assert result.exit_code == 1 and "2 s deadline" in result.output, result.output
    finally:
        client.close()
        stop()


def test_a_warm_client_answers_while_another_thread_re_reads_a_slow_log(cloud, nodes):
    """The node list expired and the log turned slow: one thread re-reads it; another thread's
    request goes on with the nodes verified before and takes about the node's latency (it
    waited for the whole re-read before, on the client's one lock)."""
    import threading

    model = unique_model("warm")
    node = stand_in(cloud["log"].url, model, "answer")
    nodes.append(node)
    url, stop, state = _slow_front(cloud["relay"].url)
    client = CloudClient(None, url, log_key=cloud["key"], model=model, k=1, directory_ttl=0.1, deadline=30,
                         state_path=cloud["root"] / f"device-{time.monotonic_ns()}.json")
    took: dict[str, float] = {}

    def ask(name: str) -> None:
        start = time.monotonic()
        client.chat(HI)
        took[name] = time.monotonic() - start

    try:
        client.chat(HI)  # warm: the nodes are verified
        state["delay"] = 1.0
        time.sleep(0.2)  # the node list expired
        first = threading.Thread(target=ask, args=("first",))
        first.start()
        time.sleep(0.2)  # the first thread is re-reading the log
        ask("second")
        first.join(30)
    finally:
        client.close()
        stop()
    assert took["second"] < 0.8, took
    assert took["first"] > 0.9, took  # it did re-read the (slow) log: at least its tree head
    assert len(node.served) == 3


def test_a_device_reads_the_log_in_pages_and_fetches_no_proof_per_node(cloud, nodes):
    """The device reads every entry (a page holds up to 1,000) and hashes them into the signed root,
    so it needs no inclusion proof per node: a device asking for one model once made 105 log reads
    for a directory of 49 nodes, and which entries it asked for told the mirror which nodes it wanted."""
    mine, other = unique_model("mine"), unique_model("other")
    nodes += [stand_in(cloud["log"].url, mine, "answer") for _ in range(2)]
    nodes += [stand_in(cloud["log"].url, other, "answer") for _ in range(3)]
    url, stop, state = _slow_front(cloud["relay"].url)
    client = CloudClient(None, url, log_key=cloud["key"], model=mine,
                         state_path=cloud["root"] / f"device-{time.monotonic_ns()}.json")
    try:
        verdicts = client.refresh()
    finally:
        client.close()
        stop()
    size = httpx.get(f"{cloud['log'].url}/v1/log/sth", timeout=10).json()["size"]
    pages = [q for path, q in state["reads"] if path == "/v1/log/entries"]
    assert [int(q["start"]) for q in pages] == list(range(1, size + 1, 1000)), pages
    assert not [path for path, _ in state["reads"] if path.startswith("/v1/log/proof/inclusion")]
    assert not [path for path, _ in state["reads"] if path in ("/v1/log/nodes", "/v1/log/releases")]
    assert sorted(v.trusted for v in verdicts if v.model == mine) == [True, True]
    assert all(not v.trusted and "not " + mine in v.reason for v in verdicts if v.model == other)


def test_a_node_that_re_attests_while_the_device_reads_the_log_stays_trusted(cloud, nodes):
    """Nodes re-attest every 30 minutes. One that did so between the device's reads of the tree head
    and of the node list (now: of the entries) was refused ("entry 55 is outside a tree of size 54")
    for directory_ttl."""
    from starlette.requests import Request
    from starlette.responses import Response

    from tether.cloud.attestation import NodeIdentity, make_attestation
    from tether.cloud.envelope import KeyPair
    from tests.cloud.standins import RELEASE

    model = unique_model("reattest")
    identity, keys = NodeIdentity(), KeyPair()
    log_url = cloud["log"].url

    def attestation() -> dict:  # signed afresh each time, as a node re-attests
        return make_attestation(identity, keys.public_bytes, RELEASE, url="http://127.0.0.1:9", model=model,
                                hardware={}, tokens_per_second=1.0)

    state = {"reattest": False}

    async def mirror(request: Request) -> Response:
        async with httpx.AsyncClient() as c:
            r = await c.get(f"{log_url}{request.url.path}", params=request.query_params, timeout=10)
            # The node re-attests just after the log signed the head the device is about to read:
            # the log grows past that head while the device reads its entries.
            if request.url.path == "/v1/log/sth" and state["reattest"]:
                state["reattest"] = False
                assert (await c.post(f"{log_url}/v1/log/nodes", json=attestation(), timeout=10)).status_code == 200
        return Response(r.content, status_code=r.status_code, media_type="application/json")

    assert httpx.post(f"{log_url}/v1/log/nodes", json=attestation(), timeout=10).status_code == 200
    url, stop = serve_in_thread([Route("/{path:path}", mirror)])
    client = CloudClient(url, cloud["relay"].url, log_key=cloud["key"], model=model, directory_ttl=0,
                         state_path=cloud["root"] / f"device-{time.monotonic_ns()}.json")
    try:
        first = [v for v in client.refresh() if v.node_id == identity.node_id]
        state["reattest"] = True
        second = [v for v in client.refresh() if v.node_id == identity.node_id]
    finally:
        client.close()
        stop()
    assert [v.trusted for v in first] == [True], first
    assert not state["reattest"], "the re-attestation was not made"
    assert [(v.trusted, v.reason) for v in second] == [(True, "verified")], second


def test_a_busy_engine_is_the_node_s_fault_and_another_node_answers(cloud, nodes, start_service, tmp_path):
    """A node whose engine answers 429 (busy), or sends a usage that is no token count, seals an
    error with fault "node": the device fails over. Both were blamed on the request before, so
    the device gave up with NodeRejectedError while an idle node stood by."""
    from starlette.requests import Request

    from tether.cloud.attestation import Measurement, code_digest, node_config

    mode = {"now": "ok", "asked": 0}

    async def completions(request: Request):
        body = await request.json()
        mode["asked"] += 1
        if mode["now"] == "busy":
            return JSONResponse({"error": {"message": "server busy", "type": "rate_limit"}}, status_code=429)
        usage = {"prompt_tokens": 1, "completion_tokens": "n/a" if mode["now"] == "bad_usage" else 2,
                 "total_tokens": 3}
        return JSONResponse({"id": "x", "object": "chat.completion", "model": body["model"], "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "one two"}, "finish_reason": "stop"}],
            "usage": usage})

    async def models(request: Request):
        return JSONResponse({"object": "list", "data": [{"id": "engine"}]})

    model = unique_model("busy")
    engine, stop_engine = serve_in_thread([Route("/v1/chat/completions", completions, methods=["POST"]),
                                           Route("/v1/models", models)])
    release = Measurement(code=code_digest(), model_sha256="0" * 64,
                          config=node_config(model, n_ctx=4096, max_tokens=1024, upstream=engine))
    r = httpx.post(f"{cloud['log'].url}/v1/log/releases", json=release.components(),
                   headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert r.status_code == 200, r.text
    node = start_service("busy-node", ["node", "serve", "-m", model, "--upstream", engine, "--model-sha256",
                                       "0" * 64, "--port", "0", "--log", cloud["log"].url], tmp_path)
    try:
        busy_id = httpx.get(f"{node.url}/v1/attestation", timeout=10).json()["node_id"]
        idle = stand_in(cloud["log"].url, model, "answer", tokens_per_second=1)  # ranked after the busy node
        nodes.append(idle)
        for fault in ("busy", "bad_usage"):
            mode["now"], asked = fault, mode["asked"]
            client = _client(cloud, model, k=2, attempts=3, deadline=30)
            try:
                assert {n.node_id for n in client.nodes()} == {busy_id, idle.node_id}
                out = client.chat(HI)
            finally:
                client.close()
            assert mode["asked"] > asked, f"{fault}: the busy node was never tried"
            assert out["x_tether"]["node"] == idle.node_id
            assert out["choices"][0]["message"]["content"] == f"answer from {idle.node_id}"
    finally:
        node.stop()
        stop_engine()
