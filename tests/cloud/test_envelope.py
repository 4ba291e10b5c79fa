"""The HPKE envelope: what opens, and everything that must not."""

from __future__ import annotations

import base64
import json
import time

import pytest

from tether.cloud.attestation import Measurement, NodeIdentity, make_attestation, verify_attestation
from tether.cloud.envelope import MAX_AGE, KeyPair, ReplayGuard, ResponseOpener, open_request, seal_request
from tether.errors import AttestationError, EnvelopeError

BODY = {"messages": [{"role": "user", "content": "canary-7f3a: what is 2+2?"}], "max_tokens": 8}


def _flip(b64text: str, at: int = -3) -> str:
    raw = bytearray(base64.b64decode(b64text))
    raw[at] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


@pytest.fixture()
def node():
    return "node-a", KeyPair(), ReplayGuard()


def test_round_trip_request_and_streamed_response(node):
    node_id, keys, guard = node
    sealed, openers = seal_request(BODY, [(node_id, keys.public_bytes)])
    wire = json.dumps(sealed.for_node(node_id))
    assert "canary-7f3a" not in wire  # the ciphertext hides the content
    body, sealer = open_request(json.loads(wire), node_id, keys, guard)
    assert body == BODY
    frames = b"".join([sealer.seal({"i": 0}), sealer.seal({"i": 1}), sealer.seal({"done": True}, final=True)])
    opener = openers[node_id]
    got = []
    for i in range(0, len(frames), 7):  # arbitrary network chunking
        got.extend(opener.feed(frames[i:i + 7]))
    opener.close()
    assert got == [{"i": 0}, {"i": 1}, {"done": True}]


def test_sealed_to_k_nodes_only_the_chosen_one_opens(node):
    _, keys_a, guard = node
    keys_b = KeyPair()
    sealed, openers = seal_request(BODY, [("a", keys_a.public_bytes), ("b", keys_b.public_bytes)])
    assert set(openers) == {"a", "b"}
    body, _ = open_request(sealed.for_node("b"), "b", keys_b, ReplayGuard())
    assert body == BODY
    with pytest.raises(EnvelopeError):  # b's wrap does not open with a's key
        open_request({**sealed.for_node("b"), "node": "a"}, "a", keys_a, guard)


@pytest.mark.parametrize("field", ["ct", "key", "enc"])
def test_tampered_request_is_rejected_with_the_same_message(node, field):
    node_id, keys, guard = node
    sealed, _ = seal_request(BODY, [(node_id, keys.public_bytes)])
    message = sealed.for_node(node_id)
    message[field] = _flip(message[field])
    with pytest.raises(EnvelopeError) as info:
        open_request(message, node_id, keys, guard)
    assert str(info.value) == "rejected"


def test_replayed_and_expired_requests_are_rejected(node):
    node_id, keys, guard = node
    sealed, _ = seal_request(BODY, [(node_id, keys.public_bytes)])
    message = sealed.for_node(node_id)
    open_request(message, node_id, keys, guard)
    with pytest.raises(EnvelopeError, match="^rejected$"):
        open_request(message, node_id, keys, guard)
    fresh, _ = seal_request(BODY, [(node_id, keys.public_bytes)])
    with pytest.raises(EnvelopeError, match="^rejected$"):
        open_request(fresh.for_node(node_id), node_id, keys, ReplayGuard(), now=time.time() + MAX_AGE + 1)


@pytest.mark.parametrize("garbage", [{}, {"node": "node-a"}, {"node": "node-a", "enc": "!!", "key": "", "ct": ""},
                                     {"node": "node-a", "enc": 5, "key": None, "ct": []}])
def test_malformed_request_is_rejected(node, garbage):
    node_id, keys, guard = node
    with pytest.raises(EnvelopeError, match="^rejected$"):
        open_request(garbage, node_id, keys, guard)


def _response(n: int = 3):
    node_id, keys = "n", KeyPair()
    sealed, openers = seal_request(BODY, [(node_id, keys.public_bytes)])
    _, sealer = open_request(sealed.for_node(node_id), node_id, keys, ReplayGuard())
    frames = [sealer.seal({"i": i}, final=(i == n - 1)) for i in range(n)]
    return frames, openers[node_id]


def test_tampered_response_frame_fails():
    frames, opener = _response()
    bad = bytearray(frames[1])
    bad[-1] ^= 1
    list(opener.feed(frames[0]))
    with pytest.raises(EnvelopeError, match="failed authentication"):
        list(opener.feed(bytes(bad)))


def test_reordered_response_frames_fail():
    frames, opener = _response()
    with pytest.raises(EnvelopeError):
        list(opener.feed(frames[1] + frames[0]))


def test_truncated_response_is_detected():
    frames, opener = _response()
    list(opener.feed(frames[0] + frames[1]))
    with pytest.raises(EnvelopeError, match="truncated"):
        opener.close()


def test_forged_final_flag_fails():
    frames, opener = _response()
    forged = bytearray(frames[0])
    forged[4] = 1  # claim the first frame is the last: truncation in disguise
    with pytest.raises(EnvelopeError):
        list(opener.feed(bytes(forged)))


