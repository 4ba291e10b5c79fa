"""``tether route`` and ``tether stats`` from the command line, against a real provider on loopback."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from tether.cli import cli
from tether.cli import route, stats  # noqa: F401  (register the commands)


def run(*args: str, **env: str):
    return CliRunner().invoke(cli, list(args), env=env)


def config(tmp_path, provider, **extra) -> str:
    path = tmp_path / "router.toml"
    lines = [f'{k} = {json.dumps(v)}' for k, v in extra.items()]
    lines += ["", "[third_party]", f'base_url = "{provider.url}"', 'model = "gpt-test"', "use_for_cloud = true"]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_no_config_keeps_everything_on_the_device(tmp_path):
    r = run("route", "What is the capital of France?", TETHER_ROUTER_CONFIG="", TETHER_LEDGER=str(tmp_path / "l.db"))
    assert r.exit_code == 0, r.output
    assert r.output.startswith("device (no_cloud)")


def test_consent_decides_whether_a_busy_device_may_use_the_third_party(tmp_path, provider):
    provider.reset()
    env = {"TETHER_ROUTER_CONFIG": config(tmp_path, provider), "TETHER_LEDGER": str(tmp_path / "l.db")}
    no = run("route", "Say hello to the team.", "--busy", "--json", **env)
    assert json.loads(no.output)["rule"] == "consent"
    yes = run("route", "Say hello to the team.", "--busy", "--consent", "--json", **env)
    assert (json.loads(yes.output)["tier"], json.loads(yes.output)["rule"]) == ("third_party", "busy")
    assert provider.captured() == []  # deciding sends nothing

    ran = run("route", "Please greet Maria Gonzalez for me.", "--busy", "--consent", "--run", "--max-tokens", "32", **env)
    assert ran.exit_code == 0, ran.output
    assert "── ran on third_party: third_party (busy)" in ran.output
    assert "Maria Gonzalez" in ran.output  # restored on the device
    assert "Maria" not in str(provider.captured())  # the provider saw a placeholder

    s = run("stats", "--ledger", str(tmp_path / "l.db"), "--json")
    data = json.loads(s.output)
    assert data["requests"] == 1 and data["by_tier"]["third_party"]["requests"] == 1


def test_stats_on_a_ledger_that_is_not_there_is_an_error(tmp_path):
    r = run("stats", "--ledger", str(tmp_path / "typo.sqlite"))
    assert r.exit_code == 1 and "no ledger at" in r.output


def test_bad_router_config_is_one_line(tmp_path):
    bad = tmp_path / "router.toml"
    bad.write_text('preference = "sometimes"\n')
    r = run("route", "hi", TETHER_ROUTER_CONFIG=str(bad))
    assert r.exit_code == 1
    assert r.output.count("Error:") == 1 and "preference" in r.output and str(bad) in r.output


@pytest.mark.parametrize(("name", "content", "needle"), [
    ("router.toml", 'device_model = "nope"\n', "device_model: Value error, unknown model 'nope'"),
    ("router.toml", "[prices.device]\njoules_per_token = 1e308\nusd_per_mtok = 0\n", "prices.device.joules_per_token"),
    ("router.json", '{"target_cloud_fraction": ' + "1" * 5000 + "}", "Exceeds the limit"),
    ("router.json", "[" * 100_000, "maximum recursion depth"),
    ("router.toml", '[third_party]\nbase_url = "http://127.0.0.1:9/v1"\nmodel = " "\n', "third_party.model"),
    ("router.toml", '[third_party]\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "m"\n'
                    'api_key_env = "sk-proj-AbCdEf1234567890"\n', "not the key itself"),
    ("router.toml", '[third_party]\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "m"\n'
                    'api_key_env = "TETHER_TEST_KEY_NOBODY_SET"\n', "which is not set"),
    ("router.toml", '[third_party]\nbase_url = "https://user:s3cret@api.example/v1"\nmodel = "m"\n',
     "user name or password"),
    ("router.toml", 'cascade = ["Chat"]\n', "lower-case names"),
    ("router.toml", "cascade_min_logprob = nan\n", "finite number <= 0"),
    ("router.TOML", 'preference = "sometimes"\n', "preference"),  # read as TOML whatever the case
    ("router.txt", 'preference = "auto"\n', "unknown format '.txt'; use .toml, .yaml or .json"),
])
def test_config_values_that_would_break_later_are_one_line_now(tmp_path, name, content, needle):
    bad = tmp_path / name
    bad.write_text(content)
    r = run("route", "hi", TETHER_ROUTER_CONFIG=str(bad))
    assert r.exit_code == 1 and r.output.count("Error:") == 1 and needle in r.output, r.output


def test_a_broken_privacy_config_fails_at_start_not_on_the_first_cloud_request(tmp_path):
    cfg = tmp_path / "router.toml"
    cfg.write_text('[third_party]\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "m"\n')
    privacy = tmp_path / "privacy.toml"
    privacy.write_text("this is = not [valid\n")
    r = run("route", "What colour is the sky?", TETHER_ROUTER_CONFIG=str(cfg), TETHER_PRIVACY_CONFIG=str(privacy))
    assert r.exit_code == 1 and r.output.count("Error:") == 1 and str(privacy) in r.output, r.output


def test_escalate_fraction_out_of_range_is_one_line(tmp_path):
    bad = tmp_path / "router.toml"
    bad.write_text('cascade = ["route"]\ncascade_escalate_fraction = 1.5\n')
    r = run("route", "hi", TETHER_ROUTER_CONFIG=str(bad))
    assert r.exit_code == 1
    assert r.output.count("Error:") == 1 and "cascade_escalate_fraction" in r.output


def test_a_device_model_that_would_not_fit_in_free_memory_sends_the_request_away(tmp_path, provider):
    """A fresh process, so the device model is not loaded yet: deciding must not load it."""
    import subprocess
    import sys

    provider.reset()
    env = {**os.environ, "TETHER_ROUTER_CONFIG": config(tmp_path, provider, device_model="smollm2-135m", cascade=[]),
           "TETHER_LEDGER": str(tmp_path / "l.db")}

    def route(*args: str) -> dict:
        done = subprocess.run([sys.executable, "-m", "tether", "route", "Say hello to the team.", "--consent", "--json",
                               *args], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    tight = route("--memory-mb", "64")
    assert (tight["tier"], tight["rule"]) == ("third_party", "memory")
    assert tight["values"]["needed_mb"] > 64 and tight["values"]["available_mb"] == 64 and tight["values"]["reported"]
    roomy = route("--memory-mb", "100000")
    assert roomy["rule"] == "difficulty"
    assert route()["rule"] == "difficulty"  # the OS's figure: this machine has room for a 135M model
    assert provider.captured() == []


def test_an_unquoted_prompt_is_read_as_one(tmp_path):
    env = {"TETHER_ROUTER_CONFIG": "", "TETHER_LEDGER": str(tmp_path / "l.db")}
    quoted = run("route", "What is the capital of France?", "--json", **env)
    bare = run("route", "What", "is", "the", "capital", "of", "France?", "--json", **env)
    assert bare.exit_code == 0, bare.output
    timing = {"decision_ms": json.loads(bare.output)["decision_ms"]}
    assert json.loads(bare.output) == json.loads(quoted.output) | timing
    missing = run("route", **env)
    assert missing.exit_code == 2 and "Missing argument 'PROMPT...'" in missing.output
