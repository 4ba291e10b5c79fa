"""Every error Tether raises on purpose.

    TetherError
    ├── InputError                       bad input from a caller or a file
    ├── SettingError                     an environment setting has a value Tether cannot use
    ├── ModelError
    │   ├── UnknownModelError            no catalog entry for that name
    │   └── ModelUnavailableError        known, but cannot be used here (reason says why)
    │       └── ChecksumMismatchError    the file is not the pinned one
    ├── GenerationError
    │   ├── ContextWindowExceededError   prompt does not fit; raised before generating
    │   ├── InvalidOutputError           output failed the schema or a feature's check
    │   ├── GenerationCancelledError     the caller cancelled a running generation
    │   ├── ConcurrentRequestsError      the session (or, on this thread, the model) is already busy;
    │   │                                also an InputError, so older handlers still catch it
    │   └── ToolCallError                a tool the model called raised; ``tool`` names it, the cause is chained
    ├── PrivacyError
    │   ├── PolicyError                  the privacy config is invalid (file and field named)
    │   ├── MustStayOnDeviceError        the policy keeps this request on the device
    │   └── ConsentRequiredError         a third party would see the text and the user has not agreed
    ├── RoutingError
    │   ├── RouterConfigError            the router config is invalid (file and field named)
    │   └── TierUnavailableError         a tier could not serve (unreachable, refused, rate-limited)
    │       └── InvalidTierOutputError   an off-device tier answered, but broke the request's JSON schema
    ├── IndexStoreError                  the search index file cannot be opened or used
    │   └── IndexBusyError               another writer holds the index (``path``, ``waited``)
    └── CloudError
        ├── AttestationError             a node failed verification; it is not used
        ├── TransparencyLogError         the log's signature, proofs or history do not check out
        │   └── LogUnreachableError      the log could not be read at all (network, HTTP 5xx); nothing failed a check
        ├── EnvelopeError                a sealed message failed to open (tampered, replayed, expired, truncated)
        ├── NodeRejectedError            a node refused a request (the reason stays inside the envelope)
        ├── RequestTooLargeError         the sealed request is over the relay's or a node's body limit (``limit``)
        └── NoNodeAvailableError         no verified node answered; ``attempts`` says what was tried
            └── CloudDeadlineError       no answer within the request's overall deadline (``deadline``)

The CLI shows any of these as one line on stderr with a non-zero exit.
"""

from __future__ import annotations


class TetherError(Exception):
    """Base class: catch this to handle every Tether failure."""


class InputError(TetherError, ValueError):
    """The input cannot be used: empty, malformed, not UTF-8, missing fields."""


class SettingError(TetherError, ValueError):
    """An environment setting (``TETHER_*``) holds a value Tether cannot use."""

    def __init__(self, name: str, value: str, accepts: str):
        self.name = name
        self.value = value
        super().__init__(f"${name} is {value!r}; it must be {accepts}")


class ModelError(TetherError):
    pass


class UnknownModelError(ModelError, KeyError):
    def __init__(self, name: str, known: list[str]):
        self.name = name
        self.known = known
        super().__init__(name)

    def __str__(self) -> str:
        shown = self.name if len(self.name) <= 80 else self.name[:80] + "…"
        if self.name.startswith("hf:"):  # meant the Hub: the catalog list would not help
            return f"unknown model {shown!r}: name a Hugging Face file as hf:owner/repo/file.gguf[@revision]"
        return f"unknown model {shown!r}; known models: {', '.join(self.known)}, or a path to a .gguf file"


class ModelUnavailableError(ModelError):
    """The model exists in the catalog but cannot run here; ``reason`` says why."""

    def __init__(self, name: str, reason: str):
        self.name = name
        self.reason = reason
        super().__init__(f"model {name!r} is unavailable: {reason}")


class ChecksumMismatchError(ModelUnavailableError):
    def __init__(self, name: str, expected: str, actual: str, path: str):
        self.expected = expected
        self.actual = actual
        self.path = path
        super().__init__(
            name,
            f"sha256 of {path} is {actual[:16]}…, expected {expected[:16]}…; "
            "the file was not used (re-run `tether models pull` to rebuild it)",
        )


class GenerationError(TetherError):
    pass


class ContextWindowExceededError(GenerationError):
    param = "messages"  # the request field to shorten, as OpenAI's API names it

    def __init__(self, prompt_tokens: int, max_new_tokens: int, context_window: int):
        self.prompt_tokens = prompt_tokens
        self.max_new_tokens = max_new_tokens
        self.context_window = context_window
        super().__init__(
            f"prompt is {prompt_tokens} tokens; with {max_new_tokens} tokens reserved for the "
            f"answer it exceeds the {context_window}-token context window"
        )


class InvalidOutputError(GenerationError):
    """The model's output failed validation even after a retry."""

    def __init__(self, message: str, output: str = ""):
        self.output = output
        super().__init__(message)


class GenerationCancelledError(GenerationError):
    def __init__(self) -> None:
        super().__init__("generation was cancelled")


class ConcurrentRequestsError(GenerationError, InputError):
    """A session answers one request at a time; on one thread, a model cannot start a second
    generation while a stream from it is still open (that would wait for itself forever)."""


# Apple's Foundation Models name for the same error, for code ported from it.
ExceededContextWindowSizeError = ContextWindowExceededError


