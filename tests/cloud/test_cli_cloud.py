"""The cloud commands fail with one clear line and a non-zero exit."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from tether.cli import cli
from tether.cli import cloud, log  # noqa: F401  (register the groups)

DEAD = "http://127.0.0.1:9"  # discard port: nothing listens


def run(*args: str, **env: str):
    return CliRunner().invoke(cli, list(args), env=env)


def _one_error_line(result) -> str:
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    return errors[0]


def test_chat_with_unreachable_log_is_one_line(tmp_path):
    result = run("cloud", "chat", "hello", "--log", DEAD, "--relay", DEAD,
                 TETHER_CLOUD_STATE=str(tmp_path / "state.json"))
    line = _one_error_line(result)
    assert "127.0.0.1:9" in line


def test_nodes_with_unreachable_log_is_one_line(tmp_path):
    result = run("cloud", "nodes", "--log", DEAD, "--relay", DEAD, TETHER_CLOUD_STATE=str(tmp_path / "s.json"))
    _one_error_line(result)


def test_empty_prompt_is_refused(tmp_path):
    line = _one_error_line(run("cloud", "chat", "   ", "--log", DEAD, "--relay", DEAD))
    assert "empty" in line


@pytest.mark.parametrize("args, needle", [
    (["relay", "serve", "--port", "0"], "--log"),
    (["relay", "serve", "--port", "0", "--node", "abc"], "ID=URL"),
    (["node", "serve", "--model", "no-such-model", "--port", "0"], "unknown model"),
])
def test_serve_commands_refuse_bad_arguments(args, needle):
    assert needle in _one_error_line(run(*args))


@pytest.mark.parametrize("args, needle", [
    (["--model-sha256", "xyz"], "--model-sha256 must be 64 hex digits, not 'xyz'"),
    ([], "the catalog pins no sha256 for 'my-own-model': pass --model-sha256"),
])
def test_an_upstream_node_whose_measurement_no_release_can_match_is_refused(args, needle):
    """The log takes only a sha256 for a release: a node measured with "xyz" (or "unstated") would
    serve, but no device would ever use it. Refused before the engine is asked anything."""
    result = run("node", "serve", "--port", "0", "--model", "my-own-model", "--upstream", DEAD, *args)
    assert needle in _one_error_line(result)
    assert "tokens/s" not in result.output


@pytest.mark.parametrize("args", [
    ("log", "status", "--log", "http://[::1"),
    ("log", "release", "--log", "http://[::1", "--model", "smollm2-135m"),
    ("cloud", "nodes", "--relay", "http://[::1"),
    ("cloud", "nodes", "--relay", DEAD, "--log", "ftp://log.example"),
    ("cloud", "chat", "hi", "--relay", "127.0.0.1:8490"),
    ("relay", "serve", "--port", "0", "--log", "http://[::1"),
    ("node", "serve", "--port", "0", "--upstream", "http://[::1", "--model-sha256", "0" * 64),
    ("node", "serve", "--port", "0", "-m", "smollm2-135m", "--log", "notaurl"),
])
def test_a_malformed_url_is_one_line_before_anything_starts(tmp_path, args):
    result = run(*args, TETHER_CLOUD_STATE=str(tmp_path / "s.json"), TETHER_RAISE_ERRORS="")
    line = _one_error_line(result)
    assert "URL" in line and ("not a valid URL" in line or "http:// or https://" in line), line
    assert "tokens/s" not in result.output  # refused before a model was loaded and measured


def test_log_serve_on_a_busy_port_makes_no_key_or_database(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        line = _one_error_line(run("log", "serve", "--port", str(port), "--db", str(tmp_path / "new.sqlite"),
                                   "--key", str(tmp_path / "new.key")))
    assert f"cannot listen on 127.0.0.1:{port}" in line
    assert list(tmp_path.iterdir()) == []


def test_a_dead_relay_is_named_when_the_log_is_read_through_it(tmp_path):
    line = _one_error_line(run("cloud", "nodes", "--relay", DEAD, TETHER_CLOUD_STATE=str(tmp_path / "s.json")))
    assert line.startswith(f"Error: relay {DEAD} (the log is read through it) unreachable")


def test_a_prompt_too_large_for_the_relay_is_one_line_before_anything_is_sent(tmp_path):
    """The relay is dead: a retry loop or a network error would show; the size is checked first."""
    from tether.cloud.node import MAX_BODY

    result = run("cloud", "chat", "x" * (MAX_BODY + 10), "--relay", DEAD, "--no-stream",
                 TETHER_CLOUD_STATE=str(tmp_path / "s.json"))
    line = _one_error_line(result)
    assert "too large" in line and f"{MAX_BODY:,} bytes" in line, line
    assert not (tmp_path / "s.json").exists()  # nothing was read, not even the log


def _log(tmp_path, start_service, name: str, key: str = "log.key", db: str = "log.sqlite"):
    import re

    service = start_service(name, ["log", "serve", "--port", "0", "--db", str(tmp_path / db),
                                   "--key", str(tmp_path / key)], tmp_path)
    return service, re.search(r"log key: (\S+)", service.output()).group(1)


def test_a_replaced_or_rolled_back_log_is_one_line_that_says_how_to_repin(tmp_path, start_service):
    import httpx

    from tests.cloud.standins import RELEASE

    state = tmp_path / "device-state.json"
    env = {"TETHER_CLOUD_STATE": str(state)}
    log, key = _log(tmp_path, start_service, "log")
    try:
        for tag in range(3):  # the device pins a tree of size 3
            assert httpx.post(f"{log.url}/v1/log/releases", timeout=10, json={
                **RELEASE.components(), "config": {**RELEASE.config, "n_ctx": 512 + tag}}).status_code == 200
        assert run("cloud", "nodes", "--log", log.url, "--relay", DEAD, "--log-key", key, **env).exit_code == 0
    finally:
        log.stop()

    # Rolled back: the same key, a fresh database.
    rolled, same_key = _log(tmp_path, start_service, "rolled", db="fresh.sqlite")
    try:
        assert same_key == key
        line = _one_error_line(run("cloud", "nodes", "--log", rolled.url, "--relay", DEAD, **env))
        assert "tree head went backwards: size 0 < 3" in line and f"delete {state}" in line
        assert "--log-key" in line and "rolled back" in line
    finally:
        rolled.stop()

    # Replaced: a new key, without --log-key (the pinned key is used) and with it (it differs).
    replaced, new_key = _log(tmp_path, start_service, "replaced", key="new.key", db="new.sqlite")
    try:
        line = _one_error_line(run("cloud", "nodes", "--log", replaced.url, "--relay", DEAD, **env))
        assert "signature is wrong" in line and f"delete {state}" in line and "--log-key" in line
        line = _one_error_line(run("cloud", "nodes", "--log", replaced.url, "--relay", DEAD, "--log-key", new_key, **env))
        assert "differs from the one pinned" in line and f"delete {state}" in line
        # The advice works: remove the state file and pin the new key.
        state.unlink()
        result = run("cloud", "nodes", "--log", replaced.url, "--relay", DEAD, "--log-key", new_key, **env)
        assert result.exit_code == 0, result.output
    finally:
        replaced.stop()


@pytest.mark.parametrize("upstream", ["http://10.0.0.5:8000", "https://engine.example.com",
                                      "http://127.0.0.1.example:80"])
def test_an_upstream_on_another_host_is_refused_unless_allowed(upstream):
    """The node hands the upstream engine decrypted requests over plain HTTP: loopback only, unless
    the operator says otherwise (and the URL, in the measured config, tells every device)."""
    from tether.cloud.node import NodeSettings

    result = run("node", "serve", "--port", "0", "-m", "smollm2-135m", "--upstream", upstream,
                 "--model-sha256", "0" * 64)
    assert "is not a loopback address" in _one_error_line(result)
    assert "tokens/s" not in result.output
    allowed = NodeSettings(model="smollm2-135m", upstream=upstream, model_sha256="0" * 64, allow_remote_upstream=True)
    assert allowed.upstream == upstream
    for local in ("http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000"):
        assert NodeSettings(model="smollm2-135m", upstream=local, model_sha256="0" * 64).upstream == local
