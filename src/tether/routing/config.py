"""Router settings, from a TOML, YAML or JSON file (or defaults).

```toml
preference = "prefer-device"        # device-only | prefer-device | prefer-quality
target_cloud_fraction = 0.3         # the difficulty threshold sends about this share to the cloud
# difficulty_threshold = 0.05       # optional: a fixed threshold on cloud_gain instead of the fraction
allow_degraded = true               # cloud unreachable → answer on the device, marked degraded
consent = "ask"                     # tiers that need consent: ask (per request) | always | never
device_model = "qwen2.5-0.5b"
cascade = ["chat", "route", "ask", "notifications", "summarize", "rewrite", "replies", "proofread"]  # device first, escalated when unsure (the default)
cascade_escalate_fraction = 0.35    # the learned escalation model escalates about this share (0: off)
cascade_min_logprob = -1.0          # optional: also escalate when the mean token logprob is below this
cascade_samples = 1                 # math: sampled device answers whose final numbers must agree (0: off)
ledger = "~/tether-ledger.sqlite"   # optional: default $TETHER_LEDGER, else ledger.sqlite in the user data dir
                                    # (a relative path here, as state_path's, is from this file's folder)

[private_cloud]
relay_url = "http://127.0.0.1:8490"
log_url = "http://127.0.0.1:8470"   # optional: read the log directly (default: through the relay)
log_key = "…"                       # optional: pin the transparency log's key
k = 2                               # nodes each request is sealed to (1-8)
deadline = 150                      # seconds per request, retries and the whole answer included (0 < s <= 3600)
state_path = "~/tether-cloud.json"  # optional: pinned log key + tree head (default: $TETHER_CLOUD_STATE, else the CLI's)

[third_party]
base_url = "https://api.openai.com/v1"
model = "gpt-4o-mini"
api_key_env = "OPENAI_API_KEY"      # the key itself never goes in the file
use_for_cloud = false               # may "auto" requests go there (still only with consent)?
retries = 3                         # on 429/5xx/network errors, with backoff (0-10)

[prices.third_party]                # also [prices.device], [prices.private_cloud]; both keys required
usd_per_mtok = 2.5
joules_per_token = 4.0
```
"""

from __future__ import annotations

import json
import math
import os
import re
import tomllib
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tether.errors import RouterConfigError
from tether.routing.ledger import IDENTIFIER, Prices
from tether.settings import path_problem

Preference = Literal["device-only", "prefer-device", "prefer-quality"]
CONFIG_ENV = "TETHER_ROUTER_CONFIG"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _url(value: str | None) -> str | None:
    from tether.errors import InputError
    from tether.settings import http_url

    if value is None:
        return None
    try:
        return http_url(value, "URL")
    except InputError as exc:
        raise ValueError(str(exc)) from None


def _client_deadline() -> float:
    from tether.cloud.client import DEADLINE  # not at import: the client pulls in httpx and the crypto

    return DEADLINE


class PrivateCloudConfig(_Strict):
    relay_url: str
    log_url: str | None = None  # None: read the transparency log through the relay
    log_key: str | None = None
    k: int = Field(default=2, ge=1, le=8)
    state_path: str | None = None  # pinned log key and last tree head; default: the CLI's file
    # Seconds per request, across retries and the whole answer; past it the gateway answers 504.
    # The default is the client's DEADLINE, read only when a config has this section.
    deadline: float = Field(default_factory=_client_deadline, gt=0, le=3600, allow_inf_nan=False)

    _urls = field_validator("relay_url", "log_url")(_url)

    def state_file(self) -> Path:
        """Where the pinned log key and tree head outlive the process: without it, a log rolled back
        or forked while the gateway restarts would be accepted. Shared with ``tether cloud``."""
        from tether.settings import cloud_state_path

        return Path(self.state_path).expanduser() if self.state_path else cloud_state_path()