class ToolCallError(GenerationError):
    """A tool raised while the model was using it; the original exception is ``__cause__``
    (also ``underlying_error``, as in Apple's SDK, with ``tool_name``)."""

    def __init__(self, tool: str, cause: BaseException):
        self.tool = tool
        super().__init__(f"tool {tool!r} failed: {type(cause).__name__}: {cause}")

    @property
    def tool_name(self) -> str:
        return self.tool

    @property
    def underlying_error(self) -> BaseException | None:
        return self.__cause__


class EmojiFontUnavailableError(TetherError):
    """No colour emoji font to draw an emoji's PNG with (its SVG needs none)."""


class PrivacyError(TetherError):
    """The privacy guard refused a request or could not run."""


class PolicyError(PrivacyError, ValueError):
    """The privacy config file is missing, unparsable or fails the schema; raised at start-up."""


class MustStayOnDeviceError(PrivacyError):
    """The policy forbids sending this text to ``tier``; ``entity_types`` say which data decided it."""

    def __init__(self, tier: str, entity_types: list[str]):
        self.tier = tier
        self.entity_types = entity_types
        super().__init__(f"this request must stay on the device: the policy keeps {', '.join(entity_types)} "
                         f"off the {tier} tier")


class IndexStoreError(TetherError):
    """The search index file is not a usable index (corrupt, unreadable, or from a newer Tether)."""


class IndexBusyError(IndexStoreError):
    """Another process (or thread) is adding to or removing from the index at ``path``, and this
    writer was told not to wait (``waited`` is 0) or waited ``waited`` seconds in vain. Readers
    never see this: searching does not take the writer lock."""

    def __init__(self, path: str, waited: float = 0.0):
        self.path = path
        self.waited = waited
        how = "" if not waited else f" after waiting {waited:g} s"
        super().__init__(f"the search index at {path} is busy{how}: another writer (such as `tether index add`) is updating it; "
                         "try again when it has finished")


class CloudError(TetherError):
    """The private cloud could not serve a request."""


class AttestationError(CloudError):
    """A node's attestation did not verify; ``reason`` says which check failed."""

    def __init__(self, node_id: str, reason: str):
        self.node_id = node_id
        self.reason = reason
        super().__init__(f"node {node_id} refused: {reason}")


class TransparencyLogError(CloudError):
    """The transparency log cannot be trusted: bad signature, failed proof, or a tree head that went backwards."""


class LogUnreachableError(TransparencyLogError):
    """The log (or the relay mirroring it) could not be read: no connection, a timeout or HTTP 5xx.

    Kept apart from a failed check because an outage is no evidence against nodes already
    verified, while a bad signature or proof is."""


class EnvelopeError(CloudError):
    """A sealed request or response did not open. Deliberately says nothing about why on the node side."""


class NodeRejectedError(CloudError):
    """The node answered with a rejection (bad envelope) or a sealed error."""

    def __init__(self, message: str, status: int | None = None):
        self.status = status
        super().__init__(message)


class NoNodeAvailableError(CloudError):
    def __init__(self, attempts: list[str]):
        self.attempts = attempts
        detail = "; ".join(attempts) if attempts else "no verified nodes in the transparency log"
        super().__init__(f"no private-cloud node could serve the request ({detail})")


class CloudDeadlineError(NoNodeAvailableError):
    """The request's overall deadline passed, across every node tried; ``attempts`` says what was tried."""

    def __init__(self, deadline: float, attempts: list[str]):
        self.deadline = deadline
        self.attempts = attempts
        detail = "; ".join(attempts) if attempts else "no node answered"
        CloudError.__init__(self, f"the private cloud did not answer within the request's {deadline:g} s deadline "
                                  f"({detail})")


class RequestTooLargeError(CloudError):
    """The sealed request is larger than the relay or a node accepts; no node would take it, so it is not retried."""

    def __init__(self, size: int | None, limit: int | None, where: str = "the relay"):
        self.size = size
        self.limit = limit
        self.where = where
        sealed = f" ({size:,} bytes sealed)" if size is not None else ""
        most = f"at most {limit:,} bytes" if limit is not None else "less"
        verb = "accept" if where.startswith("the nodes") else "accepts"
        super().__init__(f"the request is too large for the private cloud{sealed}: {where} {verb} {most}; "
                         "shorten the prompt or send it in parts")


class ConsentRequiredError(PrivacyError):
    """The request would go to a tier that needs consent (a third party; the private cloud if the
    privacy config says so) and consent was not given (or was refused)."""

    def __init__(self, tier: str = "third_party", reason: str = "no consent given"):
        self.tier = tier
        self.reason = reason
        super().__init__(f"sending this request to the {tier} tier needs the user's consent: {reason}")


class RoutingError(TetherError):
    """The router could not place or serve a request."""


class RouterConfigError(RoutingError, ValueError):
    """The router config file is missing, unparsable or fails the schema; raised at start-up."""


class TierUnavailableError(RoutingError):
    """A tier could not serve the request; ``reason`` says why (and ``status`` the HTTP status, if any)."""

    def __init__(self, tier: str, reason: str, status: int | None = None):
        self.tier = tier
        self.reason = reason
        self.status = status
        super().__init__(f"the {tier} tier is unavailable: {reason}")


class InvalidTierOutputError(TierUnavailableError):
    """An off-device tier answered, but its answer broke the request's JSON schema (``reason`` says
    how), and nothing can answer instead: every tier tried broke it and the policy forbids a device
    answer, or a stream's text was already sent. The gateway answers it as 502 ``invalid_output``,
    as it does an ``InvalidOutputError``."""

    def __init__(self, tier: str, reason: str):
        self.tier, self.reason, self.status = tier, reason, None
        RoutingError.__init__(self, f"the {tier} tier gave no valid answer: {reason}")