def test_response_opener_rejects_other_requests_frames():
    frames, _ = _response()
    _, other = _response()
    with pytest.raises(EnvelopeError):
        list(other.feed(frames[0]))


def test_attestation_signature_and_measurement_checks():
    identity, keys = NodeIdentity(), KeyPair()
    m = Measurement(code="c" * 64, model_sha256="m" * 64, config={"model": "x"})
    att = make_attestation(identity, keys.public_bytes, m, url="http://127.0.0.1:1", model="x", hardware={},
                           tokens_per_second=10)
    assert verify_attestation(att) is att
    swapped = {**att, "hpke_key": base64.b64encode(KeyPair().public_bytes).decode()}
    with pytest.raises(AttestationError, match="signature is wrong"):
        verify_attestation(swapped)
    other = make_attestation(NodeIdentity(), keys.public_bytes, m, url="u", model="x", hardware={}, tokens_per_second=1)
    with pytest.raises(AttestationError, match="node id"):
        verify_attestation({**att, "signing_key": other["signing_key"]})
    lying = make_attestation(identity, keys.public_bytes, m, url="u", model="x", hardware={}, tokens_per_second=1)
    lying = {**lying, "components": {**lying["components"], "model_sha256": "0" * 64}}
    with pytest.raises(AttestationError):
        verify_attestation(lying)


def test_response_frames_do_not_give_away_token_lengths():
    """One streamed chunk per token: sizes in steps of PAD_TO, so 'a' and 'antidisestablishment' look alike."""
    from tether.cloud.envelope import PAD_TO

    keys = KeyPair()
    sealed, openers = seal_request({"messages": []}, [("n1", keys.public_bytes)])
    _, sealer = open_request(sealed.for_node("n1"), "n1", keys, ReplayGuard())
    chunks = [{"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": word}}]}
              for word in ("a", " the", " antidisestablishment", "\u00e9t\u00e9")]
    frames = [sealer.seal(c) for c in chunks] + [sealer.seal({"done": True}, final=True)]
    assert len({len(f) for f in frames}) == 1 and (len(frames[0]) - 5 - 16) % PAD_TO == 0
    assert list(openers["n1"].feed(b"".join(frames))) == [*chunks, {"done": True}]


def test_a_sealed_requests_size_does_not_give_away_its_prompts_length():
    """Padmé padding: every short request seals to one size, and a longer one shows only a bucket."""
    from tether.cloud.envelope import padded_length

    keys = KeyPair()

    def sealed_size(prompt: str) -> int:
        sealed, _ = seal_request({"messages": [{"role": "user", "content": prompt}]}, [("n1", keys.public_bytes)])
        body, _ = open_request(sealed.for_node("n1"), "n1", keys, ReplayGuard())
        assert body["messages"][0]["content"] == prompt  # the node reads it as sent
        return len(sealed.ciphertext)

    assert len({sealed_size("x" * n) for n in (2, 3, 100, 101, 117, 600)}) == 1
    assert len({sealed_size("é" * n) for n in (1500, 1510, 1530)}) == 1
    assert sealed_size("x" * 5000) > sealed_size("x" * 600)  # big differences still show, as a bucket
    for n in (1, 1024, 1025, 4000, 10_000, 123_457, 1_000_000, 3_000_000):
        padded = padded_length(n)
        assert n <= padded <= max(1024, int(n * 1.12) + 1)


def test_a_rotated_key_opens_only_while_its_attestation_may_be_trusted():
    """A node rotates its request key at every re-attestation. A device that still holds the old
    attestation may seal to the old key until that attestation is too old to trust (``keep``
    after it was issued); after that the node no longer holds the key, so a request sealed to it,
    or a recording of one, opens nowhere."""
    from tether.cloud.envelope import KeyRing

    now = [1_000.0]
    ring = KeyRing(keep=7_500.0, clock=lambda: now[0])
    guard = ReplayGuard()
    first = ring.current

    def sealed_to(keys: KeyPair) -> dict:
        sealed, _ = seal_request(BODY, [("node-a", keys.public_bytes)])
        return json.loads(json.dumps(sealed.for_node("node-a")))

    assert ring.open(sealed_to(first), "node-a", guard)[0] == BODY
    now[0] += 1_800  # the next re-attestation
    second = ring.rotate()
    assert second.public_bytes != first.public_bytes and len(ring.held()) == 2
    assert ring.open(sealed_to(first), "node-a", guard)[0] == BODY  # a device with the older attestation
    assert ring.open(sealed_to(second), "node-a", guard)[0] == BODY
    now[0] += 1_800
    ring.rotate()
    now[0] = 1_000.0 + 7_500.0 + 1  # the first key's attestation is past trusting: the key is gone
    assert first not in ring.held() and second in ring.held()
    with pytest.raises(EnvelopeError, match="^rejected$"):
        ring.open(sealed_to(first), "node-a", guard)
    assert ring.open(sealed_to(second), "node-a", guard)[0] == BODY
    replay = sealed_to(second)
    ring.open(replay, "node-a", guard)
    with pytest.raises(EnvelopeError, match="^rejected$"):  # a replay is still refused, whichever key
        ring.open(replay, "node-a", guard)
