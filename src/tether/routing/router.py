"""Decide per request where it runs, run it there, restore it, and log the decision.

Rules, in order; the first that applies decides, and the decision says which
rule and what values it saw:

1. ``preference``  the user chose device-only (this wins over a tier the caller names)
2. ``requested``   the caller named a tier (one that needs consent still needs it)
3. ``no_cloud``    no off-device tier is configured
4. ``offline``     the device has no network
5. ``memory``      the device model is not loaded and would not fit in the memory free now
6. ``context``     the prompt does not fit the device model's context window
7. ``busy`` / ``low_power``  the device should not run it now
8. ``cascade``     the feature is answered on the device first; the learned escalation model
                   then reads the answer and sends it on if the cloud would do clearly better
                   (a request with its own ``check``, such as a notification summary's
                   faithfulness, is sent on only when that check fails)
9. ``difficulty``  the learned scorer predicts the device answer is worse than the cloud's
10. ``consent``    the only cloud needs consent and the user has not agreed. A third party
                   always needs it, the private cloud when the privacy config's
                   ``tiers.private_cloud.requires_consent`` says so. When the device cannot
                   answer at all (rules 5 and 6) and consent was not asked for,
                   ``ConsentRequiredError`` asks instead.

``privacy`` overrides every rule that would send the text away: the privacy
guard scans a prompt only once some rule wants it off the device (a request
that stays never pays for the scan), and if the policy keeps it local the
decision is ``privacy``, with the rule that wanted it away in its values.

Off the device, text is pseudonymized by the privacy guard first and restored
after; the decision carries that scan, so the text is scanned once per request.
A failing tier falls back (third party → private cloud → device), and an
answer the device gives instead of the cloud is marked ``degraded``. When the
request carries a JSON schema, an off-device answer that breaks it (once
restored, against the caller's own schema) counts as its tier failing, as the
device's grammar holds the device to it; a truncated answer is not judged.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator

from tether.errors import (ConsentRequiredError, GenerationCancelledError, InputError, InvalidOutputError,
                           InvalidTierOutputError, MustStayOnDeviceError, RouterConfigError, RoutingError,
                           TierUnavailableError)
from tether.models.engine import Message, Sampling
from tether.routing.config import RouterConfig
from tether.routing.ledger import IDENTIFIER
from tether.routing.state import DeviceState
from tether.routing.tiers import DEVICE, PRIVATE_CLOUD, THIRD_PARTY, DeviceTier, TierResult

TIERS = (DEVICE, PRIVATE_CLOUD, THIRD_PARTY)
LEDGER_BUSY_TIMEOUT = 5.0  # seconds a ledger row waits for another writer once the answer is in hand
MIN_ANSWER_TOKENS = 256  # room the context rule keeps for an answer whose length nobody set
# At most what a chat template adds around the messages (role markers, a default system prompt). With it
# a prompt whose UTF-8 bytes fit the room surely fits unless the tokenizer can spend more than a token
# per byte, which a byte-level BPE cannot: such a prompt is not counted. A char-based bound did not
# hold (Hindi or Tamil take about a token a character in Qwen's vocabulary, emoji two).
_TEMPLATE_TOKENS = 128
_JSON_ESCAPE = re.compile(r'\\(?:u[0-9a-fA-F]{4}|["\\/bfnrt])')
_BROKE_SCHEMA = "schema"  # a failed attempt's mark for an answer that broke the JSON schema (else its status)
_PROBLEM_CHARS = 300  # of a schema problem in a note (jsonschema's message can quote the whole answer)


def _schema_problem(req: "RouteRequest", text: str, finish_reason: str | None) -> str | None:
    """Why an answer breaks the caller's JSON schema, or None. Off the device ``text`` is the restored
    answer, checked against ``req.json_schema`` (the caller's, not the pseudonymized one sent). A
    truncated answer (``length``) is not judged: the caller chose the budget. Nor is an answer to a
    request with stop sequences: a stop may cut it anywhere, and an OpenAI-compatible tier reports
    that cut as "stop", like a finished answer."""
    if req.json_schema is None or finish_reason == "length" or req.generation().stop:
        return None
    from tether.models.json_schema import violation

    problem = violation(req.json_schema, text)
    if problem is not None and len(problem) > _PROBLEM_CHARS:
        problem = problem[:_PROBLEM_CHARS - 1] + "…"
    return problem


def _blank_escapes(text: str) -> str:
    """JSON text with each escape (\\n, \\", \\u00e9…) as spaces of the same length, so offsets hold."""
    return _JSON_ESCAPE.sub(lambda m: " " * len(m.group()), text)


@dataclass
class RouteRequest:
    prompt: str
    instructions: str | None = None
    kind: str = "other"  # task type for the scorers: chat, gsm8k (math), writing, feature, other; or auto
    feature: str = "chat"  # for the ledger and the cascade config
    max_tokens: int = 256
    tier: str = "auto"
    consent: bool | None = None  # per-request consent for a third party
    json_schema: dict[str, Any] | None = None
    # check(answer, cut): e.g. a faithfulness check; in a cascade it alone decides escalation. ``cut``: the
    # answer ran out of max_tokens, so a feature can drop the unfinished part before judging it. True
    # keeps the answer; False, or a string saying what is wrong with it (shown in the route), sends it on
    check: Callable[[str, bool], bool | str] | None = None
    kind_text: str | None = None  # what ``kind="auto"`` looks at (default: the prompt), e.g. the last chat turn
    sampling: Sampling | None = None  # the caller's (temperature, top_p, seed, stop); None: greedy, max_tokens
    # max_tokens is a default nobody asked for: on the device it shrinks to what the prompt leaves
    # of the window, and the context rule only keeps MIN_ANSWER_TOKENS of room for it
    fit_window: bool = False
    kind_inferred: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str):
            raise InputError(f"the prompt must be text, not {type(self.prompt).__name__}")
        if not self.prompt.strip():
            raise InputError("the prompt is empty")
        if not isinstance(self.fit_window, bool):
            raise InputError(f"fit_window is True or False, not {self.fit_window!r:.40}")
        if self.consent is not None and not isinstance(self.consent, bool):  # "no" must never read as yes
            raise InputError(f"consent is True, False or None, not {self.consent!r:.40}")
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int):
            raise InputError(f"max_tokens must be a whole number, not {self.max_tokens!r:.40}")
        if self.sampling is not None and not isinstance(self.sampling, Sampling):
            raise InputError(f"sampling must be a tether.Sampling, not {type(self.sampling).__name__}")
        if self.json_schema is not None:
            if not isinstance(self.json_schema, dict):
                raise InputError(f"json_schema must be a JSON object, not {type(self.json_schema).__name__}")
            try:
                json.dumps(self.json_schema)
            except (TypeError, ValueError) as exc:
                raise InputError(f"json_schema cannot be written as JSON: {exc}") from None
            from tether.models.json_schema import check_schema

            check_schema(self.json_schema)  # every tier's answer is checked against it
        if self.kind == "math":
            self.kind = "gsm8k"
        elif self.kind == "auto":
            from tether.routing.kinds import infer_kind

            self.kind, self.kind_inferred = infer_kind(self.kind_text or self.prompt), True
        if self.tier != "auto" and self.tier not in TIERS:
            raise InputError(f"unknown tier {self.tier!r}; use auto, {', '.join(TIERS)}")
        if not IDENTIFIER.fullmatch(self.feature):
            raise InputError(f"feature must be a short lowercase name (it goes into the ledger), not {self.feature[:60]!r}")
        if self.sampling is not None:
            self.max_tokens = self.sampling.max_tokens
        if self.max_tokens < 1:
            raise InputError("max_tokens must be at least 1")

    def generation(self) -> Sampling:
        return self.sampling or Sampling.greedy(self.max_tokens)


