"""Tether: on-device-first AI.

The public API lives here; everything else is an implementation module.
"""

from tether.errors import (
    AttestationError,
    ChecksumMismatchError,
    CloudError,
    ConcurrentRequestsError,
    ConsentRequiredError,
    ContextWindowExceededError,
    EmojiFontUnavailableError,
    ExceededContextWindowSizeError,
    GenerationCancelledError,
    GenerationError,
    IndexStoreError,
    InputError,
    InvalidOutputError,
    ModelError,
    ModelUnavailableError,
    MustStayOnDeviceError,
    NoNodeAvailableError,
    PolicyError,
    PrivacyError,
    RouterConfigError,
    RoutingError,
    SettingError,
    TetherError,
    TierUnavailableError,
    ToolCallError,
    UnknownModelError,
)
from tether.models.catalog import Availability, availability
from tether.models.engine import Completion, Delta, LlamaEngine, Message, Sampling, TokenLogprob
from tether.session import Response, ResponseStream, Session, TranscriptEntry
from tether.tools import Tool, ToolCall, tool

__version__ = "0.1.0"

__all__ = [
    "AttestationError",
    "Availability",
    "ChecksumMismatchError",
    "CloudError",
    "Completion",
    "ConcurrentRequestsError",
    "ConsentRequiredError",
    "ContextWindowExceededError",
    "Delta",
    "EmojiFontUnavailableError",
    "ExceededContextWindowSizeError",
    "GenerationCancelledError",
    "GenerationError",
    "IndexStoreError",
    "InputError",
    "InvalidOutputError",
    "LlamaEngine",
    "Message",
    "ModelError",
    "ModelUnavailableError",
    "MustStayOnDeviceError",
    "NoNodeAvailableError",
    "PolicyError",
    "PrivacyError",
    "Response",
    "ResponseStream",
    "RouterConfigError",
    "RoutingError",
    "Sampling",
    "Session",
    "SettingError",
    "TetherError",
    "TierUnavailableError",
    "TokenLogprob",
    "Tool",
    "ToolCall",
    "ToolCallError",
    "TranscriptEntry",
    "UnknownModelError",
    "availability",
    "tool",
]
