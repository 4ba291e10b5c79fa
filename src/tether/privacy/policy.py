"""The privacy policy: what each tier may see, per entity type. Loaded from TOML, YAML or JSON.

Every field is validated at load time so a typo fails at start-up with the file
and the field named, instead of silently sending data somewhere. The schema is
documented in ``docs/privacy.md``.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tether.errors import PolicyError
from tether.privacy.entities import BUILTIN_ENTITIES, SECRETS

Action = Literal["allow", "pseudonymize", "keep_on_device"]
Tier = Literal["device", "private_cloud", "third_party"]
TIERS: tuple[Tier, ...] = ("device", "private_cloud", "third_party")
ENV_VAR = "TETHER_PRIVACY_CONFIG"

_ENTITY_NAME = r"^[A-Z][A-Z0-9_]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TierActions(_Strict):
    """Action per tier for one entity type; a tier left out falls back to the defaults."""

    device: Action | None = None
    private_cloud: Action | None = None
    third_party: Action | None = None


class PatternConfig(_Strict):
    regex: str
    score: float = Field(0.8, ge=0.0, le=1.0)
    group: str | int = 0

    @model_validator(mode="after")
    def _compiles(self) -> PatternConfig:
        try:
            rx = re.compile(self.regex)
        except re.error as exc:
            raise ValueError(f"invalid regex {self.regex!r}: {exc}") from None
        if isinstance(self.group, int) and not 0 <= self.group <= rx.groups:
            raise ValueError(f"regex {self.regex!r} has no group {self.group}")
        if isinstance(self.group, str) and self.group not in rx.groupindex:
            raise ValueError(f"regex {self.regex!r} has no group named {self.group!r}")
        return self


class RecognizerConfig(_Strict):
    """A user regex recognizer: ``entity`` names the type it reports."""

    entity: str = Field(pattern=_ENTITY_NAME)
    name: str | None = None
    patterns: list[PatternConfig] = Field(min_length=1)
    context: list[str] = []


class DenyListConfig(_Strict):
    """Exact terms that are always this entity type (project code names, relatives' names)."""

    entity: str = Field(pattern=_ENTITY_NAME)
    terms: list[str] = Field(min_length=1)
    case_sensitive: bool = False

    @field_validator("terms")
    @classmethod
    def _non_blank(cls, terms: list[str]) -> list[str]:
        if any(not t.strip() for t in terms):
            raise ValueError("deny-list terms must not be blank")
        return terms


class DetectionConfig(_Strict):
    min_score: float = Field(0.4, ge=0.0, le=1.0, description="drop detections scored below this")
    recognizers: list[RecognizerConfig] = []
    deny_lists: list[DenyListConfig] = []
    allow_list: list[str] = Field([], description="values that are never personal data (exact match)")
    filter_false_positives: bool = True
    recall_first: bool = Field(True, description="off-device tiers also pseudonymize likely names, places and "
                                                 "dates that the precise rules are unsure of")

    def custom_entities(self) -> set[str]:
        return {r.entity for r in self.recognizers} | {d.entity for d in self.deny_lists}


class PseudonymizeConfig(_Strict):
    style: Literal["placeholder", "fake"] = "placeholder"


class TierConfig(_Strict):
    requires_consent: bool = False


# Built-in defaults; a user's file overrides them entry by entry.
DEFAULT_ACTIONS = TierActions(device="allow", private_cloud="pseudonymize", third_party="pseudonymize")
SECRET_ACTIONS = TierActions(device="allow", private_cloud="keep_on_device", third_party="keep_on_device")
_BUILTIN_POLICY: dict[str, TierActions] = {"default": DEFAULT_ACTIONS, **{s: SECRET_ACTIONS for s in SECRETS}}


def _default_tiers() -> dict[Tier, TierConfig]:
    return {"device": TierConfig(), "private_cloud": TierConfig(), "third_party": TierConfig(requires_consent=True)}


class PrivacyConfig(_Strict):
    """The whole privacy config file. ``action(entity, tier)`` is the policy lookup."""

    version: Literal[1] = 1
    detection: DetectionConfig = DetectionConfig()
    pseudonymize: PseudonymizeConfig = PseudonymizeConfig()
    tiers: dict[Tier, TierConfig] = Field(default_factory=_default_tiers)
    policy: dict[str, TierActions] = {}

    @field_validator("tiers")
    @classmethod
    def _fill_tiers(cls, tiers: dict[Tier, TierConfig]) -> dict[Tier, TierConfig]:
        tiers = {**_default_tiers(), **tiers}
        if not tiers["third_party"].requires_consent:
            raise ValueError("third_party.requires_consent cannot be false: a third party is only used with "
                             "consent (give it once with the router config's consent = \"always\")")
        if tiers["device"].requires_consent:
            raise ValueError("device.requires_consent cannot be true: nothing leaves the device there")
        return tiers

    @model_validator(mode="after")
    def _known_entities(self) -> PrivacyConfig:
        known = set(BUILTIN_ENTITIES) | self.detection.custom_entities()
        unknown = sorted(set(self.policy) - known - {"default"})
        if unknown:
            raise ValueError(
                f"policy names entity type(s) {', '.join(unknown)} that no recognizer reports; "
                f"known: default, {', '.join(sorted(known))}"
            )
        return self

    @property
    def entities(self) -> list[str]:
        return [*BUILTIN_ENTITIES, *sorted(self.detection.custom_entities() - set(BUILTIN_ENTITIES))]

    def action(self, entity: str, tier: Tier) -> Action:
        """User entry for the entity, then the built-in entry, then the user default, then the built-in default."""
        for table in (self.policy.get(entity), _BUILTIN_POLICY.get(entity),
                      self.policy.get("default"), DEFAULT_ACTIONS):
            value = getattr(table, tier) if table is not None else None
            if value is not None:
                return value
        raise AssertionError("unreachable: the built-in default covers every tier")

    def requires_consent(self, tier: Tier) -> bool:
        return self.tiers[tier].requires_consent


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    more = f" (and {exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
    return "; ".join(parts) + more


def parse_config(data: object, source: str = "privacy config") -> PrivacyConfig:
    """Validate an already-parsed mapping; raise ``PolicyError`` naming the bad fields."""
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: expected a table/mapping at the top level, got {type(data).__name__}")
    try:
        return PrivacyConfig.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(f"{source}: {_describe(exc)}") from None


def default_config_path() -> Path:
    import platformdirs

    return platformdirs.user_config_path("tether") / "privacy.toml"


def load_config(path: str | os.PathLike[str] | None = None) -> PrivacyConfig:
    """Load the policy file: ``path``, else ``$TETHER_PRIVACY_CONFIG``, else the user config
    file if it exists, else the built-in defaults."""
    if path is None:
        env = os.environ.get(ENV_VAR)
        if env:
            path = env
        elif default_config_path().is_file():
            path = default_config_path()
        else:
            return PrivacyConfig()
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise PolicyError(f"privacy config {p}: no such file") from None
    except OSError as exc:
        raise PolicyError(f"privacy config {p}: cannot read ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")  # a Windows editor's byte order mark is no part of the config
    except UnicodeDecodeError as exc:
        at = exc.start + (3 if raw.startswith(b"\xef\xbb\xbf") else 0)
        raise PolicyError(f"privacy config {p}: not valid UTF-8 (byte {at})") from None
    suffix = p.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml", ".json"):  # outside the try: PolicyError is a ValueError too
        raise PolicyError(f"privacy config {p}: unknown format {suffix or '(none)'}; use .toml, .yaml or .json")
    try:
        if suffix == ".toml":
            data: object = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) if text.strip() else {}
        else:
            data = json.loads(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError, json.JSONDecodeError) as exc:
        raise PolicyError(f"privacy config {p}: cannot parse ({' '.join(str(exc).split())})") from None
    except RecursionError:
        raise PolicyError(f"privacy config {p}: nested too deeply") from None
    except ValueError as exc:  # an integer of more than 4,300 digits
        raise PolicyError(f"privacy config {p}: cannot parse ({exc})") from None
    try:
        return parse_config(data, f"privacy config {p}")
    except RecursionError:
        raise PolicyError(f"privacy config {p}: nested too deeply") from None
