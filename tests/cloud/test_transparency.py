"""Transparency log: Merkle proofs, signed tree heads, the HTTP server and the CLI.

Every test uses a real SQLite file; the HTTP tests run ``tether log serve`` as
a subprocess and talk to it over the loopback.
"""

from __future__ import annotations

import copy
import json
import os
import re
import stat
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tether.cloud.serving import spawn, stop
from tether.cloud.attestation import (
    Measurement,
    NodeIdentity,
    b64,
    canonical_json,
    make_attestation,
    node_config,
    unb64,
)
from tether.cloud.client import CloudClient
from tether.cloud.transparency import (
    EMPTY_ROOT,
    LogClient,
    check_freshness,
    TransparencyLog,
    verify_consistency,
    verify_inclusion,
    verify_tree_head,
)
from tether.errors import AttestationError, InputError, TransparencyLogError

TOKEN = "s3cret-admin"


def components(tag: str = "a") -> dict:
    return Measurement(code=tag * 64, model_sha256="b" * 64,
                       config=node_config("qwen2.5-1.5b", n_ctx=4096, max_tokens=1024)).components()


def attestation(identity: NodeIdentity | None = None, url: str = "http://node.example:8471",
                age: float = 0.0, model: str = "qwen2.5-1.5b") -> dict:
    """A genuinely signed attestation, issued ``age`` seconds ago."""
    identity = identity or NodeIdentity()
    measurement = Measurement.from_components(components())
    att = make_attestation(identity, os.urandom(32), measurement, url=url,
                           model=model, hardware={}, tokens_per_second=1.0)
    if age:
        body = {k: v for k, v in att.items() if k != "signature"}
        body["issued_at"] = round(body["issued_at"] - age, 3)
        att = {**body, "signature": b64(identity.sign(canonical_json(body)))}
    return att


@pytest.fixture
def log(tmp_path):
    log = TransparencyLog(tmp_path / "log.sqlite", tmp_path / "log.key")
    yield log
    log.close()


# ----------------------------------------------------------------- data structure

def test_append_and_proofs_round_trip_for_sizes_1_to_20(log):
    entries = {}
    heads = {0: log.tree_head()}
    assert heads[0]["size"] == 0 and heads[0]["root"] == EMPTY_ROOT
    for n in range(1, 21):
        entry = {"type": "test", "n": n, "text": f"entry {n} ✓", "nested": {"x": [n, n / 3]}}
        assert log.append(entry) == n
        entries[n] = entry
        sth = verify_tree_head(log.tree_head(), log.public_key_b64)
        assert sth["size"] == n == log.size
        heads[n] = sth
        for i in range(1, n + 1):
            assert log.entry(i) == entries[i]
            verify_inclusion(entries[i], i, log.inclusion_proof(i, n), sth)
        for prior in range(1, n + 1):
            verify_consistency(heads[prior], sth, log.consistency_proof(prior, n))
        verify_consistency(heads[0], sth, None)
    # Proofs against older sizes still work once the tree has grown.
    for size in (1, 7, 13):
        for i in range(1, size + 1):
            verify_inclusion(entries[i], i, log.inclusion_proof(i, size), heads[size])
    assert [i for i, _ in log.entries(5, 9)] == [5, 6, 7, 8, 9]
    assert log.entries(19, 100) == [(19, entries[19]), (20, entries[20])]
    assert log.entries(21, 30) == []


def test_tree_head_signature_and_forgeries(log, tmp_path):
    log.append({"type": "test", "n": 1})
    log.append({"type": "test", "n": 2})
    sth = log.tree_head()
    key = log.public_key_b64
    assert verify_tree_head(sth, key) == sth

    for field, value in [("size", 3), ("root", "0" * 64), ("timestamp", sth["timestamp"] + 1)]:
        with pytest.raises(TransparencyLogError, match="signature is wrong"):
            verify_tree_head({**sth, field: value}, key)

    other = TransparencyLog(tmp_path / "other.sqlite", tmp_path / "other.key")
    other.append({"type": "test", "n": 1})
    other.append({"type": "test", "n": 2})
    assert other.public_key_b64 != key
    with pytest.raises(TransparencyLogError, match="signature is wrong"):
        verify_tree_head(other.tree_head(), key)  # a different log's key
    forged = {**sth, "signature": other.tree_head()["signature"]}
    with pytest.raises(TransparencyLogError, match="signature is wrong"):
        verify_tree_head(forged, key)
    other.close()

    for bad in [None, [], {**sth, "size": -1}, {**sth, "size": "2"}, {**sth, "root": "zz"},
                {k: v for k, v in sth.items() if k != "timestamp"}, {**sth, "signature": "!!"},
                {**sth, "size": True}]:
        with pytest.raises(TransparencyLogError, match="malformed|signature"):
            verify_tree_head(bad, key)
    with pytest.raises(TransparencyLogError, match="malformed log public key"):
        verify_tree_head(sth, b64(b"short"))


