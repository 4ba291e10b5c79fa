"""Privacy guard: personal data stays on the device.

Request flow: feature → **privacy** → router → tier → engine → **restore** → ledger.

    guard = PrivacyGuard.from_file()                 # policy from config; PolicyError if invalid
    session = guard.session()                        # mapping kept in memory only
    out = guard.prepare(text, "private_cloud", session=session)
    payload = out.require_payload()                  # MustStayOnDeviceError for secrets
    answer = session.restore(reply)                  # or session.restorer() for streams
"""

import os as _os

# presidio imports transformers (unused here), which prints a PyTorch advisory on stderr.
_os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

# Loaded on first use: the detector's modules import presidio and spaCy (seconds), which the
# policy, the router's consent check and a search answered on the device do not need.
_EXPORTS = {
    "Detector": "detect", "Span": "detect", "get_detector": "detect",
    "EntityCount": "guard", "Outbound": "guard", "PrivacyGuard": "guard", "ScanReport": "guard",
    "TIERS": "policy", "Action": "policy", "DetectionConfig": "policy", "PrivacyConfig": "policy", "Tier": "policy",
    "load_config": "policy", "parse_config": "policy",
    "PseudonymSession": "pseudonymize", "StreamRestorer": "pseudonymize",
    "BUILTIN_ENTITIES": "entities", "PERSONAL": "entities", "SECRETS": "entities",
}


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tether.privacy' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"tether.privacy.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "BUILTIN_ENTITIES",
    "PERSONAL",
    "SECRETS",
    "TIERS",
    "Action",
    "DetectionConfig",
    "Detector",
    "EntityCount",
    "Outbound",
    "PrivacyConfig",
    "PrivacyGuard",
    "PseudonymSession",
    "ScanReport",
    "Span",
    "StreamRestorer",
    "Tier",
    "get_detector",
    "load_config",
    "parse_config",
]
