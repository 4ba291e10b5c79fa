"""The private cloud's deadline from the router config, and the status a failed request keeps.

Real processes on loopback: a transparency log and a relay (``tether`` subprocesses), one
stand-in node with real keys that answers 413 to an envelope over ``LIMIT`` bytes and hangs on
anything smaller, and a real OpenAI-compatible provider. The router is built from a config file
(``Router.from_config``), as ``tether serve`` builds it.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.cloud.conftest import log_and_relay
from tests.cloud.standins import stand_in
from tether.cloud.client import DEADLINE
from tether.errors import RouterConfigError, TierUnavailableError
from tether.routing.config import RouterConfig
from tether.routing.router import RouteRequest, Router

TOKEN = "status-admin"
LIMIT = 16_000  # the node's body limit, in sealed bytes; a small request is far under it
BIG = "hello " * 5_000  # 30,000 bytes: over it
SMALL = "Say hello."
DEADLINE_S = 1.0


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    with log_and_relay(tmp_path_factory.mktemp("cloud-status"), TOKEN) as (log, relay, key):
        node = stand_in(log.url, "stand-in", "hang", limit=LIMIT)
        try:
            yield {"relay": relay.url, "key": key, "node": node}
        finally:
            node.stop()


def write_config(tmp_path, name: str = "router.json", **private_cloud) -> str:
    path = tmp_path / name
    path.write_text(json.dumps({
        "allow_degraded": False, "cascade": [], "consent": "always", "ledger": str(tmp_path / "ledger.sqlite"),
        "private_cloud": {"relay_url": "http://127.0.0.1:9", "state_path": str(tmp_path / "state.json"),
                          **private_cloud}}))
    return str(path)


def cloud_router(cloud, tmp_path, **config) -> Router:
    path = tmp_path / "router.json"
    path.write_text(json.dumps({
        "allow_degraded": False, "cascade": [], "consent": "always", "ledger": str(tmp_path / "ledger.sqlite"),
        "private_cloud": {"relay_url": cloud["relay"], "log_key": cloud["key"], "deadline": DEADLINE_S,
                          "state_path": str(tmp_path / "state.json")}, **config}))
    return Router.from_config(RouterConfig.load(path))


# ----------------------------------------------------------------- the config

def test_the_config_s_deadline_reaches_the_cloud_client_and_defaults_to_the_client_s(tmp_path):
    router = Router.from_config(RouterConfig.load(write_config(tmp_path, deadline=2.5)))
    assert router.private_cloud.client.deadline == 2.5
    plain = Router.from_config(RouterConfig.load(write_config(tmp_path, "plain.json")))
    assert plain.private_cloud.client.deadline == DEADLINE == 150


@pytest.mark.parametrize("value", ["0", '"abc"', "-1", "3601", "inf", "nan"])
def test_a_deadline_that_is_not_a_positive_number_of_seconds_names_the_field(tmp_path, value):
    path = tmp_path / "router.toml"
    path.write_text(f'[private_cloud]\nrelay_url = "http://127.0.0.1:8490"\ndeadline = {value}\n')
    with pytest.raises(RouterConfigError, match=r"router.toml: private_cloud\.deadline: "):
        RouterConfig.load(path)


def test_the_toml_example_in_the_docstring_sets_the_deadline(tmp_path):
    import tether.routing.config as config

    example = config.__doc__.split("```toml\n")[1].split("```")[0]
    path = tmp_path / "router.toml"
    path.write_text(example)
    loaded = RouterConfig.load(path)
    assert loaded.private_cloud is not None and loaded.private_cloud.deadline == 150


# ----------------------------------------------------------------- statuses, on a real cloud

def test_a_request_too_large_for_the_cloud_keeps_413_plain_and_streamed(cloud, tmp_path):
    router = cloud_router(cloud, tmp_path)
    with pytest.raises(TierUnavailableError) as plain:
        router.respond(RouteRequest(BIG, tier="private_cloud", max_tokens=8))
    with pytest.raises(TierUnavailableError) as streamed:
        list(router.stream(RouteRequest(BIG, tier="private_cloud", max_tokens=8)))
    for caught in (plain, streamed):
        assert caught.value.status == 413
        assert "too large" in caught.value.reason and "forbids answering on the device" in caught.value.reason
    assert "too_large" in cloud["node"].served  # the node's 413, passed on by the relay


def test_the_config_s_deadline_ends_a_hanging_request_with_504(cloud, tmp_path):
    router = cloud_router(cloud, tmp_path)
    for run in (router.respond, lambda req: list(router.stream(req))):
        start = time.monotonic()
        with pytest.raises(TierUnavailableError) as caught:
            run(RouteRequest(SMALL, tier="private_cloud", max_tokens=8))
        took = time.monotonic() - start
        assert caught.value.status == 504 and f"{DEADLINE_S:g} s deadline" in caught.value.reason
        assert DEADLINE_S * 0.9 < took < DEADLINE_S + 3, took  # the config's 1 s, not the client's 150 s


def test_tiers_that_fail_differently_keep_no_status(cloud, tmp_path, provider):
    """A third party that answers 413, then the private cloud: the same status is kept, another is not."""
    router = cloud_router(cloud, tmp_path, third_party={"base_url": provider.url, "model": "gpt-test", "retries": 0})
    try:
        provider.faults([413] * 2)
        with pytest.raises(TierUnavailableError) as both_413:
            router.respond(RouteRequest(BIG, tier="third_party", consent=True, max_tokens=8))
        assert both_413.value.status == 413
        assert [n.split(" failed")[0] for n in both_413.value.reason.split("; ")[:2]] == ["third_party", "private_cloud"]
        provider.faults([413] * 2)
        with pytest.raises(TierUnavailableError) as mixed:
            router.respond(RouteRequest(SMALL, tier="third_party", consent=True, max_tokens=8))
        assert mixed.value.status is None  # 413 there, 504 here: neither is the answer
        assert "413" in mixed.value.reason and "deadline" in mixed.value.reason
    finally:
        provider.faults([])
        router.third_party.close()



# ----------------------------------------------------------------- tether cloud chat --deadline

def test_cloud_chat_s_deadline_option_ends_a_hanging_request(cloud, tmp_path):
    import importlib

    from click.testing import CliRunner

    from tether.cli import cli

    importlib.import_module("tether.cli.cloud")  # registers the group

    def run(*args: str):
        return CliRunner().invoke(cli, ["cloud", "chat", "Say hello.", "--relay", cloud["relay"], "--log-key",
                                        cloud["key"], *args], env={"TETHER_CLOUD_STATE": str(tmp_path / "state.json")})

    for bad in ("0", "-1", "3601", "abc"):
        refused = run("--deadline", bad)
        assert refused.exit_code == 2 and "--deadline" in refused.output, refused.output
    start = time.monotonic()
    result = run("--deadline", "1", "--no-stream")
    took = time.monotonic() - start
    assert result.exit_code == 1 and "1 s deadline" in result.output, result.output
    assert 0.9 < took < 5, took