def test_tampered_inclusion_proof_is_rejected(log):
    for n in range(1, 10):
        log.append({"type": "test", "n": n})
    sth = log.tree_head()
    entry, proof = log.entry(5), log.inclusion_proof(5, 9)
    verify_inclusion(entry, 5, proof, sth)

    flipped = copy.deepcopy(proof)
    digest = bytearray(bytes.fromhex(flipped["path"][1]))
    digest[0] ^= 1
    flipped["path"][1] = digest.hex()
    cases = [
        ("fails", entry, 5, flipped, sth),
        ("fails", {"type": "test", "n": 6}, 5, proof, sth),  # a different entry
        ("fails", entry, 6, proof, sth),  # the proof is for another index
        ("fails", entry, 5, proof, {**sth, "root": "ab" * 32}),
        ("fails", entry, 5, log.inclusion_proof(5, 8), sth),  # proof for another size
        ("fails|malformed", entry, 5, {**proof, "path": proof["path"][:-1]}, sth),
        ("fails|malformed", entry, 5, {"type": "inclusion"}, sth),
        ("fails|malformed", entry, 5, log.consistency_proof(3, 9), sth),
        ("fails|malformed", entry, 5, "not a proof", sth),
        ("outside", entry, 10, proof, sth),
    ]
    for reason, e, i, p, s in cases:
        with pytest.raises(TransparencyLogError, match=reason):
            verify_inclusion(e, i, p, s)


def test_consistency_rejects_backwards_rewritten_and_tampered(log, tmp_path):
    for n in range(1, 6):
        log.append({"type": "test", "n": n})
    old = log.tree_head()
    for n in range(6, 12):
        log.append({"type": "test", "n": n})
    new = log.tree_head()
    proof = log.consistency_proof(5, 11)
    verify_consistency(old, new, proof)
    verify_consistency(new, new, None)

    with pytest.raises(TransparencyLogError, match="went backwards: size 5 < 11"):
        verify_consistency(new, old, proof)
    with pytest.raises(TransparencyLogError, match="same size 11 but a different root"):
        verify_consistency(new, {**new, "root": "cd" * 32}, None)
    with pytest.raises(TransparencyLogError, match="no consistency proof"):
        verify_consistency(old, new, None)
    bad = copy.deepcopy(proof)
    bad["path"][0] = "00" * 32
    with pytest.raises(TransparencyLogError, match="fails"):
        verify_consistency(old, new, bad)

    # A second log with different history but the same first 5 sizes diverges.
    fork = TransparencyLog(tmp_path / "fork.sqlite", log.key_path)
    for n in range(1, 6):
        fork.append({"type": "test", "n": n})
    for n in range(6, 12):
        fork.append({"type": "test", "n": -n})
    forked = fork.tree_head()
    verify_tree_head(forked, log.public_key_b64)  # same key: the signature alone cannot tell
    verify_consistency(old, forked, fork.consistency_proof(5, 11))  # still extends size 5
    with pytest.raises(TransparencyLogError, match="different root"):
        verify_consistency(new, forked, None)
    fork.close()


