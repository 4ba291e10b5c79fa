"""End-to-end encryption between the device and one node (HPKE, RFC 9180).

Request: the device makes a fresh 32-byte key, encrypts the request with it
once, and wraps that key with HPKE to each of k candidate nodes. Whichever
node gets the request unwraps the key; the others never see it. Each wrap is
bound to the ciphertext's hash, so swapping ciphertexts between wraps fails.

Response: a key exported from the same HPKE context seals each streamed frame.
Frame ``i`` uses nonce ``i`` and carries a "final" bit in its associated data,
so reordering, dropping, replaying or truncating frames all fail to open. Each
frame's JSON is padded with spaces to a multiple of ``PAD_TO`` bytes before it
is sealed, so frame sizes do not give away token lengths.

The sealed request holds a timestamp and a random id. Nodes reject requests
older than ``MAX_AGE`` seconds and remember each wrap's encapsulated key for
that long to refuse replays.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from pyhpke import AEADId, CipherSuite, KDFId, KEMId
from pyhpke.exceptions import PyHPKEError

from tether.cloud.attestation import b64, unb64
from tether.errors import EnvelopeError, InputError

SUITE = CipherSuite.new(KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.CHACHA20_POLY1305)
REQUEST_INFO = b"tether/request/v1"
RESPONSE_LABEL = b"tether/response/v1"
MAX_AGE = 60.0  # seconds a sealed request stays valid
CLOCK_SKEW = 5.0
_ZERO_NONCE = bytes(12)
_FRAME_HEADER = struct.Struct(">IB")  # ciphertext length, final flag
MAX_FRAME = 8 * 1024 * 1024
PAD_TO = 256  # response frames' plaintext is padded to a multiple of this many bytes
REQUEST_PAD_MIN = 1024  # every request's plaintext is at least this long: short prompts all look alike
REQUEST_PAD_CEILING = 2 * 1024 * 1024  # no padding past this: a body that fit the 4 MiB limit sealed still does


def padded_length(n: int) -> int:
    """Padmé (Nikitin et al., PETS 2019): ``n`` rounded up so that only O(log log n) bits of it show,
    at most 12% more. A request's size otherwise told the relay its prompt's length to the byte."""
    if n <= REQUEST_PAD_MIN:
        return REQUEST_PAD_MIN
    e = n.bit_length() - 1
    low_bits = e - e.bit_length()  # e - (floor(log2 e) + 1)
    mask = (1 << low_bits) - 1
    return max(n, min((n + mask) & ~mask, REQUEST_PAD_CEILING))


class KeyPair:
    """A node's X25519 request-encryption key; lives in memory only."""

    def __init__(self) -> None:
        pair = SUITE.kem.derive_key_pair(os.urandom(32))
        self.private_key = pair.private_key
        self.public_bytes = pair.public_key.to_public_bytes()


class KeyRing:
    """A node's request keys: the one its current attestation names, and those before it while a
    device may still seal to them (until their attestation is too old for any device to trust).

    The node rotates at every re-attestation, so a key taken from its memory later opens only
    what was sealed to it in the last ``keep`` seconds: requests older than that were sealed to
    keys the node no longer holds (forward secrecy by epoch, as far as memory can be dropped)."""

    def __init__(self, keep: float, *, clock: Any = time.time):
        self.keep = keep
        self.clock = clock
        self.current = KeyPair()
        self._since = clock()  # when ``current`` became the attested key
        self._lock = threading.Lock()
        self._retired: list[tuple[float, KeyPair]] = []  # (drop after, keys)

    def rotate(self) -> KeyPair:
        """A fresh current key; the old one stays ``keep`` seconds past the attestation that named it."""
        with self._lock:
            now = self.clock()
            self._retired.append((self._since + self.keep, self.current))
            self.current, self._since = KeyPair(), now
            self._drop_expired(now)
            return self.current

    def _drop_expired(self, now: float) -> None:
        self._retired = [(until, keys) for until, keys in self._retired if until > now]

    def held(self) -> list[KeyPair]:
        """The keys a request may be sealed to now, the current one first."""
        with self._lock:
            self._drop_expired(self.clock())
            return [self.current, *(keys for _, keys in reversed(self._retired))]

    def open(self, message: dict[str, Any], node_id: str,
             guard: "ReplayGuard") -> tuple[dict[str, Any], "ResponseSealer"]:
        """``open_request`` with whichever held key the request was sealed to; ``EnvelopeError``
        ("rejected") if none opens it."""
        for keys in self.held():
            try:
                return open_request(message, node_id, keys, guard)
            except EnvelopeError:
                continue
        raise EnvelopeError("rejected")


