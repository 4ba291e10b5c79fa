"""A node fronting an existing OpenAI-compatible engine: here the real llama.cpp server.

This is how a node runs on a GPU (vLLM) or on Inferentia/Trainium (vLLM Neuron):
Tether adds the envelope, attestation and statelessness; the engine stays proven.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time

import httpx
import pytest
from click.testing import CliRunner

from tether.cloud.client import CloudClient
from tether.models import catalog

MODEL = "smollm2-135m"
TOKEN = "upstream-admin"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def upstream_cloud(tmp_path_factory, start_service):
    pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python[server] extras are test dependencies")
    root = tmp_path_factory.mktemp("upstream")
    port = _free_port()
    engine_url = f"http://127.0.0.1:{port}"
    engine = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(catalog.pull(MODEL, progress=False)),
                               "--port", str(port), "--n_threads", "1", "--n_ctx", "2048"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    services = []
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{engine_url}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert engine.poll() is None and time.monotonic() < deadline, "llama.cpp server did not start"
            time.sleep(0.3)
        log = start_service("log", ["log", "serve", "--port", "0", "--db", str(root / "log.sqlite"),
                                    "--key", str(root / "log.key"), "--admin-token", TOKEN], root)
        services.append(log)
        from tether.cli import cli
        from tether.cli import cloud, log as log_cli  # noqa: F401

        released = CliRunner().invoke(cli, ["log", "release", "--log", log.url, "--model", MODEL, "--upstream", engine_url,
                                            "--max-tokens", "256", "--token", TOKEN])
        assert released.exit_code == 0, released.output
        node = start_service("node-upstream", ["node", "serve", "-m", MODEL, "--upstream", engine_url, "--port", "0",
                                               "--max-tokens", "256", "--log", log.url], root)
        services.append(node)
        relay = start_service("relay", ["relay", "serve", "--port", "0", "--log", log.url], root)
        services.append(relay)
        key = re.search(r"log key: (\S+)", log.output()).group(1)
        client = CloudClient(log.url, relay.url, log_key=key, state_path=root / "state.json", k=1)
        yield {"client": client, "engine": engine_url, "node": node, "engine_proc": engine, "key": key,
               "relay": relay, "root": root}
        client.close()
    finally:
        for s in services:
            s.stop()
        engine.terminate()
        engine.wait(10)


def test_upstream_node_is_attested_with_its_upstream_in_the_measurement(upstream_cloud):
    verdicts = upstream_cloud["client"].refresh()
    assert [v.trusted for v in verdicts] == [True]
    info = httpx.get(f"{upstream_cloud['node'].url}/v1/info", timeout=5).json()
    assert info["tokens_per_second"] > 0


def test_upstream_answers_match_the_engine_called_directly(upstream_cloud):
    body = {"messages": [{"role": "user", "content": "Name a fruit."}], "max_tokens": 16, "temperature": 0}
    direct = httpx.post(f"{upstream_cloud['engine']}/v1/chat/completions", json=body, timeout=60).json()
    expected = direct["choices"][0]["message"]["content"]
    through = upstream_cloud["client"].chat(body)
    assert through["choices"][0]["message"]["content"] == expected
    stream = upstream_cloud["client"].stream(body)
    chunks = list(stream)
    assert len(chunks) > 2 and stream.text == expected


def test_an_upstream_that_answers_non_json_is_a_typed_error():
    """A misconfigured --upstream (a web page, a proxy's error) must not crash the node with a traceback."""
    import threading

    from starlette.responses import Response
    from starlette.routing import Route

    from tether.cloud.node import NodeSettings, UpstreamBackend
    from tether.errors import TetherError
    from tests.cloud.conftest import serve_in_thread

    async def html(request):
        if (await request.json()).get("stream"):
            return Response(b"data: <html>\n\ndata: [DONE]\n\n", media_type="text/event-stream")
        return Response(b"<html>It works!</html>", media_type="text/html")

    url, stop = serve_in_thread([Route("/v1/chat/completions", html, methods=["POST"])])
    try:
        backend = UpstreamBackend(NodeSettings(model="smollm2-135m", upstream=url, model_sha256="0" * 64))
        for stream in (False, True):
            body = {"messages": [{"role": "user", "content": "hi"}], "stream": stream}
            with pytest.raises(TetherError, match="not JSON"):
                list(backend.run(body, threading.Event()))
        with pytest.raises(TetherError, match="not JSON"):
            backend.measure_tokens_per_second()
    finally:
        stop()


def test_a_dead_engine_is_a_node_fault_the_device_cools_and_the_relay_sees(upstream_cloud):
    """Runs last: it stops the engine. The node's fault is retried elsewhere, not reported as the request's."""
    from tether.errors import NoNodeAvailableError

    node = upstream_cloud["node"]
    assert httpx.get(f"{node.url}/healthz", timeout=5).json()["ok"] is True
    upstream_cloud["engine_proc"].terminate()
    upstream_cloud["engine_proc"].wait(10)
    deadline = time.monotonic() + 5  # the node asks its engine at most once a second
    while (health := httpx.get(f"{node.url}/healthz", timeout=5)).status_code == 200:
        assert time.monotonic() < deadline, "the node still calls itself healthy"
        time.sleep(0.2)
    assert health.status_code == 503 and health.json()["error"] == "upstream engine unreachable"
    client = CloudClient(None, upstream_cloud["relay"].url, log_key=upstream_cloud["key"], k=1,
                         state_path=upstream_cloud["root"] / "dead-engine.json")
    try:
        node_id = client.nodes()[0].node_id
        with pytest.raises(NoNodeAvailableError, match="upstream engine failed"):
            client.chat({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
        assert client._cooling[node_id] > time.monotonic()  # the next request goes elsewhere first
    finally:
        client.close()
