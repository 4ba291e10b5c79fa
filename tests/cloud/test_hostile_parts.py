"""What a hostile or broken part of the private cloud can do to a device, on real processes: a node
that seals frames that are no chat completion or floods chunks, a log directory open to strangers,
a log or relay that trickles or bloats its answers, and device state files shared by processes."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import threading
import time

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.responses import JSONResponse
from starlette.routing import Route

from tether.cloud.attestation import NodeIdentity, make_attestation
from tether.cloud.client import CloudClient
from tether.cloud.envelope import KeyPair, ResponseOpener, ResponseSealer
from tether.cloud.transparency import MAX_LOG_ANSWER, LogClient
from tether.errors import EnvelopeError, LogUnreachableError, TransparencyLogError

from tests.cloud.conftest import log_and_relay, serve_in_thread, trickled
from tests.cloud.standins import RELEASE, stand_in, unique_model

TOKEN = "hostile-admin"
HI = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    with log_and_relay(root, TOKEN) as (log, relay, key):
        yield {"log": log, "relay": relay, "key": key, "root": root}


def _client(cloud, model: str, **kw) -> CloudClient:
    return CloudClient(None, cloud["relay"].url, log_key=cloud["key"], model=model,
                       state_path=cloud["root"] / f"device-{time.monotonic_ns()}.json", **kw)


@pytest.mark.parametrize("behaviour", ["no_message", "not_text"])
def test_a_frame_that_is_no_chat_completion_is_the_node_s_fault_and_another_node_answers(cloud, nodes, behaviour):
    model = unique_model(behaviour)
    bad = stand_in(cloud["log"].url, model, behaviour, tokens_per_second=300)  # ranked first
    good = stand_in(cloud["log"].url, model, "answer", tokens_per_second=1)
    nodes += [bad, good]
    time.sleep(0.3)  # the relay re-reads the log for unknown ids at most every 0.25 s
    client = _client(cloud, model, k=2, attempts=3, deadline=20)
    try:
        out = client.chat(HI)
        chunks = list(client.stream({**HI, "max_tokens": 8}))
    finally:
        client.close()
    assert bad.served, "the broken node was never tried"
    assert out["x_tether"]["node"] == good.node_id
    assert out["choices"][0]["message"]["content"] == f"answer from {good.node_id}"
    assert "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c.get("choices")) == \
        f"first answer from {good.node_id}"


def test_a_node_that_floods_past_max_tokens_is_cut_off_and_another_node_answers(cloud, nodes):
    model = unique_model("flood")
    flood = stand_in(cloud["log"].url, model, "flood", tokens_per_second=300)
    good = stand_in(cloud["log"].url, model, "answer", tokens_per_second=1)
    nodes += [flood, good]
    client = _client(cloud, model, k=2, attempts=3, deadline=30)
    try:
        stream = client.stream({**HI, "max_tokens": 8})
        text = "".join((c["choices"][0]["delta"].get("content") or "") for c in stream if c.get("choices"))
    finally:
        client.close()
    assert flood.served and stream.nodes[-1] == good.node_id
    assert text.endswith(f"answer from {good.node_id}")
    assert text.count("x") <= (8 + 4) + 16  # what the flooding node got through before the cut


def test_a_sealed_frame_that_is_not_json_is_an_envelope_error():
    key = b"k" * 32
    sealer, opener = ResponseSealer(key), ResponseOpener(key)
    good = sealer.seal({"done": True})
    assert list(opener.feed(good)) == [{"done": True}]
    from tether.cloud import envelope

    plain = b"not json" + b" " * 8
    ct = sealer._aead.encrypt(envelope._nonce(1), plain, envelope._aad(1, True))
    with pytest.raises(EnvelopeError, match="not JSON"):
        list(opener.feed(envelope._FRAME_HEADER.pack(len(ct), 1) + ct))


def test_a_log_with_a_node_token_takes_announcements_only_with_it(start_service, tmp_path):
    log = start_service("tokened-log", ["log", "serve", "--port", "0", "--db", str(tmp_path / "l.sqlite"),
                                        "--key", str(tmp_path / "l.key"), "--admin-token", "adm",
                                        "--node-token", "nodes-only"], tmp_path)
    try:
        assert "no node token" not in log.output()
        identity, keys = NodeIdentity(), KeyPair()
        att = make_attestation(identity, keys.public_bytes, RELEASE, url="http://127.0.0.1:9", model="m",
                               hardware={}, tokens_per_second=1.0)
        url = log.url + "/v1/log/nodes"
        for headers in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "nodes-only"}]:
            r = httpx.post(url, json=att, headers=headers, timeout=10)
            assert r.status_code == 401 and "node token" in r.json()["error"], r.text
        assert httpx.get(log.url + "/v1/log/sth", timeout=10).json()["size"] == 0
        assert httpx.post(url, json=att, headers={"Authorization": "Bearer nodes-only"}, timeout=10).status_code == 200
        again = make_attestation(identity, keys.public_bytes, RELEASE, url="http://127.0.0.1:9", model="m",
                                 hardware={}, tokens_per_second=2.0)
        assert httpx.post(url, json=again, headers={"Authorization": "Bearer adm"}, timeout=10).status_code == 200
        # the node token logs no release
        r = httpx.post(log.url + "/v1/log/releases", json=RELEASE.components(),
                       headers={"Authorization": "Bearer nodes-only"}, timeout=10)
        assert r.status_code == 401
        # a node started without the token stops with one line naming the need
        node = subprocess.run(
            [sys.executable, "-m", "tether", "--threads", "1", "node", "serve", "--model", "smollm2-135m",
             "--port", "0", "--log", log.url], capture_output=True, text=True, timeout=300,
            env={**os.environ, "TETHER_LOG_NODE_TOKEN": ""})
        assert node.returncode == 1 and "node token" in node.stderr and "Traceback" not in node.stderr, node.stderr
    finally:
        log.stop()


def test_an_open_log_warns_and_a_lone_surrogate_is_a_400(cloud):
    assert "no node token" in cloud["log"].output()
    body = '{"node_id": "\\ud800x", "version": 1}'
    r = httpx.post(cloud["log"].url + "/v1/log/nodes", content=body, headers={"content-type": "application/json"},
                   timeout=10)
    assert r.status_code == 400 and "error" in r.json()
    assert "Traceback" not in cloud["log"].output()


def test_a_log_answer_is_capped_in_size_and_in_total_time(tmp_path):
    async def huge(request):
        return JSONResponse({"pad": "x" * (MAX_LOG_ANSWER + 1)})

    async def trickle(request):
        return trickled(60, 0.5, b"{}")

    key = base64.b64encode(Ed25519PrivateKey.generate().public_key().public_bytes_raw()).decode()
    url, stop = serve_in_thread([Route("/big/v1/log/sth", huge), Route("/slow/v1/log/sth", trickle)])
    try:
        with pytest.raises(TransparencyLogError, match="over 8 MiB"):
            LogClient(url + "/big", key, timeout=5).tree_head()
        start = time.monotonic()
        with pytest.raises(LogUnreachableError, match="no whole answer in 2 s"):
            LogClient(url + "/slow", key, timeout=1).tree_head()
        assert time.monotonic() - start < 5
    finally:
        stop()


def test_processes_sharing_a_state_file_do_not_trip_over_each_other(tmp_path):
    state = tmp_path / "cloud-state.json"
    clients = [LogClient("http://127.0.0.1:9", state_path=state) for _ in range(8)]
    errors: list[BaseException] = []

    def save(client: LogClient) -> None:
        try:
            for _ in range(50):
                client._save_state()
        except BaseException as exc:  # noqa: BLE001 - collected for the assert
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert json.loads(state.read_text())["url"] == "http://127.0.0.1:9"
    assert [p.name for p in tmp_path.iterdir()] == ["cloud-state.json"]  # no temp file left behind


def test_a_damaged_state_file_is_named_in_the_error(tmp_path):
    state = tmp_path / "cloud-state.json"
    for content in ['{"sth": "x"}', '{"public_key": 5}']:
        state.write_text(content)
        with pytest.raises(TransparencyLogError, match=f"cloud state {state} is damaged"):
            LogClient("http://127.0.0.1:9", state_path=state)


def _tether(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tether", "--threads", "1", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_a_node_listening_on_every_address_announces_its_public_url(cloud, start_service, tmp_path):
    bad = _tether("node", "serve", "--model", "smollm2-135m", "--host", "0.0.0.0", "--port", "0",
                  "--log", cloud["log"].url)
    assert bad.returncode == 1 and "give --public-url" in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
    wrong = _tether("node", "serve", "--model", "smollm2-135m", "--public-url", "http://127.0.0.1:1/v1", "--port", "0")
    assert wrong.returncode == 1 and "--public-url" in wrong.stderr and "no path" in wrong.stderr, wrong.stderr

    import socket

    with socket.socket() as s:  # a free port the node can then listen on, to name in --public-url
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    public = f"http://127.0.0.1:{port}"
    node = start_service("public-url-node", ["--threads", "1", "node", "serve", "--model", "smollm2-135m",
                                             "--host", "0.0.0.0", "--port", str(port), "--public-url", public,
                                             "--log", cloud["log"].url], tmp_path)
    try:
        att = httpx.get(public + "/v1/attestation", timeout=10).json()
        assert att["url"] == public
        index = int(re.search(r"attestation logged at index (\d+)", node.output()).group(1))
        entry = httpx.get(cloud["log"].url + "/v1/log/entries", params={"start": index, "end": index},
                          timeout=10).json()["entries"][0]["entry"]
        assert entry["attestation"]["url"] == public
    finally:
        node.stop()


def test_a_log_that_cannot_make_its_files_names_them(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    key = _tether("log", "serve", "--port", "0", "--db", str(tmp_path / "l.sqlite"), "--key", str(blocker / "l.key"))
    assert key.returncode == 1 and key.stderr.strip() == \
        f"Error: cannot create log key {blocker / 'l.key'}: {blocker} is a file, not a folder", key.stderr
    db = _tether("log", "serve", "--port", "0", "--db", str(blocker / "l.sqlite"), "--key", str(tmp_path / "l.key"))
    assert db.returncode == 1 and db.stderr.strip() == \
        f"Error: cannot open transparency log {blocker / 'l.sqlite'}: {blocker} is a file, not a folder", db.stderr


WRONG_SHAPES = [("empty_choices", False), ("done_as_answer", False), ("message_in_stream", True)]


def _text(frames: list[dict]) -> str:
    return "".join((c["choices"][0]["delta"].get("content") or "") for c in frames if c.get("choices"))


@pytest.mark.parametrize("behaviour, streamed", WRONG_SHAPES)
def test_an_answer_shaped_wrong_for_its_mode_is_the_node_s_fault_and_another_node_answers(cloud, nodes, behaviour,
                                                                                          streamed):
    """Each passed the old check (``choices: []``, a bare ``done``, ``message`` in a stream) and then
    crashed whoever read it: IndexError or KeyError in the CLI and the router's cloud tier."""
    model = unique_model(behaviour)
    bad = stand_in(cloud["log"].url, model, behaviour, tokens_per_second=300)  # ranked first
    good = stand_in(cloud["log"].url, model, "answer", tokens_per_second=1)
    nodes += [bad, good]
    client = _client(cloud, model, k=2, attempts=3, deadline=20)
    try:
        if streamed:
            stream = client.stream({**HI, "max_tokens": 8})
            text = _text(list(stream))
            answered_by = stream.nodes[-1]
        else:
            out = client.chat(HI)
            text = out["choices"][0]["message"]["content"]
            answered_by = out["x_tether"]["node"]
    finally:
        client.close()
    assert bad.served, "the broken node was never tried"
    assert answered_by == good.node_id
    assert text.endswith(f"answer from {good.node_id}")


