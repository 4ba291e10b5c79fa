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
from tether.errors import CloudDeadlineError, NoNodeAvailableError, RequestTooLargeError, TierUnavailableError
from tether.routing.tiers import PrivateCloudTier

from tests.cloud.conftest import log_and_relay, serve_in_thread
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