def test_persistence_across_restart(tmp_path):
    db, key = tmp_path / "d" / "log.sqlite", tmp_path / "d" / "log.key"
    first = TransparencyLog(db, key)
    index = first.release(components())
    first.announce(attestation())
    sth, public = first.tree_head(), first.public_key_b64
    first.close()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(key.read_bytes()) == 32

    again = TransparencyLog(db, key)
    assert again.public_key_b64 == public
    assert again.size == 2 and again.tree_head()["root"] == sth["root"]
    assert again.release(components()) == index  # idempotency survives the restart
    assert len(again.nodes()) == 1
    again.close()

    other_key = tmp_path / "typo.key"  # a typo in --key must not give the log a new identity
    with pytest.raises(TransparencyLogError, match="is signed by key .* Use the log's own key file"):
        TransparencyLog(db, other_key)
    assert not other_key.exists()
    reopened = TransparencyLog(db, key)  # and the log is untouched
    assert reopened.size == 2 and reopened.tree_head()["root"] == sth["root"]
    reopened.close()

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    pem_key = Ed25519PrivateKey.generate()
    pem_path = tmp_path / "pem.key"
    pem_path.write_bytes(pem_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    pem_log = TransparencyLog(tmp_path / "pem.sqlite", pem_path)
    assert unb64(pem_log.public_key_b64) == pem_key.public_key().public_bytes_raw()
    pem_log.close()

    (tmp_path / "bad.key").write_bytes(b"not a key")
    with pytest.raises(TransparencyLogError, match="cannot read log key"):
        TransparencyLog(tmp_path / "bad.sqlite", tmp_path / "bad.key")


def test_release_and_announce_idempotent_and_directories(log):
    first = log.release(components("a"))
    assert log.release(components("a")) == first
    second = log.release(components("c"))
    assert second == first + 1 and log.size == 2
    digest = Measurement.from_components(components("a")).digest
    assert log.releases() == {digest: first, Measurement.from_components(components("c")).digest: second}
    entry = log.entry(first)
    assert entry["type"] == "release" and entry["measurement"] == digest and entry["components"] == components("a")

    identity = NodeIdentity()
    att = attestation(identity)
    i = log.announce(att)
    assert log.announce(copy.deepcopy(att)) == i
    time.sleep(0.01)
    newer = attestation(identity, url="http://node.example:9999")
    j = log.announce(newer)
    k = log.announce(attestation())
    assert (i, j, k) == (3, 4, 5)
    nodes = log.nodes()
    assert [n["index"] for n in nodes] == [4, 5]
    assert nodes[0]["attestation"] == newer

    for bad in [{"code": "x"}, {"code": 1, "model_sha256": "b", "config": {}}, [], "x",
                {"code": "a" * 64, "model_sha256": "b" * 64, "config": {"x": float("nan")}},
                {"code": "not-a-digest", "model_sha256": "b" * 64, "config": {}},
                {"code": "a" * 64, "model_sha256": "B" * 64, "config": {}}]:
        with pytest.raises(InputError):
            log.release(bad)
    with pytest.raises(InputError):
        log.append({"x": float("inf")})
    with pytest.raises(InputError):
        log.append({1: "int key does not round trip"})
    with pytest.raises(InputError):
        log.entry(99)
    with pytest.raises(InputError):
        log.inclusion_proof(1, 99)
    with pytest.raises(InputError):
        log.consistency_proof(0, 1)


def test_directory_lists_only_live_nodes(tmp_path):
    """A node that stops re-attesting leaves the directory (not the tree) once devices would refuse it."""
    now = [time.time()]
    log = TransparencyLog(tmp_path / "l.sqlite", tmp_path / "l.key", max_node_age=100, clock=lambda: now[0])
    try:
        log.release(components())
        a, b = NodeIdentity(), NodeIdentity()
        att_a, att_b = attestation(a, age=10), attestation(b, age=50)
        log.announce(att_a)
        log.announce(att_b)
        assert [n["attestation"] for n in log.nodes()] == [att_a, att_b]
        now[0] += 60  # b is now 110 s old, a 70 s
        assert [n["attestation"] for n in log.nodes()] == [att_a]
        with pytest.raises(AttestationError, match="stale"):
            log.announce(attestation(NodeIdentity(), age=170))  # 230 s old by the log's clock
        renewed = attestation(b)
        log.announce(renewed)
        assert [n["attestation"] for n in log.nodes()] == [att_a, renewed]
        assert log.size == 4 and log.entry(3)["attestation"] == att_b  # history stays auditable
        assert log.tree_head()["timestamp"] == round(now[0], 3)
    finally:
        log.close()


def test_announce_rejects_tampered_attestation(log):
    att = attestation()
    for field, value in [("url", "http://evil.example"), ("tokens_per_second", 999.0),
                         ("measurement", "0" * 64), ("node_id", "0" * 16)]:
        with pytest.raises(AttestationError):
            log.announce({**att, field: value})
    with pytest.raises(AttestationError):
        log.announce({**att, "hardware": {"bad": "\ud800"}})  # cannot be encoded
    with pytest.raises(AttestationError):
        log.announce("not an object")
    assert log.size == 0


def _signed_without(field: str, identity: NodeIdentity, **changes) -> dict:
    """A correctly signed attestation that lacks ``field`` (or has ``changes``): incomplete, not forged."""
    body = {k: v for k, v in attestation(identity).items() if k not in ("signature", field)} | changes
    return {**body, "signature": b64(identity.sign(canonical_json(body)))}


def test_a_second_writer_a_rolled_back_log_and_an_unreadable_entry_are_refused(tmp_path):
    import sqlite3

    db, key = tmp_path / "log.sqlite", tmp_path / "log.key"
    first = TransparencyLog(db, key)
    for tag in "abc":
        first.release(components(tag))
    with pytest.raises(TransparencyLogError, match="already open in another process"):
        TransparencyLog(db, key)  # two writers would index the same tree apart
    first.close()

    con = sqlite3.connect(db)  # an operator quietly drops the newest entry
    con.execute("DROP TRIGGER IF EXISTS leaf_no_delete")
    for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type='trigger'").fetchall():
        con.execute(f"DROP TRIGGER {name}")
    con.execute("DELETE FROM leaf WHERE id = 3")
    con.commit()
    con.close()
    with pytest.raises(TransparencyLogError, match="rolled back: it once held 3 entries and now holds 2"):
        TransparencyLog(db, key)

    db2 = tmp_path / "two.sqlite"
    second = TransparencyLog(db2, key)
    second.release(components())
    second.close()
    con = sqlite3.connect(db2)
    for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type='trigger'").fetchall():
        con.execute(f"DROP TRIGGER {name}")
    con.execute("UPDATE leaf SET entry = ? WHERE id = 1", (b"{not json",))
    con.commit()
    con.close()
    with pytest.raises(TransparencyLogError, match="an entry is unreadable"):
        TransparencyLog(db2, key)
    TransparencyLog(tmp_path / "three.sqlite", key).close()  # the failed opens released their locks


@pytest.mark.parametrize(("field", "changes", "needle"), [
    ("url", {}, "url is NoneType"),
    ("model", {}, "model is NoneType"),
    ("", {"tokens_per_second": "fast"}, "tokens_per_second is str"),
    ("", {"url": "ftp://node.example"}, "url is not http(s)"),
    # A path, query or user info would aim a relay's POST {url}/v1/envelope at another service.
    ("", {"url": "http://127.0.0.1:18999/internal/admin?q="}, "no path, query, fragment or user info"),
    ("", {"url": "http://user:pw@node.example:8471"}, "no path, query, fragment or user info"),
    ("", {"url": "http://[::1"}, "url is not a valid URL"),
    ("", {"signature_extra": 1, "hpke_key": None}, "hpke_key is NoneType"),
])
def test_announce_refuses_a_signed_but_incomplete_attestation(log, field, changes, needle):
    """Devices and the relay read these fields; one missing must not break them for everyone."""
    with pytest.raises(AttestationError, match=re.escape(needle)):
        log.announce(_signed_without(field, NodeIdentity(), **changes))
    with pytest.raises(AttestationError, match="malformed"):
        log.announce({**attestation(), "signature": 1})
    assert log.size == 0


def test_announce_refuses_stale_and_replayed_older_attestations(log, tmp_path):
    identity = NodeIdentity()
    with pytest.raises(AttestationError, match="stale"):
        log.announce(attestation(identity, age=3 * 3600))
    with pytest.raises(AttestationError, match="future"):
        log.announce(attestation(identity, age=-3600))
    older, newer = attestation(identity, age=60), attestation(identity, age=30)
    log.release(components())
    log.announce(newer)
    with pytest.raises(AttestationError, match="older than this node's latest"):
        log.announce(older)  # a replay must not displace the current attestation
    assert [n["attestation"] for n in log.nodes()] == [newer]
    assert log.size == 2

    # Reloading the database keeps the newest attestation per node, whatever the order in the log.
    db, key = tmp_path / "order.sqlite", tmp_path / "order.key"
    first = TransparencyLog(db, key)
    first.release(components())
    first.append({"type": "node", "attestation": newer})
    first.append({"type": "node", "attestation": older})  # written directly: announce would refuse it
    first.close()
    reopened = TransparencyLog(db, key)
    try:
        assert [n["attestation"] for n in reopened.nodes()] == [newer]
    finally:
        reopened.close()


def test_tree_head_freshness(log):
    sth = log.tree_head()
    ts = sth["timestamp"]
    check_freshness(sth, None, now=ts + 599, max_age=600)
    check_freshness(sth, None, now=ts - 299, max_age=600)  # small clock skew is tolerated
    with pytest.raises(TransparencyLogError, match="frozen view"):
        check_freshness(sth, None, now=ts + 601, max_age=600)
    with pytest.raises(TransparencyLogError, match="in the future"):
        check_freshness(sth, None, now=ts - 301, max_age=600)
    later = {**sth, "timestamp": ts + 10}
    with pytest.raises(TransparencyLogError, match="went backwards"):
        check_freshness(sth, later, now=ts, max_age=600)


# ----------------------------------------------------------------- server

class Server:
    def __init__(self, tmp: Path, name: str, *, db: Path | None = None, key: Path | None = None,
                 token: str | None = TOKEN, host: str = "127.0.0.1"):
        self.db = db or tmp / f"{name}.sqlite"
        self.key = key or tmp / f"{name}.key"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("TETHER_LOG_ADMIN_TOKEN", None)
        args = [sys.executable, "-m", "tether", "log", "serve", "--host", host, "--port", "0", "--db", str(self.db),
                "--key", str(self.key)]
        if token:
            args += ["--admin-token", token]
        self.log = tmp / f"{name}.log"
        self.proc, self.url = spawn(args, self.log, env=env, timeout=60)
        self.lines = self.log.read_text().splitlines()
        self.public_key = next(l.split(": ", 1)[1] for l in self.lines if l.startswith("log key: "))

    def stop(self) -> None:
        stop(self.proc)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("log"), "main")
    yield s
    s.stop()


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "tether", *args], capture_output=True, text=True,
                          env=full_env, timeout=60)


