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

