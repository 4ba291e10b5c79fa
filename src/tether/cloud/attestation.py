"""What a node is, and a signed statement of it.

A node's *measurement* is a hash of three things a user can check against the
transparency log: the code release (every ``.py`` file of the installed
``tether`` package), the model file's sha256, and the node's config. Two nodes
running the same release of the same model with the same config share one
measurement, so one logged release covers a fleet.

The node signs its request-encryption (HPKE) public key together with the
measurement using an Ed25519 key it generates at start-up and never writes
down. Without hardware attestation that signature proves consistency, not
provenance: see docs/private-cloud.md for what AWS Nitro Enclaves would add.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tether.errors import AttestationError

ATTESTATION_VERSION = 1
REATTEST_EVERY = 1800.0  # seconds between a running node's re-signed attestations
MAX_ATTESTATION_AGE = 4 * REATTEST_EVERY  # devices and the log refuse older ones
CLOCK_SKEW = 300.0  # seconds of clock difference tolerated between device, log and nodes
SUITE_NAME = "DHKEM(X25519,HKDF-SHA256)/HKDF-SHA256/ChaCha20Poly1305"


def canonical_json(value: Any) -> bytes:
    """The one byte encoding that is hashed and signed everywhere (sorted keys, no spaces)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------- measurement

def code_digest(root: Path | None = None) -> str:
    """sha256 over every ``.py`` file of the package, by sorted relative path."""
    root = root or Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        rel = path.relative_to(root).as_posix()
        h.update(rel.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


@dataclass(frozen=True)
class Measurement:
    code: str
    model_sha256: str
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return sha256_hex(canonical_json(self.components()))

    def components(self) -> dict[str, Any]:
        return {"code": self.code, "model_sha256": self.model_sha256, "config": self.config}

    @classmethod
    def from_components(cls, components: dict[str, Any]) -> "Measurement":
        try:
            return cls(str(components["code"]), str(components["model_sha256"]), dict(components["config"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed measurement components: {exc}") from exc


def node_config(model: str, *, n_ctx: int, max_tokens: int, upstream: str | None = None) -> dict[str, Any]:
    """The parts of a node's configuration that change what it does with a request."""
    return {"model": model, "n_ctx": n_ctx, "max_tokens": max_tokens, "upstream": upstream}


# ----------------------------------------------------------------- hardware

def describe_hardware() -> dict[str, Any]:
    """What this machine offers, for the node's advertisement. Best effort, never fails."""
    info: dict[str, Any] = {"arch": platform.machine(), "cpus": os.cpu_count() or 0, "cpu": _cpu_model()}
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=5, check=True).stdout
            info["gpus"] = [line.strip() for line in out.splitlines() if line.strip()]
        except (OSError, subprocess.SubprocessError):
            pass
    if shutil.which("neuron-ls"):
        info["accelerator"] = "aws-neuron"
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ----------------------------------------------------------------- signing

class NodeIdentity:
    """A node's Ed25519 signing key. Made fresh at start-up and held only in memory."""

    def __init__(self, key: Ed25519PrivateKey | None = None):
        self._key = key or Ed25519PrivateKey.generate()
        self.public_bytes = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.node_id = node_id_for(self.public_bytes)

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)


def node_id_for(signing_public_key: bytes) -> str:
    return sha256_hex(signing_public_key)[:16]


def make_attestation(
    identity: NodeIdentity,
    hpke_public_key: bytes,
    measurement: Measurement,
    *,
    url: str,
    model: str,
    hardware: dict[str, Any],
    tokens_per_second: float,
) -> dict[str, Any]:
    body = {
        "version": ATTESTATION_VERSION,
        "node_id": identity.node_id,
        "signing_key": b64(identity.public_bytes),
        "hpke_key": b64(hpke_public_key),
        "suite": SUITE_NAME,
        "measurement": measurement.digest,
        "components": measurement.components(),
        "url": url,
        "model": model,
        "hardware": hardware,
        "tokens_per_second": round(float(tokens_per_second), 2),
        "issued_at": round(time.time(), 3),
    }
    return {**body, "signature": b64(identity.sign(canonical_json(body)))}


def verify_attestation(attestation: dict[str, Any]) -> dict[str, Any]:
    """Check an attestation's signature and internal consistency; return it unchanged.

    Raises ``AttestationError`` naming the failed check. Whether the measurement
    is a *released* one is the transparency log's question, not this one's.
    """
    node = str(attestation.get("node_id", "?")) if isinstance(attestation, dict) else "?"
    if not isinstance(attestation, dict):
        raise AttestationError(node, "attestation is not a JSON object")
    if attestation.get("version") != ATTESTATION_VERSION:
        raise AttestationError(node, f"unsupported attestation version {attestation.get('version')!r}")
    if attestation.get("suite") != SUITE_NAME:
        raise AttestationError(node, f"unsupported HPKE suite {attestation.get('suite')!r}")
    body = {k: v for k, v in attestation.items() if k != "signature"}
    _check_fields(attestation, node)
    try:
        signing_key = unb64(attestation["signing_key"])
        signature = unb64(attestation["signature"])
        hpke_key = unb64(attestation["hpke_key"])
        components = Measurement.from_components(attestation["components"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise AttestationError(node, f"malformed attestation: {exc}") from exc
    if len(signing_key) != 32 or len(hpke_key) != 32:
        raise AttestationError(node, "key of the wrong length")
    if node_id_for(signing_key) != node:
        raise AttestationError(node, "node id does not match its signing key")
    try:
        Ed25519PublicKey.from_public_bytes(signing_key).verify(signature, canonical_json(body))
    except InvalidSignature:
        raise AttestationError(node, "signature is wrong") from None
    if components.digest != attestation.get("measurement"):
        raise AttestationError(node, "measurement does not match its components")
    return attestation


# What every reader of an attestation (log, relay, device) relies on, so a signed but
# incomplete one is refused at the log instead of breaking whoever reads it later.
_FIELDS: dict[str, tuple[type, ...]] = {
    "node_id": (str,), "signing_key": (str,), "signature": (str,), "hpke_key": (str,), "measurement": (str,),
    "components": (dict,), "url": (str,), "model": (str,), "hardware": (dict,), "tokens_per_second": (int, float),
    "issued_at": (int, float),
}


# Anyone may announce, and every relay and device reads the whole directory, so an announcement
# is bounded: a few unbounded self-reported fields would make the directory too big to fetch.
MAX_ATTESTATION_BYTES = 16 * 1024
MAX_HARDWARE_KEYS = 32
MAX_HARDWARE_TEXT = 256
MAX_MODEL_NAME = 200


def _hardware_problem(hardware: dict[str, Any]) -> str | None:
    """``hardware`` is a flat record: short names to short text, numbers, or short lists of text."""
    if len(hardware) > MAX_HARDWARE_KEYS:
        return f"has {len(hardware)} fields (at most {MAX_HARDWARE_KEYS})"
    for key, value in hardware.items():
        if len(key) > 64:
            return "has a field name over 64 characters"
        values = value if isinstance(value, list) else [value]
        if isinstance(value, list) and len(value) > 16:
            return f"{key} lists {len(value)} items (at most 16)"
        for item in values:
            if isinstance(item, str):
                if len(item) > MAX_HARDWARE_TEXT:
                    return f"{key} is over {MAX_HARDWARE_TEXT} characters"
            elif not isinstance(item, (int, float, bool)) and item is not None:
                return f"{key} holds a {type(item).__name__}, not text or a number"
    return None


def _check_fields(attestation: dict[str, Any], node: str) -> None:
    try:
        size = len(canonical_json(attestation))
    except (TypeError, ValueError, RecursionError):
        raise AttestationError(node, "malformed attestation: not JSON") from None
    if size > MAX_ATTESTATION_BYTES:
        raise AttestationError(node, f"malformed attestation: {size} bytes (at most {MAX_ATTESTATION_BYTES})")
    for name, types in _FIELDS.items():
        value = attestation.get(name)
        if not isinstance(value, types) or isinstance(value, bool):
            raise AttestationError(node, f"malformed attestation: {name} is {type(value).__name__}, "
                                         f"not {' or '.join(t.__name__ for t in types)}")
    problem = node_url_problem(attestation["url"])
    if problem:
        raise AttestationError(node, f"malformed attestation: url {problem}")
    if not attestation["model"].strip() or len(attestation["model"]) > MAX_MODEL_NAME:
        raise AttestationError(node, f"malformed attestation: model is empty or over {MAX_MODEL_NAME} characters")
    problem = _hardware_problem(attestation["hardware"])
    if problem:
        raise AttestationError(node, f"malformed attestation: hardware {problem}")
    if not 0 <= attestation["tokens_per_second"] < 1e7:
        raise AttestationError(node, "malformed attestation: tokens_per_second out of range")


def node_url_problem(url: str) -> str | None:
    """Why ``url`` is not a node's base address (``http(s)://host[:port]``), or None.

    Relays and devices append their own paths to it; a path, query, fragment or
    user info would let an announcement aim a relay at some other service's endpoint.
    """
    import httpx

    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return "is not a valid URL"
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return "is not http(s)://host[:port]"
    if parsed.userinfo or parsed.query or parsed.fragment or parsed.path not in ("", "/"):
        return "must be http(s)://host[:port] with no path, query, fragment or user info"
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        return f"has port {parsed.port}, outside 1-65535"
    if parsed.host in ("0.0.0.0", "::", "0:0:0:0:0:0:0:0"):
        return "names no host (0.0.0.0 or :: is where a node listens, not an address to reach it at)"
    return None


def check_attestation_age(attestation: dict[str, Any], *, now: float, max_age: float, skew: float = CLOCK_SKEW) -> None:
    """Refuse an attestation that is too old or dated in the future.

    A node re-signs its attestation periodically while it runs, so an old one
    belongs to a node that stopped (or to someone replaying it with a key that
    may since have leaked).
    """
    node = str(attestation.get("node_id", "?"))
    issued = attestation.get("issued_at")
    if not isinstance(issued, (int, float)) or isinstance(issued, bool):
        raise AttestationError(node, f"malformed attestation: issued_at {issued!r}")
    if issued > now + skew:
        raise AttestationError(node, f"attestation is dated {issued - now:.0f} s in the future")
    if now - issued > max_age:
        raise AttestationError(node, f"attestation is stale: issued {now - issued:.0f} s ago (limit {max_age:.0f} s); "
                                     "the node has not re-attested")