def test_server_prints_key_and_listens(server):
    assert server.url.startswith("http://127.0.0.1:")
    assert httpx.get(server.url + "/v1/log/key").json() == {"public_key": server.public_key}
    assert stat.S_IMODE(server.key.stat().st_mode) == 0o600


def test_an_ipv6_service_announces_a_url_clients_can_use(tmp_path):
    ipv6 = Server(tmp_path, "ipv6", host="::1")
    try:
        assert re.fullmatch(r"http://\[::1\]:\d+", ipv6.url)
        assert httpx.get(ipv6.url + "/v1/log/key").json() == {"public_key": ipv6.public_key}
    finally:
        ipv6.stop()


def test_client_verifies_entries_over_http(server, tmp_path):
    http = httpx.Client()
    post = http.post(server.url + "/v1/log/releases", json=components("e"),
                     headers={"Authorization": f"Bearer {TOKEN}"})
    assert post.status_code == 200, post.text
    index = post.json()["index"]
    again = http.post(server.url + "/v1/log/releases", json=components("e"),
                      headers={"Authorization": f"Bearer {TOKEN}"})
    assert again.json() == post.json()
    att = attestation()
    assert http.post(server.url + "/v1/log/releases", json=components(),
                     headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    node_index = http.post(server.url + "/v1/log/nodes", json=att).json()["index"]

    state = tmp_path / "state.json"
    client = LogClient(server.url, state_path=state, http=http)
    sth = client.tree_head()
    assert client.public_key_b64 == server.public_key
    assert client.releases()[post.json()["measurement"]] == index
    assert any(n["index"] == node_index and n["attestation"] == att for n in client.nodes())
    release = client.verified_entry(index, sth)
    assert release["measurement"] == post.json()["measurement"]
    assert client.verified_entry(node_index, sth)["attestation"] == att

    # The log grows; the next tree head must extend the remembered one.
    http.post(server.url + "/v1/log/releases", json=components("f"), headers={"Authorization": f"Bearer {TOKEN}"})
    later = LogClient(server.url, state_path=state).tree_head()
    assert later["size"] == sth["size"] + 1
    saved = json.loads(state.read_text())
    assert saved["public_key"] == server.public_key and saved["sth"] == later

    with pytest.raises(TransparencyLogError, match="differs from the one pinned"):
        LogClient(server.url, b64(os.urandom(32)), state_path=state)
    with pytest.raises(TransparencyLogError, match="signature is wrong"):
        LogClient(server.url, b64(NodeIdentity().public_bytes)).tree_head()
    with pytest.raises(TransparencyLogError, match="outside"):
        client.verified_entry(sth["size"] + 1, sth)


def test_log_that_went_backwards_is_refused(tmp_path):
    main = Server(tmp_path, "big", token=None)
    try:
        for tag in "abcde":
            assert httpx.post(main.url + "/v1/log/releases", json=components(tag)).status_code == 200
        state = tmp_path / "device.json"
        assert LogClient(main.url, state_path=state).tree_head()["size"] == 5
    finally:
        main.stop()

    # Same key, fresh database with fewer entries: a rolled-back or split-view log.
    small = Server(tmp_path, "small", key=main.key, token=None)
    try:
        assert small.public_key == main.public_key
        httpx.post(small.url + "/v1/log/releases", json=components("a"))
        client = LogClient(small.url, state_path=state)
        with pytest.raises(TransparencyLogError, match="tree head went backwards: size 1 < 5"):
            client.tree_head()
        assert json.loads(state.read_text())["sth"]["size"] == 5  # the bad head was not remembered
    finally:
        small.stop()

    # Restart on the original database: same key, same root, and the device accepts it.
    restarted = Server(tmp_path, "big2", db=main.db, key=main.key, token=None)
    try:
        assert restarted.public_key == main.public_key
        sth = LogClient(restarted.url, state_path=state).tree_head()
        assert sth["size"] == 5
        assert sth["root"] == json.loads(state.read_text())["sth"]["root"]
    finally:
        restarted.stop()


def test_admin_token_and_attestation_checks(server):
    url = server.url + "/v1/log/releases"
    for headers in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": "Basic x"}]:
        r = httpx.post(url, json=components("g"), headers=headers)
        assert r.status_code == 401 and "admin token" in r.json()["error"]
    assert components("g") not in [e["entry"].get("components") for e in
                                   httpx.get(server.url + "/v1/log/entries").json()["entries"]]

    att = attestation()
    tampered = {**att, "url": "http://evil.example"}
    size = httpx.get(server.url + "/v1/log/sth").json()["size"]
    r = httpx.post(server.url + "/v1/log/nodes", json=tampered)
    assert r.status_code == 400 and "signature is wrong" in r.json()["error"]
    assert httpx.get(server.url + "/v1/log/sth").json()["size"] == size


def test_bad_input_gets_4xx_json_and_server_survives(server):
    base = server.url
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    cases = [
        ("POST", "/v1/log/releases", {"content": b"{not json"}, 400),
        ("POST", "/v1/log/releases", {"content": b"[1, 2]"}, 400),
        ("POST", "/v1/log/releases", {"content": b'{"code": 1, "model_sha256": [], "config": 3}'}, 400),
        ("POST", "/v1/log/releases", {"content": b'{"code": "a", "model_sha256": "b", "config": {"x": NaN}}'}, 400),
        ("POST", "/v1/log/releases", {"content": b"\xff\xfe"}, 400),
        ("POST", "/v1/log/releases", {"content": b"[" * 100000 + b"]" * 100000}, 400),
        ("POST", "/v1/log/releases", {"content": b" " * (300 * 1024)}, 413),
        ("POST", "/v1/log/nodes", {"content": b'"just a string"'}, 400),
        ("POST", "/v1/log/nodes", {"content": b'{"version": 1, "hardware": {"x": "\\ud800"}}'}, 400),
        ("POST", "/v1/log/nodes", {"content": b""}, 400),
        ("GET", "/v1/log/entries?start=0", {}, 400),
        ("GET", "/v1/log/entries?start=abc", {}, 400),
        ("GET", "/v1/log/entries?start=5&end=1", {}, 400),
        ("GET", "/v1/log/entries?start=99999999999999999999999", {}, 400),
        ("GET", "/v1/log/proof/inclusion?index=0&size=1", {}, 400),
        ("GET", "/v1/log/proof/inclusion?index=1&size=100000", {}, 400),
        ("GET", "/v1/log/proof/inclusion?size=1", {}, 400),
        ("GET", "/v1/log/proof/inclusion?index=x&size=1", {}, 400),
        ("GET", "/v1/log/proof/consistency?prior=0&size=1", {}, 400),
        ("GET", "/v1/log/proof/consistency?prior=2&size=1", {}, 400),
        ("GET", "/v1/log/proof/consistency?prior=-5&size=-1", {}, 400),
        ("GET", "/v1/log/nowhere", {}, 404),
        ("DELETE", "/v1/log/sth", {}, 405),
    ]
    for method, path, kwargs, status in cases:
        r = httpx.request(method, base + path, headers=auth, timeout=10, **kwargs)
        assert r.status_code == status, (path, kwargs.get("content", b"")[:40], r.status_code, r.text[:200])
        assert isinstance(r.json().get("error"), str) and r.json()["error"], (path, r.text[:200])
    sth = httpx.get(base + "/v1/log/sth").json()
    verify_tree_head(sth, server.public_key)
    many = httpx.get(base + "/v1/log/entries?start=1&end=5000").json()["entries"]
    assert len(many) == sth["size"] and [e["index"] for e in many] == list(range(1, sth["size"] + 1))


def test_device_refuses_a_stale_tree_head_over_http(server, tmp_path):
    """The device's clock an hour ahead of the log: to it, every head the log signs is an hour old."""
    state = tmp_path / "state.json"
    LogClient(server.url, state_path=state).tree_head()
    remembered = json.loads(state.read_text())["sth"]
    ahead = LogClient(server.url, state_path=state, clock=lambda: time.time() + 3600)
    with pytest.raises(TransparencyLogError, match=r"tree head is 3\d\d\d s old"):
        ahead.tree_head()
    assert json.loads(state.read_text())["sth"] == remembered  # the stale head was not remembered
    behind = LogClient(server.url, state_path=state, clock=lambda: time.time() - 3600)
    with pytest.raises(TransparencyLogError, match="in the future"):
        behind.tree_head()


def test_device_refuses_nodes_whose_attestation_is_stale(server, tmp_path):
    released = httpx.post(server.url + "/v1/log/releases", json=components(),
                          headers={"Authorization": f"Bearer {TOKEN}"})
    assert released.status_code == 200, released.text
    fresh, old = NodeIdentity(), NodeIdentity()
    for identity, age in [(fresh, 0), (old, 600)]:
        r = httpx.post(server.url + "/v1/log/nodes", json=attestation(identity, age=age))
        assert r.status_code == 200, r.text
    client = CloudClient(server.url, "http://127.0.0.1:9", log_key=server.public_key, max_attestation_age=300,
                         state_path=tmp_path / "device.json")
    try:
        verdicts = {v.node_id: v for v in client.refresh()}
    finally:
        client.close()
    assert verdicts[fresh.node_id].trusted
    assert not verdicts[old.node_id].trusted
    assert "stale: issued 6" in verdicts[old.node_id].reason and "re-attested" in verdicts[old.node_id].reason


def test_a_mirror_cannot_add_narrow_or_alter_the_directory(server, tmp_path):
    """The device reads the log through an untrusted mirror (the relay). The mirror's lists are not
    what the device goes by: a forged node added to ``/v1/log/nodes`` (or an unreleased measurement
    to ``/v1/log/releases``) is never considered, and nodes left out of the list are still found,
    because the directory is rebuilt from every entry. Entries left out, changed or out of order
    no longer hash to the root the log signed, and the device refuses the whole read."""
    released = httpx.post(server.url + "/v1/log/releases", json=components(),
                          headers={"Authorization": f"Bearer {TOKEN}"})
    assert released.status_code == 200, released.text
    model = f"mirror-{os.urandom(4).hex()}"
    honest = [attestation(model=model) for _ in range(3)]
    for att in honest:
        assert httpx.post(server.url + "/v1/log/nodes", json=att).status_code == 200
    forged = attestation(url="http://evil.example", model=model)
    unreleased = make_attestation(NodeIdentity(), os.urandom(32), Measurement.from_components(components("z")),
                                  url="http://evil.example", model=model, hardware={}, tokens_per_second=1.0)
    real = httpx.Client()
    mode = {"entries": None}
    honest_ids = [a["node_id"] for a in honest]

    def mirror(request: httpx.Request) -> httpx.Response:
        r = real.request(request.method, server.url + request.url.path, params=request.url.params)
        body = r.json()
        if request.url.path == "/v1/log/nodes":  # only the first honest node, plus two it made up
            kept = [n for n in body["nodes"] if n["attestation"]["node_id"] == honest_ids[0]]
            body["nodes"] = kept + [{"index": kept[0]["index"], "attestation": a} for a in (forged, unreleased)]
        if request.url.path == "/v1/log/releases":
            body["releases"][unreleased["measurement"]] = released.json()["index"]
        if request.url.path == "/v1/log/entries" and mode["entries"]:
            entries = body["entries"]
            at = next((i for i, e in enumerate(entries)
                       if e["entry"].get("attestation", {}).get("node_id") == honest_ids[1]), None)
            if at is None:  # a page without that entry
                return httpx.Response(r.status_code, json=body)
            mode["applied"] = mode["entries"]
            if mode["entries"] == "drop":  # the second node's entry left out, the rest renumbered
                body["entries"] = entries[:at] + [{**e, "index": e["index"] - 1} for e in entries[at + 1:]]
            elif mode["entries"] == "gap":
                body["entries"] = entries[:at] + entries[at + 1:]
            elif mode["entries"] == "alter":  # the second node now reached at the mirror's address
                entries[at]["entry"]["attestation"]["url"] = "http://evil.example"
        return httpx.Response(r.status_code, json=body)

    def device() -> CloudClient:
        client = CloudClient(None, "http://relay.invalid", log_key=server.public_key, model=model,
                             state_path=tmp_path / f"d-{time.monotonic_ns()}.json")
        client.log._http = httpx.Client(transport=httpx.MockTransport(mirror))
        return client

    client = device()
    try:
        verdicts = {v.node_id: v for v in client.refresh()}
    finally:
        client.close()
    assert {nid for nid, v in verdicts.items() if v.trusted} == set(honest_ids)  # none narrowed away
    assert forged["node_id"] not in verdicts and unreleased["node_id"] not in verdicts  # never even considered
    for tampering, error in [("drop", "do not hash to the tree head"), ("alter", "do not hash to the tree head"),
                             ("gap", "where entry")]:
        mode["entries"] = tampering
        client = device()
        try:
            with pytest.raises(TransparencyLogError, match=error):
                client.refresh()
            assert mode.get("applied") == tampering and not client._nodes  # nothing from a read that failed
        finally:
            client.close()


def test_a_relay_cannot_narrow_a_request_to_one_node_of_its_choice(server, tmp_path):
    """The relay reports every node but one as down and busy: requests are still sealed to k nodes."""
    released = httpx.post(server.url + "/v1/log/releases", json=components(),
                          headers={"Authorization": f"Bearer {TOKEN}"})
    assert released.status_code == 200, released.text
    ids = []
    for _ in range(4):
        att = attestation()
        assert httpx.post(server.url + "/v1/log/nodes", json=att).status_code == 200
        ids.append(att["node_id"])
    favourite = ids[0]
    listed = [n["attestation"]["node_id"] for n in httpx.get(server.url + "/v1/log/nodes").json()["nodes"]]
    status = {nid: {"inflight": 0 if nid == favourite else 10**9, "healthy": nid == favourite} for nid in listed}
    relay = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, json={"nodes": status})))
    client = CloudClient(server.url, "http://relay.invalid", log_key=server.public_key, k=2,
                         state_path=tmp_path / "d.json")
    client.http = relay
    try:
        picks = [client._choose(set()) for _ in range(200)]
    finally:
        client.close()
    assert all(len(p) == 2 for p in picks)
    others = Counter(n.node_id for p in picks for n in p if n.node_id != favourite)
    assert set(others) >= set(ids[1:])  # the second node is drawn from all the others


