"""Failover on real processes: a log, a relay and one smollm2 node on a fixed port, on loopback.

The node is restarted on its own port (new keys, same URL) and an anonymous announcement
points at it, so every device meets entries that reject its envelopes.
"""

from __future__ import annotations

import re
import socket
import time

import httpx
import pytest
from click.testing import CliRunner

from tether.cloud.attestation import Measurement, NodeIdentity, make_attestation
from tether.cloud.client import CloudClient
from tether.cloud.envelope import KeyPair

MODEL = "smollm2-135m"
TOKEN = "failover-admin"
NODE_ARGS = ["-m", MODEL, "--n-ctx", "512", "--max-tokens", "64"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def small_cloud(tmp_path_factory, start_service):
    from tether.cli import cli
    from tether.cli import cloud, log as log_cli  # noqa: F401

    root = tmp_path_factory.mktemp("failover")
    services = []
    try:
        log = start_service("log", ["log", "serve", "--port", "0", "--db", str(root / "log.sqlite"),
                                    "--key", str(root / "log.key"), "--admin-token", TOKEN], root)
        services.append(log)
        released = CliRunner().invoke(cli, ["log", "release", "--log", log.url, "--model", MODEL, "--n-ctx", "512",
                                            "--max-tokens", "64", "--token", TOKEN])
        assert released.exit_code == 0, released.output
        port = _free_port()
        node = start_service("node", ["node", "serve", *NODE_ARGS, "--port", str(port), "--log", log.url], root)
        services.append(node)
        relay = start_service("relay", ["relay", "serve", "--port", "0", "--log", log.url], root)
        services.append(relay)
        key = re.search(r"log key: (\S+)", log.output()).group(1)
        yield {"log": log, "node": node, "port": port, "relay": relay, "key": key, "root": root,
               "services": services, "start": start_service}
    finally:
        for s in services:
            s.stop()


def _fresh_chats(cloud, n: int) -> list[str]:
    """``n`` chats, each from a new device (no cooldowns or latencies carried over)."""
    served = []
    for i in range(n):
        client = CloudClient(None, cloud["relay"].url, log_key=cloud["key"], k=2,
                             state_path=cloud["root"] / f"device-{time.monotonic_ns()}.json")
        try:
            out = client.chat({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1})
            served.append(out["x_tether"]["node"])
        finally:
            client.close()
    return served


def _node_id(service) -> str:
    return re.search(r"node (\w+) ", service.output()).group(1)


def test_a_rogue_announcement_at_a_real_node_s_address_does_not_break_chat(small_cloud):
    """A released measurement copied with a fresh key, 9e6 tokens/s and the real node's URL."""
    real = httpx.get(f"{small_cloud['node'].url}/v1/attestation", timeout=10).json()
    rogue = make_attestation(NodeIdentity(), KeyPair().public_bytes, Measurement.from_components(real["components"]),
                             url=small_cloud["node"].url, model=real["model"], hardware={},
                             tokens_per_second=9_000_000)
    assert httpx.post(f"{small_cloud['log'].url}/v1/log/nodes", json=rogue, timeout=10).status_code == 200
    time.sleep(2.5)  # the relay's directory refresh
    assert set(_fresh_chats(small_cloud, 6)) == {real["node_id"]}


def test_a_restarted_node_s_stale_entry_does_not_break_chat(small_cloud):
    old = small_cloud["node"]
    old_id = _node_id(old)
    old.stop()
    new = small_cloud["start"]("node-restarted", ["node", "serve", *NODE_ARGS, "--port", str(small_cloud["port"]),
                                                  "--log", small_cloud["log"].url], small_cloud["root"])
    small_cloud["services"].append(new)
    new_id = _node_id(new)
    assert new_id != old_id and new.url == old.url
    # The relay reads the log a quarter second apart at most: a device that reads the new entry
    # first would find it unknown to the relay (a 1-in-N flake; docs/private-cloud.md, faults).
    deadline = time.monotonic() + 10
    while new_id not in httpx.get(f"{small_cloud['relay'].url}/v1/relay/load", timeout=5).json()["nodes"]:
        assert time.monotonic() < deadline, "the relay never listed the restarted node"
        time.sleep(0.05)
    assert set(_fresh_chats(small_cloud, 6)) == {new_id}
    # The relay's health checks see the URL answer for another node, and call the old entry down.
    deadline = time.monotonic() + 10
    while httpx.get(f"{small_cloud['relay'].url}/v1/relay/load", timeout=5).json()["nodes"][old_id]["healthy"]:
        assert time.monotonic() < deadline, "the relay never noticed the stale entry"
        time.sleep(0.2)
