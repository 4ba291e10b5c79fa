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

from tether.privacy.detect import Detector, Span, get_detector
from tether.privacy.guard import EntityCount, Outbound, PrivacyGuard, ScanReport
from tether.privacy.policy import (
    TIERS,
    Action,
    DetectionConfig,
    PrivacyConfig,
    Tier,
    load_config,
    parse_config,
)
from tether.privacy.pseudonymize import PseudonymSession, StreamRestorer
from tether.privacy.recognizers import BUILTIN_ENTITIES, PERSONAL, SECRETS

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
