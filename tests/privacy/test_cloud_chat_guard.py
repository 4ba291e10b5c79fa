"""``tether cloud chat`` applies the private_cloud privacy policy, as the router does.

Real processes on loopback: a transparency log and a relay (``tether`` subprocesses), and one
node that holds real keys, is announced to the log and opens the real envelope; it answers by
echoing the prompt it received, so the test sees exactly what left the device.
"""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tether.cli import cli
from tether.cli import cloud as _cloud_cli  # noqa: F401  (registers the group)

TOKEN = "cloud-chat-guard-admin"
EMAIL = "maria.gonzalez@example.org"


def _echo_node(log_url: str, model: str):
    """A node that answers "echo: <the user message it received>", in small chunks when streaming."""
    import httpx

    from tether.cloud.attestation import NodeIdentity, make_attestation
    from tether.cloud.envelope import KeyPair, ReplayGuard, open_request
    from tether.cloud.node import SEALED_MEDIA_TYPE

    from tests.cloud.conftest import serve_in_thread
    from tests.cloud.standins import RELEASE

    identity, keys, replay = NodeIdentity(), KeyPair(), ReplayGuard()
    received: list[str] = []

    async def envelope(request: Request) -> Response:
        chat, sealer = open_request(json.loads(await request.body()), identity.node_id, keys, replay)
        prompt = chat["messages"][-1]["content"]
        received.append(prompt)
        answer = f"echo: {prompt}"

        async def frames():
            if not chat.get("stream"):
                yield sealer.seal({"id": "c", "object": "chat.completion", "model": model,
                                   "choices": [{"index": 0, "finish_reason": "stop",
                                                "message": {"role": "assistant", "content": answer}}]}, final=True)
                return
            for i in range(0, len(answer), 3):  # placeholders arrive cut in pieces
                yield sealer.seal({"id": "c", "object": "chat.completion.chunk", "model": model,
                                   "choices": [{"index": 0, "delta": {"content": answer[i:i + 3]},
                                                "finish_reason": None}]})
            yield sealer.seal({"done": True}, final=True)

        return StreamingResponse(frames(), media_type=SEALED_MEDIA_TYPE)

    url, stop = serve_in_thread([Route("/v1/envelope", envelope, methods=["POST"])])
    att = make_attestation(identity, keys.public_bytes, RELEASE, url=url, model=model, hardware={},
                           tokens_per_second=100.0)
    assert httpx.post(f"{log_url}/v1/log/nodes", json=att, timeout=10).status_code == 200
    return received, stop


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    from tests.cloud.conftest import _start_service
    from tests.cloud.standins import release, unique_model

    root = tmp_path_factory.mktemp("cloud-chat-guard")
    services, stop_node = [], None
    try:
        log = _start_service("log", ["log", "serve", "--port", "0", "--db", str(root / "log.sqlite"),
                                     "--key", str(root / "log.key"), "--admin-token", TOKEN], root)
        services.append(log)
        release(log.url, TOKEN)
        model = unique_model("guarded")
        received, stop_node = _echo_node(log.url, model)
        relay = _start_service("relay", ["relay", "serve", "--port", "0", "--log", log.url], root)
        services.append(relay)
        key = re.search(r"log key: (\S+)", log.output()).group(1)
        policy = root / "privacy.toml"
        policy.write_text("version = 1\n")  # the built-in policy, whatever this machine's user config says
        env = {"TETHER_CLOUD_STATE": str(root / "device-state.json"), "TETHER_PRIVACY_CONFIG": str(policy),
               "TETHER_RAISE_ERRORS": ""}
        args = ["--log", log.url, "--relay", relay.url, "--log-key", key, "--model", model]
        yield {"received": received, "args": args, "env": env}
    finally:
        if stop_node is not None:
            stop_node()
        for s in services:
            s.stop()


def _chat(cloud, prompt: str, *flags: str):
    return CliRunner().invoke(cli, ["cloud", "chat", prompt, *cloud["args"], *flags], env=cloud["env"])


@pytest.mark.parametrize("mode", ["--stream", "--no-stream"])
def test_personal_data_leaves_pseudonymized_and_the_answer_is_restored(cloud, mode):
    prompt = f"Write to {EMAIL} and thank Maria Gonzalez for the report."
    before = len(cloud["received"])
    result = _chat(cloud, prompt, mode)
    assert result.exit_code == 0, result.output
    sent = cloud["received"][before:]
    assert len(sent) == 1
    assert EMAIL not in sent[0] and "Gonzalez" not in sent[0] and "<EMAIL_ADDRESS_1>" in sent[0]
    assert result.stdout.strip() == f"echo: {prompt}"  # the placeholders are restored on the device
    assert "pseudonymized before sending" in result.stderr


def test_a_secret_keeps_the_prompt_on_the_device_with_one_error_line(cloud):
    before = len(cloud["received"])
    for mode in ("--stream", "--no-stream"):
        result = _chat(cloud, "Deploy with AKIAIOSFODNN7EXAMPLE and password: hunter2!", mode)
        assert result.exit_code != 0
        errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and "must stay on the device" in errors[0], result.output
        assert "API_KEY" in errors[0] and "private_cloud" in errors[0]
        assert "AKIA" not in result.output
    assert cloud["received"][before:] == []  # nothing reached the node


def test_a_prompt_without_personal_data_goes_as_it_is(cloud):
    before = len(cloud["received"])
    result = _chat(cloud, "Name three fruits.", "--no-stream")
    assert result.exit_code == 0, result.output
    assert cloud["received"][before:] == ["Name three fruits."]
    assert result.stdout.strip() == "echo: Name three fruits."
    assert "pseudonymized" not in result.stderr


def test_a_private_cloud_that_needs_consent_gets_nothing_without_it(cloud, tmp_path):
    """The policy can make the private cloud need consent; the router honoured that, but
    ``cloud chat`` sent the prompt anyway."""
    policy = tmp_path / "consent.toml"
    policy.write_text("version = 1\n[tiers.private_cloud]\nrequires_consent = true\n")
    router = tmp_path / "router.toml"
    env = {**cloud["env"], "TETHER_PRIVACY_CONFIG": str(policy), "TETHER_ROUTER_CONFIG": str(router)}
    before = len(cloud["received"])
    for saved, flags in [("ask", ()), ("ask", ("--no-consent",)), ("never", ("--consent",))]:
        router.write_text(f'consent = "{saved}"\n')
        result = CliRunner().invoke(cli, ["cloud", "chat", "Name three fruits.", *cloud["args"], *flags], env=env)
        assert result.exit_code != 0
        errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and "needs the user's consent" in errors[0], result.output
        assert ("--consent" in errors[0]) == (not flags)
    assert cloud["received"][before:] == []  # nothing reached the node
    for saved, flags in [("ask", ("--consent",)), ("always", ())]:
        router.write_text(f'consent = "{saved}"\n')
        result = CliRunner().invoke(cli, ["cloud", "chat", "Name three fruits.", *cloud["args"], "--no-stream",
                                          *flags], env=env)
        assert result.exit_code == 0, result.output
        assert result.stdout.strip() == "echo: Name three fruits."
    assert cloud["received"][before:] == ["Name three fruits."] * 2