@pytest.mark.parametrize("behaviour, streamed", WRONG_SHAPES)
def test_cloud_chat_with_only_a_node_answering_wrong_is_one_line(cloud, nodes, tmp_path, behaviour, streamed):
    model = unique_model(f"cli-{behaviour}")
    nodes.append(stand_in(cloud["log"].url, model, behaviour))
    result = subprocess.run(
        [sys.executable, "-m", "tether", "cloud", "chat", "hello", "--relay", cloud["relay"].url, "--log-key",
         cloud["key"], "--model", model, "--deadline", "20", "--stream" if streamed else "--no-stream"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "TETHER_CLOUD_STATE": str(tmp_path / "s.json")})
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.stderr and "no chat completion" in lines[0]


@pytest.mark.parametrize("behaviour, max_tokens", [("fat_chunks", 8), ("fat_answer", 1000)])
def test_an_answer_too_large_in_bytes_is_cut_off_and_another_node_answers(cloud, nodes, behaviour, max_tokens):
    """Frames were counted, bytes were not: 12 chunks of 6 MiB each (72 MiB held) passed for max_tokens 8.
    Now a streamed chunk may take 64 KiB, and an answer 16 MiB (more for a long one)."""
    model = unique_model(behaviour)
    fat = stand_in(cloud["log"].url, model, behaviour, tokens_per_second=300)
    good = stand_in(cloud["log"].url, model, "answer", tokens_per_second=1)
    nodes += [fat, good]
    client = _client(cloud, model, k=2, attempts=3, deadline=60)
    try:
        stream = client.stream({**HI, "max_tokens": max_tokens})
        text = _text(list(stream))
    finally:
        client.close()
    assert fat.served and stream.nodes[-1] == good.node_id
    assert text.endswith(f"answer from {good.node_id}")
    assert len(text) < 17 * 2**20
