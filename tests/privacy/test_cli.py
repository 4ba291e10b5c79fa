"""``tether privacy scan`` as a user runs it: a real process, real analyzer."""

from __future__ import annotations

import json
import os
import subprocess
import sys

TEXT = "Hi, I'm Maria Gonzalez, mail maria.gonzalez@example.org.\n"


def tether(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TETHER_PRIVACY_CONFIG"}
    proc = subprocess.run([sys.executable, "-m", "tether", "privacy", "scan", *args], input=stdin,
                          capture_output=True, env=dict(env, COLUMNS="200"), timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode("utf-8", "replace"),
                                       proc.stderr.decode("utf-8", "replace"))


def one_line_error(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0], lines[0]


def test_scan_file_human(tmp_path):
    path = tmp_path / "msg.txt"
    path.write_text(TEXT + "password: hunter2\n")
    proc = tether(str(path))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "3 entities found" in out
    assert "private cloud: MUST STAY ON DEVICE (PASSWORD may not leave)" in out
    assert "third party: MUST STAY ON DEVICE" in out


def test_scan_stdin_json_is_what_would_leave():
    proc = tether("--json", "-", stdin=TEXT.encode())
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    tiers = {t["tier"]: t for t in report["tiers"]}
    assert tiers["device"]["payload"] == TEXT
    assert tiers["private_cloud"]["payload"] == "Hi, I'm <PERSON_1>, mail <EMAIL_ADDRESS_1>.\n"
    assert tiers["third_party"]["payload"] == tiers["private_cloud"]["payload"]
    assert tiers["third_party"]["consent_required"] is True
    assert {e["entity_type"] for e in report["entities"]} == {"PERSON", "EMAIL_ADDRESS"}


def test_config_changes_the_preview(tmp_path):
    cfg = tmp_path / "privacy.yaml"
    cfg.write_text("policy:\n  PERSON:\n    private_cloud: allow\n")
    proc = tether("--json", "--config", str(cfg), "-", stdin=TEXT.encode())
    tiers = {t["tier"]: t for t in json.loads(proc.stdout)["tiers"]}
    assert tiers["private_cloud"]["payload"] == "Hi, I'm Maria Gonzalez, mail <EMAIL_ADDRESS_1>.\n"


def test_bad_input(tmp_path):
    one_line_error(tether("-", stdin="café".encode("latin-1")), "not valid UTF-8")
    one_line_error(tether("-", stdin=b""), "empty")
    one_line_error(tether(str(tmp_path / "nope.txt")), "no such file")
    one_line_error(tether("-", stdin=b"word " * 40_001), "a scan previews at most 200,000")  # not a minute of work
    bad = tmp_path / "p.toml"
    bad.write_text('[policy.PERSON]\nthird_party = "maybe"\n')
    one_line_error(tether("--config", str(bad), "-", stdin=b"hi"), "policy.PERSON.third_party")