@dataclass
class Prepared:
    """What the privacy guard made of a prompt for one off-device tier. It holds the
    pseudonym mapping, so it lives in device memory only and is never logged."""

    tier: str
    spans: list[Any]
    session: Any
    outbound: Any
    instructions: str | None = None  # the system text as it may leave (pseudonymized with the same session)
    json_schema: dict[str, Any] | None = None  # the schema as it may leave
    stop: tuple[str, ...] = ()  # the stop sequences as they may leave

    def messages(self) -> list[Message]:
        """What the tier receives: the guarded instructions and prompt."""
        msgs = [Message("system", self.instructions)] if self.instructions else []
        return msgs + [Message("user", self.outbound.payload)]

    def sampling(self, sampling: Sampling) -> Sampling:
        return replace(sampling, stop=self.stop)

    def restore(self, text: str) -> str:
        """Placeholders back in ``text``; a JSON answer is restored value by value, so an original
        with a line break or a quote still gives valid JSON."""
        if self.json_schema is not None:
            try:
                data = json.loads(text)
            except ValueError:
                pass
            else:
                return json.dumps(_restore_strings(data, self.session.restore), ensure_ascii=False)
        return self.session.restore(text)


@dataclass
class Decision:
    tier: str
    rule: str
    reason: str
    values: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0  # time the decision itself took (privacy scan and scorer included)
    prepared: Prepared | None = field(default=None, repr=False, compare=False)  # the off-device payload

    def explain(self) -> str:
        seen = ", ".join(f"{k}={_fmt(v)}" for k, v in self.values.items())
        return f"{self.tier} ({self.rule}): {self.reason}" + (f" [{seen}]" if seen else "")


