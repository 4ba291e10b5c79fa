"""The policy file: defaults, formats, merge rules, and clear errors at start-up."""

from __future__ import annotations

import json

import pytest

from tether.errors import PolicyError
from tether.privacy import PrivacyConfig, PrivacyGuard, load_config, parse_config
from tether.privacy.entities import PERSONAL, SECRETS


def test_defaults():
    cfg = PrivacyConfig()
    for e in SECRETS:
        assert cfg.action(e, "device") == "allow"
        assert cfg.action(e, "private_cloud") == "keep_on_device"
        assert cfg.action(e, "third_party") == "keep_on_device"
    for e in PERSONAL:
        assert cfg.action(e, "private_cloud") == "pseudonymize"
        assert cfg.action(e, "third_party") == "pseudonymize"
    assert cfg.requires_consent("third_party") and not cfg.requires_consent("private_cloud")


def test_user_default_does_not_weaken_secrets():
    cfg = parse_config({"policy": {"default": {"private_cloud": "allow"}}})
    assert cfg.action("PERSON", "private_cloud") == "allow"
    assert cfg.action("API_KEY", "private_cloud") == "keep_on_device"
    assert cfg.action("PERSON", "third_party") == "pseudonymize"


def test_entity_entry_overrides(tmp_path):
    cfg = parse_config({"policy": {"US_SSN": {"private_cloud": "keep_on_device"}}})
    assert cfg.action("US_SSN", "private_cloud") == "keep_on_device"
    out = PrivacyGuard(cfg).prepare("My SSN is 219-09-9999.", "private_cloud",
                                    session=PrivacyGuard(cfg).session())
    assert out.must_stay_on_device and out.stay_reasons == ["US_SSN"] and out.payload is None


TOML = """
version = 1
[detection]
min_score = 0.5
recall_first = false
[[detection.recognizers]]
entity = "EMPLOYEE_ID"
patterns = [{ regex = 'EMP-\\d{6}', score = 0.9 }]
[pseudonymize]
style = "fake"
[tiers.private_cloud]
requires_consent = true
[policy.EMPLOYEE_ID]
third_party = "keep_on_device"
"""


@pytest.mark.parametrize("fmt", ["toml", "yaml", "json"])
def test_formats_load_the_same(tmp_path, fmt):
    import tomllib

    import yaml

    data = tomllib.loads(TOML)
    path = tmp_path / f"privacy.{fmt}"
    path.write_text({"toml": TOML, "yaml": yaml.safe_dump(data), "json": json.dumps(data)}[fmt])
    cfg = load_config(path)
    assert cfg.detection.min_score == 0.5
    assert cfg.detection.recall_first is False and PrivacyConfig().detection.recall_first is True
    assert cfg.pseudonymize.style == "fake"
    assert cfg.requires_consent("private_cloud") and cfg.requires_consent("third_party")
    assert not PrivacyConfig().requires_consent("private_cloud")
    assert cfg.action("EMPLOYEE_ID", "third_party") == "keep_on_device"
    assert cfg.action("EMPLOYEE_ID", "private_cloud") == "pseudonymize"


def test_env_var_and_missing_default(tmp_path, monkeypatch):
    path = tmp_path / "p.toml"
    path.write_text('[policy.PERSON]\nprivate_cloud = "allow"\n')
    monkeypatch.setenv("TETHER_PRIVACY_CONFIG", str(path))
    assert load_config().action("PERSON", "private_cloud") == "allow"
    monkeypatch.delenv("TETHER_PRIVACY_CONFIG")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "none"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert load_config() == PrivacyConfig()


@pytest.mark.parametrize(("content", "suffix", "needle"), [
    ('[policy.EMAIL_ADDRESS]\nthird_party = "send"\n', "toml", "policy.EMAIL_ADDRESS.third_party"),
    ('[policy.EMAIL]\nthird_party = "allow"\n', "toml", "EMAIL that no recognizer reports"),
    ('[policy.PERSON]\ncloud = "allow"\n', "toml", "policy.PERSON.cloud: Extra inputs are not permitted"),
    ("[policy\n", "toml", "cannot parse"),
    ("policy: [1, 2\n", "yaml", "cannot parse"),
    ("[1, 2]", "json", "expected a table/mapping"),
    ('version = 2\n', "toml", "version"),
    ('[[detection.recognizers]]\nentity = "X"\npatterns = [{ regex = "(" }]\n', "toml", "invalid regex"),
    ('[[detection.recognizers]]\nentity = "lower"\npatterns = [{ regex = "a" }]\n', "toml", "entity"),
    ('[[detection.deny_lists]]\nentity = "X"\nterms = [" "]\n', "toml", "must not be blank"),
    ('[[detection.recognizers]]\nentity = "EMP"\npatterns = [{ regex = "EMP-(\\\\d+)", group = -1 }]\n', "toml", "has no group -1"),
    ('[detection]\nmin_score = 2\n', "toml", "detection.min_score"),
    ('[detection]\nrecall_first = "maybe"\n', "toml", "detection.recall_first"),
    ('[tiers.moon]\nrequires_consent = true\n', "toml", "tiers.moon"),
    ('[tiers.third_party]\nrequires_consent = false\n', "toml", "third_party.requires_consent cannot be false"),
    ('[tiers.device]\nrequires_consent = true\n', "toml", "device.requires_consent cannot be true"),
    ("x = 1", "ini", "unknown format"),
])
def test_invalid_config_is_a_clear_error(tmp_path, content, suffix, needle):
    path = tmp_path / f"privacy.{suffix}"
    path.write_text(content)
    with pytest.raises(PolicyError) as info:
        PrivacyGuard.from_file(path)
    assert needle in str(info.value)
    assert str(info.value).count(str(path)) == 1  # ".ini" said "privacy config X: cannot parse (privacy config X: ...)"
    assert "cannot parse" not in str(info.value) or suffix != "ini"


def test_missing_file_and_bad_encoding(tmp_path):
    with pytest.raises(PolicyError, match="no such file"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"\xff\xfe")
    with pytest.raises(PolicyError, match="not valid UTF-8"):
        load_config(bad)


def test_a_config_with_a_byte_order_mark_loads(tmp_path):
    """Windows editors start UTF-8 files with a BOM; json refused it ("Unexpected UTF-8 BOM")."""
    for suffix, content in (("json", '{"version": 1}'), ("toml", "version = 1\n"), ("yaml", "version: 1\n")):
        path = tmp_path / f"privacy.{suffix}"
        path.write_bytes(b"\xef\xbb\xbf" + content.encode())
        assert load_config(path) == load_config(_plain(tmp_path, suffix, content))
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\xef\xbb\xbf{\xff}")
    with pytest.raises(PolicyError, match=r"not valid UTF-8 \(byte 4\)"):  # counted from the file's first byte
        load_config(bad)


def _plain(tmp_path, suffix, content):
    path = tmp_path / f"plain.{suffix}"
    path.write_text(content)
    return path