def test_unreachable_log_is_one_clear_error(tmp_path):
    dead = "http://127.0.0.1:9"
    with pytest.raises(TransparencyLogError, match=r"transparency log http://127\.0\.0\.1:9 unreachable"):
        LogClient(dead, timeout=1).tree_head()
    result = run_cli("log", "status", "--log", dead)
    assert result.returncode == 1
    assert "http://127.0.0.1:9" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_cli_release_and_status_against_live_server(server):
    result = run_cli("log", "release", "--log", server.url, "--model", "qwen2.5-1.5b", "--n-ctx", "2048",
                     env={"TETHER_LOG_ADMIN_TOKEN": TOKEN})
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(": ", 1) for line in result.stdout.strip().splitlines())
    index, measurement = int(lines["index"]), lines["measurement"]
    releases = httpx.get(server.url + "/v1/log/releases").json()["releases"]
    assert releases[measurement] == index
    entry = httpx.get(server.url + f"/v1/log/entries?start={index}&end={index}").json()["entries"][0]["entry"]
    from tether.cloud.attestation import code_digest
    from tether.models.catalog import resolve

    assert entry["components"] == {"code": code_digest(), "model_sha256": resolve("qwen2.5-1.5b").sha256,
                                   "config": node_config("qwen2.5-1.5b", n_ctx=2048, max_tokens=1024)}

    denied = run_cli("log", "release", "--log", server.url, "--model", "qwen2.5-1.5b",
                     env={"TETHER_LOG_ADMIN_TOKEN": ""})
    assert denied.returncode == 1 and "401" in denied.stderr

    status = run_cli("log", "status", "--log", server.url)
    assert status.returncode == 0, status.stderr
    sth = httpx.get(server.url + "/v1/log/sth").json()
    text = status.stdout
    assert f"size: {sth['size']}" in text and f"root: {sth['root']}" in text
    assert f"releases: {len(releases)}" in text and "nodes: " in text

    as_json = json.loads(run_cli("log", "status", "--log", server.url, "--json").stdout)
    assert as_json["size"] == sth["size"] and as_json["releases"] == len(releases)
    assert as_json["public_key"] == server.public_key