class ThirdPartyConfig(_Strict):
    base_url: str
    model: str
    api_key_env: str | None = None
    use_for_cloud: bool = False
    retries: int = Field(default=3, ge=0, le=10)

    _urls = field_validator("base_url")(_url)

    @field_validator("model")
    @classmethod
    def _model_named(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("name the provider's model, e.g. gpt-4o-mini")
        return v.strip()

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and not _ENV_NAME.fullmatch(v):
            raise ValueError("api_key_env names an environment variable that holds the key (e.g. OPENAI_API_KEY), "
                             "not the key itself; keep the key out of this file")
        return v


class RouterConfig(_Strict):
    preference: Preference = "prefer-device"
    target_cloud_fraction: float = Field(default=0.3, ge=0, le=1)
    difficulty_threshold: float | None = Field(default=None, ge=-1, le=1)  # on cloud_gain; overrides the fraction
    allow_degraded: bool = True
    consent: Literal["ask", "always", "never"] = "ask"
    device_model: str = "qwen2.5-0.5b"
    cascade: list[str] = ["chat", "route", "ask", "notifications", "summarize", "rewrite", "replies", "proofread"]
    # 0.35: a cloud budget under the 40% the project targets, with room for calibration drift (held out: 38%)
    cascade_escalate_fraction: float = Field(default=0.35, ge=0, le=1)
    cascade_min_logprob: float | None = None
    cascade_samples: int = Field(default=1, ge=0, le=8)
    private_cloud: PrivateCloudConfig | None = None
    third_party: ThirdPartyConfig | None = None
    prices: Prices = Field(default_factory=Prices)
    ledger: str | None = None

    def consent_for(self, asked: bool | None) -> bool | None:
        """A request's own answer (``asked``), except that a saved ``never`` cannot be overridden
        per request; with no answer, the saved one (``ask``: None, not yet given)."""
        if self.consent == "never":
            return False
        if asked is not None:
            return asked
        return {"always": True, "ask": None}[self.consent]

    @field_validator("ledger")
    @classmethod
    def _a_file_path(cls, v: str | None) -> str | None:
        """A path the file system can take: it is opened later, where a NUL or a lone surrogate
        would be a traceback (and ``tether stats`` would take it for an empty ledger)."""
        if v is None:
            return v
        if not v.strip():
            raise ValueError("a ledger file path, not an empty string (leave the field out for the default)")
        problem = path_problem(v)
        if problem:
            raise ValueError(f"not a usable file path: it {problem}")
        return v

    @field_validator("cascade")
    @classmethod
    def _feature_names(cls, v: list[str]) -> list[str]:
        bad = [f for f in v if not IDENTIFIER.fullmatch(f)]
        if bad:
            raise ValueError(f"features are lower-case names such as chat or summarize, not {bad[0]!r}")
        return v

    @field_validator("cascade_min_logprob")
    @classmethod
    def _a_logprob(cls, v: float | None) -> float | None:
        if v is not None and not (v <= 0 and math.isfinite(v)):
            raise ValueError(f"a mean token logprob is a finite number <= 0, not {v}")
        return v

    @field_validator("device_model")
    @classmethod
    def _known_model_in_file(cls, v: str) -> str:
        from tether.errors import UnknownModelError

        try:
            return cls._known_model(v)
        except UnknownModelError as exc:
            raise ValueError(str(exc)) from None

    @staticmethod
    def _known_model(name: str) -> str:
        from tether.models import catalog

        catalog.resolve(name)  # UnknownModelError for a name that is neither in the catalog nor a path
        return name

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, *, device_model: str | None = None) -> "RouterConfig":
        """Read ``path`` (or ``$TETHER_ROUTER_CONFIG``); no file means the defaults.
        ``device_model`` overrides the file's (a CLI ``--model``)."""
        config = cls._read(path)
        if device_model is None:
            return config
        cls._known_model(device_model)  # the same check as the file's value, before anything loads
        return config.model_copy(update={"device_model": device_model})

    @classmethod
    def _read(cls, path: str | os.PathLike[str] | None) -> "RouterConfig":
        path = path or os.environ.get(CONFIG_ENV)
        if not path:
            return cls()
        p = Path(path)
        try:
            raw = p.read_bytes()
        except OSError as exc:
            raise RouterConfigError(f"cannot read router config {p}: {exc.strerror or exc}") from None
        suffix = p.suffix.lower()
        if suffix not in ("", ".toml", ".yaml", ".yml", ".json"):
            raise RouterConfigError(f"router config {p}: unknown format {p.suffix!r}; use .toml, .yaml or .json")
        try:
            if suffix == ".toml":
                data = tomllib.loads(raw.decode("utf-8"))
            elif suffix in (".yaml", ".yml"):
                data = yaml.safe_load(raw) or {}
            else:
                data = json.loads(raw)
        except (UnicodeDecodeError, tomllib.TOMLDecodeError, yaml.YAMLError, json.JSONDecodeError,
                ValueError, RecursionError) as exc:  # also: a 5,000-digit integer, nesting past the limit
            raise RouterConfigError(f"router config {p} is not valid {p.suffix.lstrip('.') or 'JSON'}: "
                                    f"{str(exc).splitlines()[0]}") from None
        try:
            config = cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first["loc"]) or "(top level)"
            raise RouterConfigError(f"router config {p}: {where}: {first['msg']}") from None
        return config._anchored(p.parent)

    def _anchored(self, folder: Path) -> "RouterConfig":
        """The file's relative paths (``ledger``, ``private_cloud.state_path``) as paths from its
        ``folder``, so one file names the same files from whatever folder Tether runs in."""

        def anchor(value: str | None) -> str | None:
            if value is None or Path(value).expanduser().is_absolute():
                return value
            return str(folder.absolute() / value)

        update: dict[str, object] = {"ledger": anchor(self.ledger)}
        if self.private_cloud is not None:
            update["private_cloud"] = self.private_cloud.model_copy(
                update={"state_path": anchor(self.private_cloud.state_path)})
        return self.model_copy(update=update)
