"""Tether: on-device-first AI.

The public API lives here; everything else is an implementation module.
"""

from tether.errors import (
    ChecksumMismatchError,
    ContextWindowExceededError,
    EmojiFontUnavailableError,
    GenerationCancelledError,
    GenerationError,
    InputError,
    InvalidOutputError,
    ModelError,
    ModelUnavailableError,
    MustStayOnDeviceError,
    PolicyError,
    PrivacyError,
    SettingError,
    TetherError,
    ToolCallError,
    UnknownModelError,
)
from tether.models.catalog import Availability, availability
from tether.models.engine import Completion, Message, Sampling, TokenLogprob
from tether.session import Response, ResponseStream, Session, TranscriptEntry
from tether.tools import Tool, ToolCall, tool

__version__ = "0.1.0"

__all__ = [
    "Availability",
    "ChecksumMismatchError",
    "Completion",
    "ContextWindowExceededError",
    "EmojiFontUnavailableError",
    "GenerationCancelledError",
    "GenerationError",
    "InputError",
    "InvalidOutputError",
    "Message",
    "ModelError",
    "ModelUnavailableError",
    "MustStayOnDeviceError",
    "PolicyError",
    "PrivacyError",
    "Response",
    "ResponseStream",
    "Sampling",
    "Session",
    "SettingError",
    "TetherError",
    "TokenLogprob",
    "Tool",
    "ToolCall",
    "ToolCallError",
    "TranscriptEntry",
    "UnknownModelError",
    "availability",
    "tool",
]