@dataclass(frozen=True)
class Wrap:
    node_id: str
    enc: bytes
    wrapped_key: bytes

    def to_json(self) -> dict[str, str]:
        return {"node": self.node_id, "enc": b64(self.enc), "key": b64(self.wrapped_key)}


@dataclass(frozen=True)
class SealedRequest:
    """What leaves the device: opaque bytes plus which nodes could open them."""

    wraps: tuple[Wrap, ...]
    ciphertext: bytes

    def to_json(self) -> dict[str, Any]:
        return {"targets": [w.to_json() for w in self.wraps], "ct": b64(self.ciphertext)}

    def for_node(self, node_id: str) -> dict[str, str]:
        wrap = next(w for w in self.wraps if w.node_id == node_id)
        return {**wrap.to_json(), "ct": b64(self.ciphertext)}


def seal_request(body: dict[str, Any], recipients: list[tuple[str, bytes]]) -> tuple[SealedRequest, dict[str, "ResponseOpener"]]:
    """Encrypt ``body`` for any one of ``recipients`` (node id, HPKE public key).

    Returns the sealed request and, per node, the opener for its response.
    """
    if not recipients:
        raise ValueError("at least one recipient is needed")
    payload = {"v": 1, "id": os.urandom(16).hex(), "ts": time.time(), "body": body}
    try:  # written as UTF-8, so half a character (a lone surrogate) fails here, not at the node
        plaintext = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"the request is not valid Unicode (an unpaired surrogate at character {exc.start} "
                         "of its JSON)") from None
    plaintext += b" " * (padded_length(len(plaintext)) - len(plaintext))  # any JSON reader skips it
    key = ChaCha20Poly1305.generate_key()
    ciphertext = ChaCha20Poly1305(key).encrypt(_ZERO_NONCE, plaintext, REQUEST_INFO)
    binding = hashlib.sha256(ciphertext).digest()
    wraps: list[Wrap] = []
    openers: dict[str, ResponseOpener] = {}
    for node_id, public_bytes in recipients:
        enc, ctx = SUITE.create_sender_context(SUITE.kem.deserialize_public_key(public_bytes),
                                               info=REQUEST_INFO + node_id.encode())
        wraps.append(Wrap(node_id, enc, ctx.seal(key, aad=binding)))
        openers[node_id] = ResponseOpener(ctx.export(RESPONSE_LABEL, 32))
    return SealedRequest(tuple(wraps), ciphertext), openers


class ReplayGuard:
    """Encapsulated keys seen within ``MAX_AGE``; memory only, bounded."""

    def __init__(self, max_age: float = MAX_AGE, capacity: int = 200_000):
        self.max_age = max_age
        self.capacity = capacity
        self._seen: dict[bytes, float] = {}
        self._lock = threading.Lock()

    def check_and_remember(self, enc: bytes, now: float) -> bool:
        with self._lock:
            if len(self._seen) >= self.capacity:
                self._seen = {k: t for k, t in self._seen.items() if t > now}
                if len(self._seen) >= self.capacity:
                    return False  # flooded: refuse rather than forget and allow replays
            if enc in self._seen and self._seen[enc] > now:
                return False
            self._seen[enc] = now + self.max_age + CLOCK_SKEW
            return True


