"""Tether: on-device-first AI.

The public API lives here; everything else is an implementation module.
"""

from typing import TYPE_CHECKING, Any

from tether.errors import (
    AttestationError,
    ChecksumMismatchError,
    CloudDeadlineError,
    CloudError,
    ConcurrentRequestsError,
    ConsentRequiredError,
    ContextWindowExceededError,
    EmojiFontUnavailableError,
    EnvelopeError,
    ExceededContextWindowSizeError,
    GenerationCancelledError,
    GenerationError,
    IndexBusyError,
    IndexStoreError,
    InputError,
    InvalidOutputError,
    InvalidTierOutputError,
    LogUnreachableError,
    ModelError,
    ModelUnavailableError,
    MustStayOnDeviceError,
    NoNodeAvailableError,
    NodeRejectedError,
    PolicyError,
    PrivacyError,
    RequestTooLargeError,
    RouterConfigError,
    RoutingError,
    SettingError,
    TetherError,
    TierUnavailableError,
    ToolCallError,
    TransparencyLogError,
    UnknownModelError,
)

# The rest loads on first use (PEP 562): importing llama.cpp, pydantic and the session takes a
# few hundred ms, and `tether` (the CLI, whose entry point imports this package first) should
# answer Ctrl-C in that time with its own one line, not a traceback from inside an import.
_LAZY = {
    **dict.fromkeys(("Availability", "availability"), "tether.models.catalog"),
    **dict.fromkeys(("Completion", "Delta", "LlamaEngine", "Message", "Sampling", "TokenLogprob"),
                    "tether.models.engine"),
    **dict.fromkeys(("GuidedResponseStream", "Response", "ResponseStream", "Session", "Snapshot",
                     "TranscriptEntry"), "tether.session"),
    **dict.fromkeys(("Tool", "ToolCall", "tool"), "tether.tools"),
}

if TYPE_CHECKING:
    from tether.models.catalog import Availability, availability
    from tether.models.engine import Completion, Delta, LlamaEngine, Message, Sampling, TokenLogprob
    from tether.session import GuidedResponseStream, Response, ResponseStream, Session, Snapshot, TranscriptEntry
    from tether.tools import Tool, ToolCall, tool


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tether' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__version__ = "0.1.0"

__all__ = [
    "AttestationError",
    "Availability",
    "ChecksumMismatchError",
    "CloudDeadlineError",
    "CloudError",
    "Completion",
    "ConcurrentRequestsError",
    "ConsentRequiredError",
    "ContextWindowExceededError",
    "Delta",
    "EmojiFontUnavailableError",
    "EnvelopeError",
    "ExceededContextWindowSizeError",
    "GenerationCancelledError",
    "GenerationError",
    "GuidedResponseStream",
    "IndexBusyError",
    "IndexStoreError",
    "InputError",
    "InvalidOutputError",
    "InvalidTierOutputError",
    "LlamaEngine",
    "LogUnreachableError",
    "Message",
    "ModelError",
    "ModelUnavailableError",
    "MustStayOnDeviceError",
    "NoNodeAvailableError",
    "NodeRejectedError",
    "PolicyError",
    "PrivacyError",
    "RequestTooLargeError",
    "Response",
    "ResponseStream",
    "RouterConfigError",
    "RoutingError",
    "Sampling",
    "Session",
    "SettingError",
    "Snapshot",
    "TetherError",
    "TierUnavailableError",
    "TokenLogprob",
    "Tool",
    "ToolCall",
    "ToolCallError",
    "TranscriptEntry",
    "TransparencyLogError",
    "UnknownModelError",
    "availability",
    "tool",
]
