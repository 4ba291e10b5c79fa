"""The privacy guard: everything that leaves the device passes through ``PrivacyGuard.prepare``.

For a tier it detects personal data, applies the policy per entity type, and
returns the exact payload that would leave, or a verdict that the request must
stay on the device. ``scan`` does that for every tier at once; it is what
``tether privacy scan`` and a consent prompt show.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from tether.errors import InputError, MustStayOnDeviceError
from tether.privacy.detect import Detector, Span, check_text, get_detector
from tether.privacy.policy import TIERS, Action, PrivacyConfig, Tier, load_config
from tether.privacy.pseudonymize import PseudonymSession
from tether.text import MAX_INPUT_CHARS


class EntityCount(BaseModel):
    entity_type: str
    count: int
    action: Action


class Outbound(BaseModel):
    """What one tier would receive. ``payload`` is ``None`` when the text must stay on the device."""

    model_config = ConfigDict(frozen=True)

    tier: Tier
    payload: str | None
    leaves_device: bool
    must_stay_on_device: bool
    stay_reasons: list[str]
    consent_required: bool
    entities: list[EntityCount]

    def require_payload(self) -> str:
        """The payload, or ``MustStayOnDeviceError`` when the policy keeps this text local."""
        if self.payload is None:
            raise MustStayOnDeviceError(self.tier, self.stay_reasons)
        return self.payload


class ScanReport(BaseModel):
    """Everything found in a text and what each tier would see."""

    chars: int
    entities: list[Span]
    tiers: list[Outbound]

    def tier(self, tier: Tier) -> Outbound:
        return next(t for t in self.tiers if t.tier == tier)


_STRICTNESS: dict[Action, int] = {"allow": 0, "pseudonymize": 1, "keep_on_device": 2}


def _check_tier(tier: str) -> Tier:
    if tier not in TIERS:
        raise InputError(f"unknown tier {tier!r}; tiers: {', '.join(TIERS)}")
    return tier  # type: ignore[return-value]


class PrivacyGuard:
    """Applies a ``PrivacyConfig`` to text bound for a tier.

    The analyzer behind it is shared per detection config, so creating guards is
    cheap; the spaCy model loads once per process.
    """

    def __init__(self, config: PrivacyConfig | None = None, *, recognizers: Sequence[object] = ()):
        self.config = config or PrivacyConfig()
        self.detector: Detector = (Detector(self.config.detection, recognizers=recognizers) if recognizers
                                   else get_detector(self.config.detection))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str] | None = None) -> PrivacyGuard:
        """Load the policy (see ``load_config`` for the search order); ``PolicyError`` if invalid."""
        return cls(load_config(path))

    def session(self) -> PseudonymSession:
        """A fresh mapping for one conversation; keep it to restore the responses."""
        return PseudonymSession(self.config.pseudonymize.style)

    def detect(self, text: str | bytes, *, tier: Tier = "third_party") -> list[Span]:
        """What the guard treats as personal in text bound for ``tier``: for an off-device tier
        with ``detection.recall_first`` on, the recall-first candidates are included."""
        return self._detect(_as_text(text), _check_tier(tier))

    def _detect(self, text: str, tier: Tier) -> list[Span]:
        return self.detector.detect(text, recall_first=self.config.detection.recall_first and tier != "device")

    def prepare(self, text: str | bytes, tier: Tier, *, session: PseudonymSession,
                spans: list[Span] | None = None) -> Outbound:
        """The exact payload ``tier`` would receive, pseudonymized with ``session``."""
        tier = _check_tier(tier)
        text = _as_text(text)
        if spans is None:
            spans = self._detect(text, tier)
        spans = [self._strictest(s, tier) for s in spans]
        actions = {s.entity_type: self.config.action(s.entity_type, tier) for s in spans}
        counts = Counter(s.entity_type for s in spans)
        entities = [EntityCount(entity_type=e, count=n, action=actions[e]) for e, n in sorted(counts.items())]
        local = tier == "device"
        stay = [] if local else sorted(e for e, a in actions.items() if a == "keep_on_device")
        if stay:
            payload = None
        else:
            to_replace = {e for e, a in actions.items() if a == "pseudonymize"}
            payload = session.pseudonymize(text, spans, entity_types=to_replace) if (to_replace or not local) else text
        return Outbound(tier=tier, payload=payload, leaves_device=not local and payload is not None,
                        must_stay_on_device=bool(stay), stay_reasons=stay,
                        consent_required=self.config.requires_consent(tier), entities=entities)

    def reserve(self, text: str, tier: Tier, *, session: PseudonymSession, spans: list[Span]) -> None:
        """``session.reserve`` for one of several texts of a request bound for ``tier`` (a system
        prompt and a prompt), with the full names this tier's policy replaces. Call it for every
        text before ``prepare`` takes any of them."""
        tier = _check_tier(tier)
        names = [] if self.config.action("PERSON", tier) != "pseudonymize" else \
            [s for s in (self._strictest(s, tier) for s in spans) if s.entity_type == "PERSON"]
        session.reserve(text, names)

    def _strictest(self, span: Span, tier: Tier) -> Span:
        """``span`` typed by the strictest action among the detections merged into it: a password or
        a codename kept on the device wins over a name, a name pseudonymized over an allowed place."""
        if not span.covers:
            return span
        own = _STRICTNESS[self.config.action(span.entity_type, tier)]
        best = max(span.covers, key=lambda t: _STRICTNESS[self.config.action(t, tier)])
        if _STRICTNESS[self.config.action(best, tier)] <= own:
            return span
        return span.model_copy(update={"entity_type": best,
                                       "covers": tuple(sorted({*span.covers, span.entity_type} - {best}))})

    def scan(self, text: str | bytes, *, session: PseudonymSession | None = None) -> ScanReport:
        """Detect once, then show what every tier would receive (a preview: nothing is sent). At most
        ``MAX_INPUT_CHARS``, as every feature takes: a 1 MB preview took a minute and answered with
        megabytes (``prepare`` itself reads longer text, for search excerpts)."""
        text = _as_text(text)
        if len(text) > MAX_INPUT_CHARS:
            raise InputError(f"text is {len(text):,} characters; a scan previews at most {MAX_INPUT_CHARS:,}: "
                             "scan it in parts")
        spans = self._detect(text, "third_party")  # the widest set; the device tier sends nothing
        session = session or self.session()
        return ScanReport(chars=len(text), entities=spans,
                          tiers=[self.prepare(text, t, session=session, spans=spans) for t in TIERS])


def _as_text(text: str | bytes) -> str:
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"text is not valid UTF-8 (byte {exc.start})") from None
    check_text(text)
    return text