def open_request(
    message: dict[str, Any], node_id: str, keys: KeyPair, guard: ReplayGuard, *, now: float | None = None
) -> tuple[dict[str, Any], "ResponseSealer"]:
    """Open a request meant for this node. Every failure is the same ``EnvelopeError``.

    The caller learns only "rejected": which check failed could help an attacker.
    """
    now = time.time() if now is None else now
    try:
        if message.get("node") != node_id:
            raise ValueError
        enc, wrapped, ciphertext = unb64(message["enc"]), unb64(message["key"]), unb64(message["ct"])
        ctx = SUITE.create_recipient_context(enc, keys.private_key, info=REQUEST_INFO + node_id.encode())
        key = ctx.open(wrapped, aad=hashlib.sha256(ciphertext).digest())
        payload = json.loads(ChaCha20Poly1305(key).decrypt(_ZERO_NONCE, ciphertext, REQUEST_INFO))
        ts = float(payload["ts"])
        if not (now - MAX_AGE <= ts <= now + CLOCK_SKEW):
            raise ValueError
        body = payload["body"]
        if not isinstance(body, dict):
            raise ValueError
    except (KeyError, TypeError, ValueError, OverflowError, InvalidTag, PyHPKEError, UnicodeDecodeError,
            AttributeError):
        raise EnvelopeError("rejected") from None
    if not guard.check_and_remember(enc, now):
        raise EnvelopeError("rejected")
    return body, ResponseSealer(ctx.export(RESPONSE_LABEL, 32))


def _aad(seq: int, final: bool) -> bytes:
    return RESPONSE_LABEL + struct.pack(">QB", seq, int(final))


def _nonce(seq: int) -> bytes:
    return seq.to_bytes(12, "big")


class ResponseSealer:
    """Node side: seals response frames in order."""

    def __init__(self, key: bytes):
        self._aead = ChaCha20Poly1305(key)
        self._seq = 0
        self.finished = False

    def seal(self, data: dict[str, Any], *, final: bool = False) -> bytes:
        if self.finished:
            raise RuntimeError("the response is already final")
        plain = json.dumps(data).encode("utf-8")
        # Padded with JSON whitespace inside the ciphertext, so the relay sees frame sizes in steps
        # of PAD_TO, not each token's length; any JSON reader ignores it when the frame is opened.
        plain += b" " * (-len(plain) % PAD_TO)
        ct = self._aead.encrypt(_nonce(self._seq), plain, _aad(self._seq, final))
        self._seq += 1
        self.finished = final
        return _FRAME_HEADER.pack(len(ct), int(final)) + ct


class ResponseOpener:
    """Device side: feed it bytes as they arrive; it yields each opened frame in order."""

    def __init__(self, key: bytes):
        self._aead = ChaCha20Poly1305(key)
        self._seq = 0
        self._buffer = bytearray()
        self.finished = False
        self.max_frame = MAX_FRAME  # the caller may lower it (a stream's chunks are small)

    def feed(self, data: bytes) -> Iterator[dict[str, Any]]:
        self._buffer.extend(data)
        while len(self._buffer) >= _FRAME_HEADER.size:
            length, final = _FRAME_HEADER.unpack_from(self._buffer)
            if length > MAX_FRAME or final not in (0, 1):
                raise EnvelopeError("response frame header is corrupt")
            if length > self.max_frame:  # refused before it is buffered, let alone opened
                raise EnvelopeError(f"response frame {self._seq} is {length:,} bytes, over the {self.max_frame:,} "
                                    "a frame of this answer may take")
            end = _FRAME_HEADER.size + length
            if len(self._buffer) < end:
                return
            ct = bytes(self._buffer[_FRAME_HEADER.size:end])
            del self._buffer[:end]
            if self.finished:
                raise EnvelopeError("data after the final response frame")
            try:
                plain = self._aead.decrypt(_nonce(self._seq), ct, _aad(self._seq, bool(final)))
            except InvalidTag:
                raise EnvelopeError(f"response frame {self._seq} failed authentication (tampered or out of order)") from None
            self._seq += 1
            self.finished = bool(final)
            try:
                yield json.loads(plain)
            except (ValueError, RecursionError):  # sealed by the node, so the node's fault
                raise EnvelopeError(f"response frame {self._seq - 1} is not JSON") from None

    def close(self) -> None:
        """Call at end of stream: a response that never sent its final frame was cut short."""
        if not self.finished:
            raise EnvelopeError("response ended before its final frame (truncated)")