def _restore_strings(value: Any, restore: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return restore(value)
    if isinstance(value, list):
        return [_restore_strings(v, restore) for v in value]
    if isinstance(value, dict):
        return {restore(k): _restore_strings(v, restore) for k, v in value.items()}
    return value


@dataclass
class RoutedResponse:
    text: str
    decision: Decision
    tier: str  # where it was finally served
    model: str
    prompt_tokens: int
    completion_tokens: int
    latency: float
    degraded: bool = False
    escalated: bool = False
    notes: list[str] = field(default_factory=list)
    mean_logprob: float | None = None
    device_tokens: int = 0  # of the token counts, those a cascade spent on the device beyond the answer
    # (a discarded device answer, self-consistency samples)
    finish_reason: str = "stop"  # "length" when the answer hit max_tokens
    # tokens off-device tiers were paid for answers the router rejected (they broke the JSON schema),
    # by tier: in the ledger's cost and energy, not in the token counts
    rejected_tokens: dict[str, int] = field(default_factory=dict)

    def explain(self) -> str:
        """The decision and what happened after it (escalation, fallback), on one line."""
        return "; ".join([self.decision.explain(), *self.notes])


@dataclass
class _Spent:
    """What a request has used so far, for the ledger row of one that fails: its tokens in all, and
    by the tier that ran them (for the cost). ``tier`` is the tier tried last."""

    tier: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    by_tier: dict[str, int] = field(default_factory=dict)
    degraded: bool = False

    def add(self, tier: str, prompt_tokens: int, completion_tokens: int) -> None:
        self.tier = tier
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        self.by_tier[tier] = self.by_tier.get(tier, 0) + prompt_tokens + completion_tokens


def sample_seed(prompt: str, i: int) -> int:
    """The seed of a prompt's ``i``-th self-consistency sample."""
    return (int(hashlib.sha256(prompt.encode("utf-8", "replace")).hexdigest(), 16) + i) % 2**31


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


class Router:
    def __init__(self, config: RouterConfig | None = None, *, device: Any = None, private_cloud: Any = None,
                 third_party: Any = None, guard: Any = None, state: DeviceState | None = None, scorer: Any = None,
                 escalation: Any = None, ledger: Any = None):
        self.config = config or RouterConfig()
        self.device = device or DeviceTier(self.config.device_model)
        self.private_cloud = private_cloud
        self.third_party = third_party
        self.state = state or DeviceState()
        self._guard = guard
        self._scorer = scorer
        self._escalation = escalation
        self.ledger = ledger
        self._privacy_config: Any = None
        # Instructions, schemas and stops repeat from request to request: scan each text once per tier.
        self._cached_spans = functools.lru_cache(maxsize=64)(lambda text, tier: self.guard.detect(text, tier=tier))

    @classmethod
    def from_config(cls, config: RouterConfig | None = None, **kwargs: Any) -> "Router":
        """Build the tiers a config names (private cloud client, third-party provider, ledger)."""
        import os

        config = config or RouterConfig.load()
        if "private_cloud" not in kwargs and config.private_cloud:
            from tether.cloud.client import CloudClient
            from tether.routing.tiers import PrivateCloudTier

            pc = config.private_cloud
            kwargs["private_cloud"] = PrivateCloudTier(CloudClient(pc.log_url, pc.relay_url, log_key=pc.log_key, k=pc.k,
                                                                   state_path=pc.state_file(), deadline=pc.deadline))
        if "third_party" not in kwargs and config.third_party:
            from tether.routing.third_party import ThirdPartyTier, check_api_key

            tp = config.third_party
            key = os.environ.get(tp.api_key_env, "").strip() if tp.api_key_env else None
            if tp.api_key_env and not key:
                raise RouterConfigError(f"third_party.api_key_env names ${tp.api_key_env}, which is not set; "
                                        "set it, or drop api_key_env for a provider that needs no key")
            if key:
                check_api_key(key, f"${tp.api_key_env}")  # names the variable, never quotes the key
            kwargs["third_party"] = ThirdPartyTier(tp.base_url, tp.model, key, retries=tp.retries)
        if "ledger" not in kwargs:
            from tether.routing.ledger import Ledger

            kwargs["ledger"] = Ledger(config.ledger)
        router = cls(config, **kwargs)
        if router.can_send_away:
            _ = router.privacy_config  # a broken privacy config fails now, not on the first cloud request
        return router

    # ------------------------------------------------------------- parts

    @property
    def can_send_away(self) -> bool:
        """Whether any tier off the device is configured: without one, no text can leave."""
        return self.private_cloud is not None or self.third_party is not None

    @property
    def guard(self):
        if self._guard is None:
            from tether.privacy.guard import PrivacyGuard

            self._guard = PrivacyGuard.from_file()
        return self._guard

    @property
    def scorer(self):
        if self._scorer is None:
            from tether.routing.difficulty import DifficultyModel

            self._scorer = DifficultyModel.load()
        return self._scorer

    @property
    def escalation(self):
        if self._escalation is None:
            from tether.routing.escalation import EscalationModel

            self._escalation = EscalationModel.load()
        return self._escalation

    @property
    def privacy_config(self):
        """The privacy policy (which tiers need consent), without building the detector."""
        if self._guard is not None:
            return self._guard.config
        if self._privacy_config is None:
            from tether.privacy.policy import load_config

            self._privacy_config = load_config()
        return self._privacy_config

    def needs_consent(self, tier: str) -> bool:
        return tier == THIRD_PARTY or (tier == PRIVATE_CLOUD and self.privacy_config.requires_consent(PRIVATE_CLOUD))

    def _no_consent(self, consent: bool | None) -> str:
        if self.config.consent == "never":  # not the request's answer: no answer could change it
            return 'the saved policy (consent = "never") forbids tiers that need consent'
        return "consent was refused" if consent is False else "consent was not given"

    def _consent(self, req: RouteRequest) -> bool | None:
        return self.config.consent_for(req.consent)

    def _cloud_tier(self, req: RouteRequest) -> tuple[str | None, str]:
        """Which off-device tier an "auto" request may use, or why none."""
        consent = self._consent(req)
        if self.private_cloud is not None:
            if consent is True or not self.needs_consent(PRIVATE_CLOUD):
                return PRIVATE_CLOUD, ""
            return None, f"the private cloud needs consent and {self._no_consent(consent)}"
        tp = self.config.third_party
        if self.third_party is not None and (tp is None or tp.use_for_cloud):
            if consent is True:
                return THIRD_PARTY, ""
            return None, f"the only cloud is a third party and {self._no_consent(consent)}"
        if self.third_party is not None:
            return None, "a third party is configured, but use_for_cloud = false keeps automatic requests from it"
        return None, "no private cloud or third party is configured"

    def threshold(self) -> tuple[float, float]:
        """(threshold on cloud_gain, cloud fraction it was calibrated for)."""
        if self.config.difficulty_threshold is not None:
            return self.config.difficulty_threshold, float("nan")
        fraction = self.config.target_cloud_fraction
        if self.config.preference == "prefer-quality":
            fraction = min(1.0, fraction * 2)
        return self.scorer.threshold_for(fraction), fraction

    def escalate_fraction(self) -> float:
        """The share of cascade answers the escalation model is calibrated to send on (0: never)."""
        fraction = self.config.cascade_escalate_fraction
        return min(1.0, fraction * 2) if self.config.preference == "prefer-quality" else fraction

    # ------------------------------------------------------------- deciding

    def decide(self, req: RouteRequest, *, streaming: bool = False) -> Decision:
        """Where ``req`` runs and why. A stream cannot take back text it has shown, so for
        ``streaming`` requests a cascade feature is decided by the prompt scorer instead."""
        start = time.perf_counter()
        decision = self._decide(req, streaming)
        decision.seconds = time.perf_counter() - start
        return decision

    def _decide(self, req: RouteRequest, streaming: bool = False) -> Decision:
        state = self.state.snapshot()
        consent = self._consent(req)
        if req.tier == DEVICE:
            return Decision(DEVICE, "requested", "the caller asked for the device")
        if self.config.preference == "device-only":
            return Decision(DEVICE, "preference", "the user chose device-only",
                            {"requested": req.tier} if req.tier != "auto" else {})
        # status 404: no retry can help until the config changes (the gateway's 404 tier_not_configured)
        if req.tier == THIRD_PARTY and self.third_party is None:
            raise TierUnavailableError(THIRD_PARTY, "no third-party provider is configured", status=404)
        if req.tier == PRIVATE_CLOUD and self.private_cloud is None:
            raise TierUnavailableError(PRIVATE_CLOUD, "no private cloud is configured", status=404)
        if req.tier in (PRIVATE_CLOUD, THIRD_PARTY) and consent is not True and self.needs_consent(req.tier):
            raise ConsentRequiredError(req.tier, self._no_consent(consent))
        if req.tier == PRIVATE_CLOUD:
            return self._send(req, Decision(PRIVATE_CLOUD, "requested", "the caller asked for the private cloud"))
        if req.tier == THIRD_PARTY:
            return self._send(req, Decision(THIRD_PARTY, "requested",
                                            "the caller asked for the third party, with consent"))

        cloud, why_not = self._cloud_tier(req)
        if cloud is None and "consent" not in why_not:
            return Decision(DEVICE, "no_cloud", why_not)
        if state.offline:
            return Decision(DEVICE, "offline", "the device is offline", state.as_dict())

        # Before the context rule: counting tokens loads the model, which is what may not fit.
        need = self.device.memory_needed_mb() if hasattr(self.device, "memory_needed_mb") else None
        if need:
            free = state.available_memory_mb()
            if need > free:
                return self._to_cloud(req, cloud, why_not, "memory",
                                      "the device model does not fit in the memory free now",
                                      {"needed_mb": round(need), "available_mb": round(free),
                                       "reported": state.memory_available_mb is not None})
        reserve = min(req.max_tokens, MIN_ANSWER_TOKENS) if req.fit_window else req.max_tokens
        room = self.device.context_window - reserve if hasattr(self.device, "context_window") else None
        text = (req.instructions or "") + req.prompt
        if room is not None and len(text.encode("utf-8", "surrogatepass")) + _TEMPLATE_TOKENS > room:
            tokens = self.device.count_tokens(self._messages(req, req.prompt))
            if tokens > room:
                return self._to_cloud(req, cloud, why_not, "context",
                                      "the prompt does not fit the device model's context",
                                      {"prompt_tokens": tokens, "room": room})
        if state.busy:
            return self._to_cloud(req, cloud, why_not, "busy", "the device reported it is busy", state.as_dict())
        if state.low_power:
            return self._to_cloud(req, cloud, why_not, "low_power", "the device is in low-power mode", state.as_dict())

        if req.feature in self.config.cascade and not streaming:
            if req.check is not None:
                return Decision(DEVICE, "cascade", "answered on the device first, escalated if it fails the "
                                "feature's check", {"feature": req.feature})
            return Decision(DEVICE, "cascade", "answered on the device first, escalated if the answer looks unsure",
                            {"feature": req.feature, "kind": self._kind(req),
                             "escalate_fraction": self.escalate_fraction()})

        gain = self.scorer.cloud_gain(req.prompt, req.kind)
        tau, fraction = self.threshold()
        values = {"cloud_gain": gain, "threshold": tau, "kind": self._kind(req)}
        if fraction == fraction:  # not NaN
            values["target_cloud_fraction"] = fraction
        if gain <= tau:
            return Decision(DEVICE, "difficulty", "the cloud model is not predicted to do clearly better", values)
        return self._to_cloud(req, cloud, why_not, "difficulty", "the cloud model is predicted to do clearly better",
                              values)

    @staticmethod
    def _kind(req: RouteRequest) -> str:
        return f"{req.kind} (inferred)" if req.kind_inferred else req.kind

    def _to_cloud(self, req: RouteRequest, cloud: str | None, why_not: str, rule: str, reason: str,
                  values: dict[str, Any]) -> Decision:
        if cloud is None:
            if rule in ("memory", "context") and self._consent(req) is None:
                # The device cannot answer this at all: ask, rather than fail on the device.
                tier = PRIVATE_CLOUD if self.private_cloud is not None else THIRD_PARTY
                raise ConsentRequiredError(tier, f"{reason}, and {why_not}")
            return Decision(DEVICE, "consent", f"{reason}, but {why_not}", {**values, "wanted": rule})
        return self._send(req, Decision(cloud, rule, reason, values))

    def _send(self, req: RouteRequest, wanted: Decision) -> Decision:
        """``wanted`` if the privacy policy lets the prompt go to its tier (with the scan attached,
        so sending does not scan again), else a ``privacy`` decision to stay on the device."""
        prepared = self._prepare(req, wanted.tier)
        if prepared.outbound.payload is None:
            return Decision(DEVICE, "privacy", "the privacy policy keeps this text on the device",
                            {"entities": ",".join(prepared.outbound.stay_reasons), "wanted": wanted.rule,
                             **wanted.values})
        wanted.prepared = prepared
        return wanted

    def _scan_extra(self, name: str, text: str, tier: str) -> list[Any]:
        """Spans in one extra text; the schema's JSON is read as its strings read ("\\nZbigniew" is
        a line break and a name, not the word "nZbigniew"), with each span's text as sent."""
        if name != "json_schema":
            return self._cached_spans(text, tier)
        return [s.model_copy(update={"text": text[s.start:s.end]}) for s in self._cached_spans(_blank_escapes(text), tier)]

    def _prepare(self, req: RouteRequest, tier: str, spans: list[Any] | None = None) -> Prepared:
        """Everything of the request that ``tier`` would receive, as it may receive it: the prompt,
        the instructions (a system message), the JSON schema's text and the stop sequences, all
        pseudonymized with one session. A value found in one of them is marked in the others too,
        and if any must stay on the device, the request stays."""
        from tether.privacy.detect import propagate

        if spans is None:
            spans = self.guard.detect(req.prompt, tier=tier)
        extras: dict[str, str] = {}
        if req.instructions:
            extras["instructions"] = req.instructions
        if req.json_schema is not None:
            extras["json_schema"] = json.dumps(req.json_schema, ensure_ascii=False)
        for i, stop in enumerate(req.generation().stop):
            extras[f"stop{i}"] = stop
        extra_spans = {name: self._scan_extra(name, text, tier) for name, text in extras.items()}
        known = [s for found in extra_spans.values() for s in found]
        if known:
            spans = propagate(list(spans), req.prompt, known=known)
        own = {name: propagate(list(extra_spans[name]), text, known=[*spans, *known]) for name, text in extras.items()}
        session = self.guard.session()
        # Each text is pseudonymized on its own, but their placeholders are chosen knowing them all:
        # the prompt's own "Person 1" never stands for the system prompt's person.
        for text, found in [(req.prompt, spans), *((extras[name], own[name]) for name in extras)]:
            self.guard.reserve(text, tier, session=session, spans=found)
        outbound = self.guard.prepare(req.prompt, tier, session=session, spans=spans)
        sent: dict[str, str] = {}
        for name, text in extras.items():
            if outbound.payload is None:
                break
            out = self.guard.prepare(text, tier, session=session, spans=own[name])
            if out.payload is None:
                outbound = out  # its stay_reasons say which data decided it
            else:
                sent[name] = out.payload
        schema = None
        if outbound.payload is not None and "json_schema" in sent:
            try:
                schema = json.loads(sent["json_schema"])
            except ValueError:  # a placeholder cannot break JSON; if it ever did, nothing leaves
                outbound = outbound.model_copy(update={"payload": None, "leaves_device": False,
                                                       "must_stay_on_device": True, "stay_reasons": ["JSON_SCHEMA"]})
        stops = tuple(sent[k] for k in extras if k.startswith("stop") and k in sent)
        return Prepared(tier, spans, session, outbound, sent.get("instructions"), schema, stops)

    # ------------------------------------------------------------- running

    @staticmethod
    def _messages(req: RouteRequest, prompt: str) -> list[Message]:
        """What the device sees; an off-device tier gets ``Prepared.messages()``."""
        msgs = [Message("system", req.instructions)] if req.instructions else []
        return msgs + [Message("user", prompt)]

    def respond(self, req: RouteRequest, decision: Decision | None = None) -> RoutedResponse:
        """Run ``req`` where ``decision`` (made now if not given) says, and record it in the ledger:
        also when it fails after the decision (reason ``<rule>.failed``, or ``<rule>.abandoned`` for a
        cancelled one), with the tokens it spent by then."""
        start = time.perf_counter()
        decision = decision or self.decide(req)
        spent = _Spent(decision.tier)
        try:
            response = self._respond(req, decision, start, spent)
        except Exception as exc:
            self._record_failed(req, decision, spent, start, "abandoned" if isinstance(exc, GenerationCancelledError)
                                else "failed")
            raise
        self._record(req, response)
        return response

    def _respond(self, req: RouteRequest, decision: Decision, start: float, spent: _Spent) -> RoutedResponse:
        sampling = req.generation()
        device_sampling = self._fit(req, sampling)
        notes: list[str] = []
        degraded = escalated = False
        device_tokens = 0
        rejected: dict[str, int] = {}
        tier = decision.tier

        if tier == DEVICE and decision.rule == "cascade":
            result = self.device.complete(self._messages(req, req.prompt), device_sampling,
                                          json_schema=req.json_schema, logprobs=True)
            spent.add(DEVICE, result.prompt_tokens, result.completion_tokens)
            cloud, why_not = self._cloud_tier(req)
            why, sampled = self._unsure(req, result, decision, cloud_missing=why_not if cloud is None else None)
            spent.add(DEVICE, 0, sampled)
            result.completion_tokens += sampled  # usage counts the samples, like reasoning tokens
            device_tokens = sampled
            if why and cloud is None:
                notes.append(f"cascade: device answer kept ({why}), but {why_not}")
            elif why:
                escalation = self._send(req, Decision(cloud, "cascade", why))
                if escalation.tier == DEVICE:
                    notes.append(f"cascade: device answer kept ({why}), the privacy policy keeps this text here")
                else:
                    first = result
                    result, tier, degraded, more, rejected = self._run_off_device(req, escalation, sampling, spent,
                                                                                  device_answer=first)
                    if tier == DEVICE:  # every cloud failed: the answer in hand stands, and nothing ran twice
                        notes.append(f"cascade: escalation failed ({why}); device answer kept")
                    else:
                        notes.append(f"cascade: device answer escalated ({why})")
                        escalated = True
                        device_tokens = first.prompt_tokens + first.completion_tokens
                        result.prompt_tokens += first.prompt_tokens
                        result.completion_tokens += first.completion_tokens
                    notes += more
        elif tier == DEVICE:
            result = self.device.complete(self._messages(req, req.prompt), device_sampling, json_schema=req.json_schema)
            spent.add(DEVICE, result.prompt_tokens, result.completion_tokens)
        else:
            result, tier, degraded, notes, rejected = self._run_off_device(req, decision, sampling, spent)
        if tier == DEVICE:
            result = self._held_to_schema(req, result, device_sampling, spent)

        return RoutedResponse(result.text, decision, tier, result.model, result.prompt_tokens,
                              result.completion_tokens, time.perf_counter() - start, degraded, escalated, notes,
                              result.mean_logprob, device_tokens, result.finish_reason or "stop", rejected)

    def _unsure(self, req: RouteRequest, result: TierResult, decision: Decision,
                cloud_missing: str | None = None) -> tuple[str | None, int]:
        """Why the device's answer should go to the cloud instead (None: keep it), and how many
        tokens the device spent on self-consistency samples to tell. Cheap checks come first.
        ``cloud_missing`` says why no cloud can take the answer now: then no sample is worth drawing."""
        if req.json_schema is not None:  # a cut answer is judged too: the cloud may finish it
            problem = _schema_problem(req, result.text, None)
            if problem is not None:
                return f"output broke the JSON schema: {problem}", 0
        if req.check is not None:
            # The feature's own check (a notification summary's faithfulness) knows what the learned
            # score only guesses: it alone decides, so a good answer never leaves for a guess.
            verdict = req.check(result.text, result.finish_reason == "length")
            if verdict is True:
                return None, 0
            return (verdict if isinstance(verdict, str) and verdict else "the feature's check failed"), 0
        floor = self.config.cascade_min_logprob
        if floor is not None and result.mean_logprob is not None and result.mean_logprob < floor:
            return f"mean logprob {result.mean_logprob:.2f} < {floor}", 0
        fraction = self.escalate_fraction()
        if fraction <= 0:
            return None, 0
        from tether.routing.escalation import MATH, DeviceAnswer, disagreement

        answer = DeviceAnswer(result.text, result.mean_logprob, result.min_logprob, result.finish_reason,
                              result.completion_tokens, req.max_tokens)
        tau, sampled = self.escalation.threshold_for(fraction), 0
        if req.kind == MATH and self.config.cascade_samples > 0:
            skipped = f"no cloud could take the answer: {cloud_missing}" if cloud_missing else None
            if skipped is None:
                low, high = self.escalation.gain_range(req.prompt, req.kind, answer)
                if not low <= tau < high:  # only then can a sample change the decision
                    skipped = "no sample could change the decision"
            if skipped:
                decision.values.update(samples=0, samples_skipped=skipped)
            else:
                samples, sampled = self._samples(req)
                answer = replace(answer, samples=samples)
                decision.values.update(samples=len(samples), samples_disagree=disagreement(answer))
        gain = self.escalation.cloud_gain(req.prompt, req.kind, answer)
        decision.values.update(escalation_score=gain, escalation_threshold=tau)
        if gain > tau:
            return f"escalation score {gain:.3f} > {tau:.3f}, calibrated to escalate {fraction:.0%}", sampled
        return None, sampled

    def _held_to_schema(self, req: RouteRequest, result: TierResult, sampling: Sampling, spent: _Spent) -> TierResult:
        """A device answer that breaks what the grammar cannot force (number bounds, ``uniqueItems``…)
        gets one sampled retry; a second break is ``InvalidOutputError``, never returned as valid."""
        problem = _schema_problem(req, result.text, result.finish_reason)
        if problem is None:
            return result
        again = self.device.complete(self._messages(req, req.prompt), sampling.retry(), json_schema=req.json_schema)
        spent.add(DEVICE, again.prompt_tokens, again.completion_tokens)
        problem = _schema_problem(req, again.text, again.finish_reason)
        if problem is not None:
            raise InvalidOutputError(f"the device's answer broke the JSON schema, also on a retry: {problem}", again.text)
        again.completion_tokens += result.completion_tokens  # both were generated
        return again

    def _fit(self, req: RouteRequest, sampling: Sampling) -> Sampling:
        """``sampling`` for the device: with ``fit_window``, its budget cut to what the prompt leaves."""
        if not req.fit_window or not hasattr(self.device, "context_window"):
            return sampling
        left = self.device.context_window - self.device.count_tokens(self._messages(req, req.prompt))
        return replace(sampling, max_tokens=max(1, min(sampling.max_tokens, left)))

    def _samples(self, req: RouteRequest) -> tuple[tuple[str, ...], int]:
        """``cascade_samples`` more device answers at temperature 0.7 (seeded by the prompt, so a
        request is scored the same way twice) and their token count."""
        texts, tokens = [], 0
        for i in range(self.config.cascade_samples):
            out = self.device.complete(self._messages(req, req.prompt),
                                       Sampling.random(0.7, 0.95, sample_seed(req.prompt, i), req.max_tokens))
            texts.append(out.text)
            tokens += out.completion_tokens
        return tuple(texts), tokens

    def _attempts(self, req: RouteRequest, decision: Decision, notes: list[str]) -> Iterator[tuple[str, Any, Prepared]]:
        """The off-device tiers to try in order (the chosen one; after a third party, the private
        cloud), each with its privacy-checked payload. The decision's scan is reused."""
        first = decision.prepared or self._prepare(req, decision.tier)
        order = [decision.tier]
        if decision.tier == THIRD_PARTY and self.private_cloud is not None:
            order.append(PRIVATE_CLOUD)
        for name in order:
            prepared = first if name == first.tier else self._prepare(req, name, spans=first.spans)
            try:
                prepared.outbound.require_payload()
            except MustStayOnDeviceError as exc:
                notes.append(f"{name}: {exc}")
                continue
            yield name, (self.private_cloud if name == PRIVATE_CLOUD else self.third_party), prepared

    def _give_up(self, tier: str, notes: list[str], statuses: list[int | str | None]) -> None:
        """Every off-device tier failed: answer on the device (marked degraded) if the policy allows.
        Otherwise the error carries the failed attempts' ``status`` when they all had the same one
        (413: too large for the private cloud, 504: past its deadline), so the gateway can answer it;
        when every one answered but broke the JSON schema, it is an ``InvalidTierOutputError``."""
        if not self.config.allow_degraded:
            reason = "; ".join(notes) + "; the policy forbids answering on the device instead"
            if statuses and all(s == _BROKE_SCHEMA for s in statuses):
                raise InvalidTierOutputError(tier, reason)
            status = statuses[0] if statuses and all(s == statuses[0] for s in statuses) else None
            raise TierUnavailableError(tier, reason, status=status if isinstance(status, int) else None)
        notes.append("answered on the device instead (degraded)")

    def _run_off_device(self, req: RouteRequest, decision: Decision, sampling: Sampling, spent: _Spent,
                        device_answer: TierResult | None = None
                        ) -> tuple[TierResult, str, bool, list[str], dict[str, int]]:
        """Pseudonymize, run on the decision's tier, restore; fall back down the tiers if one fails.
        An answer that breaks the request's JSON schema is its tier failing (that tier is not asked
        again: it was paid once; its tokens come back by tier, for the ledger's cost, and go into
        ``spent``). A cascade passes the ``device_answer`` it already has: the fallback then keeps
        it rather than generating the same answer again."""
        notes: list[str] = []
        statuses: list[int | str | None] = []  # of the attempts that failed
        rejected: dict[str, int] = {}
        for name, backend, prepared in self._attempts(req, decision, notes):
            spent.tier = name
            try:
                result = backend.complete(prepared.messages(), prepared.sampling(sampling),
                                          json_schema=prepared.json_schema)
            except TierUnavailableError as exc:
                notes.append(f"{name} failed: {exc.reason}")
                statuses.append(exc.status)
                continue
            result.text = prepared.restore(result.text)
            problem = _schema_problem(req, result.text, result.finish_reason)
            if problem is not None:
                notes.append(f"{name} failed: its answer broke the JSON schema: {problem}")
                statuses.append(_BROKE_SCHEMA)
                rejected[name] = result.prompt_tokens + result.completion_tokens
                spent.add(name, result.prompt_tokens, result.completion_tokens)
                continue
            return result, name, False, notes, rejected
        self._give_up(decision.tier, notes, statuses)
        spent.degraded = True
        if device_answer is not None:
            return device_answer, DEVICE, True, notes, rejected
        spent.tier = DEVICE
        result = self.device.complete(self._messages(req, req.prompt), self._fit(req, sampling),
                                      json_schema=req.json_schema)
        spent.add(DEVICE, result.prompt_tokens, result.completion_tokens)
        return result, DEVICE, True, notes, rejected

    def _record(self, req: RouteRequest, r: RoutedResponse) -> None:
        """The ledger row of an answered request. Its tokens are priced at the tier that answered,
        except those the device spent beyond the answer and those of answers the router rejected."""
        on_tier = r.prompt_tokens + r.completion_tokens - r.device_tokens
        priced: dict[str, int] = {}
        for tier, tokens in ((r.tier, on_tier), (DEVICE, r.device_tokens), *r.rejected_tokens.items()):
            priced[tier] = priced.get(tier, 0) + tokens
        self._write(req, r.decision, r.tier, r.decision.rule, r.latency, r.prompt_tokens, r.completion_tokens,
                    priced, r.degraded, r.escalated, r.notes)

    def _record_failed(self, req: RouteRequest, decision: Decision, spent: _Spent, start: float, outcome: str) -> None:
        """The ledger row of a request that ended without its answer (``outcome``: failed, cut or
        abandoned): the tier tried last, the reason ``<rule>.<outcome>`` and what it spent by then."""
        self._write(req, decision, spent.tier, f"{decision.rule}.{outcome}", time.perf_counter() - start,
                    spent.prompt_tokens, spent.completion_tokens, spent.by_tier, spent.degraded, False)

    def _write(self, req: RouteRequest, decision: Decision, tier: str, reason: str, latency: float,
               prompt_tokens: int, completion_tokens: int, priced: dict[str, int], degraded: bool, escalated: bool,
               notes: list[str] | None = None) -> None:
        """Append one ledger row; ``priced``: tokens by the tier whose price they cost. A row that cannot be
        written is logged (and noted in ``notes``), never raised: the request's answer is already made."""
        if self.ledger is None:
            return
        from tether.routing.ledger import LedgerEntry

        prices = self.config.prices
        consent = None
        if tier == THIRD_PARTY or req.tier == THIRD_PARTY or decision.rule == "consent":
            c = self._consent(req)
            consent = "given" if c is True else ("refused" if c is False else None)
        try:
            self.ledger.record(LedgerEntry(
                ts=time.time(), feature=req.feature, tier=tier, reason=reason,
                score=decision.values.get("cloud_gain", decision.values.get("escalation_score")),
                latency_ms=latency * 1000, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                cost_usd=sum(prices.cost(t, n) for t, n in priced.items()),
                energy_j=sum(prices.energy(t, n) for t, n in priced.items()),
                degraded=degraded, escalated=escalated, consent=consent), busy_timeout=LEDGER_BUSY_TIMEOUT)
        except (RoutingError, ValueError) as exc:  # the answer is made (and paid for): keep it, say what is missing
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            logging.getLogger(__name__).warning("routing ledger not written: %s", why)
            if notes is not None:
                notes.append(f"ledger not written: {why}")

    def record_on_device(self, feature: str, reason: str, seconds: float) -> list[str]:
        """A ledger row for work done on the device without a routed model call (a feature, a
        search, a sum the calculator worked out): metadata only, no tokens. A row that cannot be
        written is logged and returned as a note, as for a routed request."""
        notes: list[str] = []
        self._write(RouteRequest("-", feature=feature), Decision(DEVICE, reason, ""), DEVICE, reason, seconds, 0, 0, {},
                    False, False, notes)
        return notes

    # ------------------------------------------------------------- streaming

    def stream(self, req: RouteRequest) -> "RoutedStream":
        """Decide now, then stream text deltas from the chosen tier (see ``RoutedStream``)."""
        return RoutedStream(self, req, self.decide(req, streaming=True))


class RoutedStream:
    """Text deltas from the tier a decision chose; ``decision`` is known before the first delta.

    Off the device the prompt is pseudonymized and the deltas restored as they
    arrive (a placeholder split across chunks is held back until complete). A
    tier that fails before its first delta falls back like ``Router.respond``;
    after that the error reaches the caller, since text was already shown.
    Streams do not cascade. ``response`` is set, and the ledger written, once
    the last delta has been read; its token counts are the tier's own (streams ask
    for ``include_usage``), or estimates where a provider reports none (one token
    per delta, four characters per prompt token).

    With a JSON schema, the restored text of an off-device answer is collected and
    checked against the caller's schema once it ends (a ``length`` finish is not
    judged). One that breaks it cannot be taken back: ``response`` is still set and
    the ledger written (the tier was paid), its notes saying why, and then
    ``InvalidTierOutputError`` is raised after the last delta, so the caller (the
    gateway: an in-band error event) learns the text it has is not valid.

    A stream that ends before its answer does is recorded too, with reason
    ``<rule>.cut`` (its tier failed after sending text), ``<rule>.failed`` (before)
    or ``<rule>.abandoned`` (its reader stopped reading, or was cancelled), and the
    tokens of the text the failing tier had sent.
    """

    def __init__(self, router: Router, req: RouteRequest, decision: Decision):
        self.router = router
        self.request = req
        self.decision = decision
        self.response: RoutedResponse | None = None

    def __iter__(self):
        start = time.perf_counter()
        self._tier, self._degraded, self._prompt_tokens = self.decision.tier, False, 0
        self._pieces: list[str] = []
        try:
            yield from self._deltas(start)
        except GeneratorExit:  # the reader stopped reading (a client that left)
            self._record_unfinished(start, "abandoned")
            raise
        except Exception as exc:
            cut = "cut" if self._pieces else "failed"
            self._record_unfinished(start, "abandoned" if isinstance(exc, GenerationCancelledError) else cut)
            raise

    def _record_unfinished(self, start: float, outcome: str) -> None:
        """The ledger row of a stream that ended before its answer did: the tokens of the text it sent
        (one a delta) and its prompt's, when the tier streaming it had sent any."""
        if self.response is not None:  # ended, and recorded; what failed came after (the schema check)
            return
        spent = _Spent(self._tier, degraded=self._degraded)
        if self._pieces:
            spent.add(self._tier, self._prompt_tokens, len(self._pieces))
        self.router._record_failed(self.request, self.decision, spent, start, outcome)

    def _deltas(self, start: float) -> Iterator[str]:
        r, req = self.router, self.request
        sampling = req.generation()
        notes: list[str] = []
        statuses: list[int | str | None] = []  # of the attempts that failed
        pieces = self._pieces
        served, degraded, model = DEVICE, False, ""
        info: dict[str, Any] = {}
        prompt_tokens = self._prompt_tokens = max(1, len((req.instructions or "") + req.prompt) // 4)
        if self.decision.tier != DEVICE:
            from tether.privacy.pseudonymize import json_string_escape

            for name, backend, prepared in r._attempts(req, self.decision, notes):
                self._tier = name
                restorer = prepared.session.restorer(json_string_escape if prepared.json_schema is not None else None)
                info = {}
                try:
                    for delta in backend.stream(prepared.messages(), prepared.sampling(sampling),
                                                json_schema=prepared.json_schema, info=info):
                        text = restorer.feed(delta)
                        if text:
                            pieces.append(text)
                            yield text
                except TierUnavailableError as exc:
                    if pieces:
                        raise
                    notes.append(f"{name} failed: {exc.reason}")
                    statuses.append(exc.status)
                    continue
                tail = restorer.flush()
                if tail:
                    pieces.append(tail)
                    yield tail
                served, model = name, info.get("model") or getattr(backend, "model", "") or name
                break
            else:
                r._give_up(self.decision.tier, notes, statuses)
                degraded = self._degraded = True
        if served == DEVICE:
            self._tier = DEVICE
            messages = r._messages(req, req.prompt)
            prompt_tokens = self._prompt_tokens = r.device.count_tokens(messages)
            model = getattr(r.device, "model", DEVICE)
            info = {}
            for text in r.device.stream(messages, r._fit(req, sampling), json_schema=req.json_schema, info=info):
                pieces.append(text)
                yield text
        prompt_tokens = int(info.get("prompt_tokens", prompt_tokens))
        completion_tokens = int(info.get("completion_tokens", len(pieces)))
        text, finish = "".join(pieces), info.get("finish_reason", "stop")
        problem = _schema_problem(req, text, finish)
        if problem is not None:
            notes.append(f"{served} failed: its answer broke the JSON schema: {problem}; the text was already sent")
        self.response = RoutedResponse(text, self.decision, served, model, prompt_tokens, completion_tokens,
                                       time.perf_counter() - start, degraded, False, notes, finish_reason=finish)
        r._record(req, self.response)
        if problem is not None and served == DEVICE:
            raise InvalidOutputError(f"the device's streamed answer broke the JSON schema: {problem}", text)
        if problem is not None:
            raise InvalidTierOutputError(served, f"its answer broke the JSON schema: {problem}")