@pytest.mark.parametrize("hardware, why", [
    ({"cpu": "x" * 240_000}, "bytes"),
    ({"cpu": "x" * 300}, "over 256 characters"),
    ({f"k{i}": 1 for i in range(40)}, "40 fields"),
    ({"gpus": ["h100"] * 17}, "17 items"),
    ({"nested": {"a": 1}}, "holds a dict"),
])
def test_announcements_are_bounded_so_the_directory_stays_small(log, hardware, why):
    """Anyone may announce, and every relay and device reads the whole directory."""
    identity = NodeIdentity()
    att = make_attestation(identity, os.urandom(32), Measurement.from_components(components()),
                           url="http://node.example:8471", model="qwen2.5-1.5b", hardware=hardware,
                           tokens_per_second=1.0)
    with pytest.raises(AttestationError, match=why):
        log.announce(att)
    assert log.size == 0


def test_the_directory_lists_only_released_measurements(log):
    unreleased = attestation()
    log.announce(unreleased)  # logged, so auditable
    assert log.nodes() == []
    log.release(components())
    assert [n["attestation"] for n in log.nodes()] == [unreleased]


def test_the_router_s_cloud_client_remembers_the_log_across_restarts(tmp_path):
    """A gateway restart must not forget the last tree head: a forked (shorter) log with the same key is refused."""
    from tether.routing.config import RouterConfig
    from tether.routing.router import Router

    honest = Server(tmp_path, "honest")
    try:
        for tag in "ab":
            assert httpx.post(honest.url + "/v1/log/releases", json=components(tag),
                              headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        config = RouterConfig.model_validate({"ledger": str(tmp_path / "ledger.sqlite"), "private_cloud": {
            "relay_url": honest.url, "log_url": honest.url, "log_key": honest.public_key,
            "state_path": str(tmp_path / "gateway-state.json")}})
        assert Router.from_config(config).private_cloud.client.log.tree_head()["size"] == 2
    finally:
        honest.stop()
    fork = Server(tmp_path, "fork", key=honest.key)  # same key, fresh database
    try:
        fork_config = config.model_copy(update={"private_cloud": config.private_cloud.model_copy(
            update={"relay_url": fork.url, "log_url": fork.url})})
        with pytest.raises(TransparencyLogError):
            Router.from_config(fork_config).private_cloud.client.log.tree_head()
    finally:
        fork.stop()


def test_a_long_running_device_keeps_proofs_only_for_entries_the_log_still_lists(server, tmp_path):
    """A node re-attests every 30 minutes, each time as a new log entry: a gateway that kept every
    entry it ever proved grew by one entry per node per period for as long as it ran (and, on an
    open log, by every announcement anyone made)."""
    released = httpx.post(server.url + "/v1/log/releases", json=components(),
                          headers={"Authorization": f"Bearer {TOKEN}"})
    assert released.status_code == 200, released.text
    identity, hpke, model = NodeIdentity(), os.urandom(32), f"cache-{os.urandom(4).hex()}"
    measurement = Measurement.from_components(components())
    client = CloudClient(server.url, "http://relay.invalid", log_key=server.public_key, model=model,
                         state_path=tmp_path / "d.json")
    try:
        for _ in range(6):
            time.sleep(0.01)  # a later issued_at: the log takes only a newer attestation
            att = make_attestation(identity, hpke, measurement, url="http://node.example:8471", model=model,
                                   hardware={}, tokens_per_second=1.0)
            assert httpx.post(server.url + "/v1/log/nodes", json=att).status_code == 200
            verdicts = {v.node_id: v for v in client.refresh()}
            assert verdicts[identity.node_id].trusted, verdicts[identity.node_id].reason
        assert len(client._verified_entries) <= 2  # the release and the node's latest attestation
    finally:
        client.close()


def test_two_processes_sharing_the_state_file_see_a_forked_log(tmp_path):
    """The CLI and the gateway share one state file. Each checked a new tree head only against the
    head it loaded at start-up, then wrote its own over the other's: a log that showed the two a
    fork (same key, same size, different histories) went unnoticed on this one device."""
    one = Server(tmp_path, "one", token=None)
    two = Server(tmp_path, "two", key=one.key, token=None)  # the same key, its own history
    state = tmp_path / "device.json"
    try:
        assert LogClient(one.url, one.public_key, state_path=state).tree_head()["size"] == 0
        gateway = LogClient(one.url, state_path=state)
        cli = LogClient(two.url, state_path=state)  # both loaded the empty head
        assert httpx.post(one.url + "/v1/log/releases", json=components("a")).status_code == 200
        assert httpx.post(two.url + "/v1/log/releases", json=components("b")).status_code == 200
        assert gateway.tree_head()["size"] == 1
        with pytest.raises(TransparencyLogError, match="history was rewritten"):
            cli.tree_head()
        assert json.loads(state.read_text())["sth"]["root"] == gateway.last_sth["root"]  # not overwritten
    finally:
        one.stop()
        two.stop()


def test_the_device_rebuilds_the_log_s_root_and_directory_from_its_entries(tmp_path):
    """``ProvenDirectory`` against the log itself, entry by entry: the same root at every size
    (the empty tree's included), and the same node directory as ``/v1/log/nodes``, with a node
    that re-attested, one never released and one too old to list."""
    from tether.cloud.directory import ProvenDirectory

    log = TransparencyLog(tmp_path / "log.sqlite", tmp_path / "log.key")
    proven = ProvenDirectory()
    assert proven.root() == log.root(0)
    again, old = NodeIdentity(), NodeIdentity()
    log.release(components("a"))
    log.announce(attestation(again))
    unreleased = make_attestation(NodeIdentity(), os.urandom(32), Measurement.from_components(components("z")),
                                  url="http://node.example:8471", model="m", hardware={}, tokens_per_second=1.0)
    log.announce(unreleased)
    log.announce(attestation(old, age=log.max_node_age - 200))  # listed now, not in 300 s
    log.release(components("b"))
    time.sleep(0.01)
    log.announce(attestation(again))  # a newer attestation: the directory keeps only this one
    log.announce(attestation())
    for index, entry in log.entries(1, log.size):
        proven.add(index, entry)
        assert proven.root() == log.root(index)
    for later in (0, 300):
        log.clock = lambda: time.time() + later  # noqa: B023 - used at once
        assert proven.nodes(now=log.clock(), max_age=log.max_node_age) == log.nodes()
    listed = [n["attestation"]["node_id"] for n in log.nodes()]
    assert listed.count(again.node_id) == 1 and old.node_id not in listed and len(listed) == 2
    assert proven.releases() == log.releases()
    with pytest.raises(TransparencyLogError, match="where entry 8 was due"):
        proven.add(9, {"type": "release"})
    log.close()
