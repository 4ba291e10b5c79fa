"""Recognizers Tether adds to presidio, and the filters that drop known false positives.

Presidio's built-in recognizers cover email, phone, card, IBAN, IP and SSN. The
small spaCy model finds names and places but also tags words such as "SSN" or
"Email" as entities; ``drop_false_positives`` removes those (the benchmark
measures how many).
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import unquote_plus

import tldextract

from tether.privacy import _presidio_first  # noqa: F401  (before presidio: see its docstring)
from presidio_analyzer import AnalysisExplanation, EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import EmailRecognizer

from tether.privacy.entities import SECRETS

# Offline: use tldextract's bundled public-suffix snapshot, never the network.
_TLD = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's email recognizer, validating domains against the bundled suffix list, or (for an
    internationalised address, "用户@例子.广告") a top-level label in another script: the snapshot
    lags behind the IDN top-level domains, and "x@y.<word in another script>" is rarely anything else."""

    def validate_result(self, pattern_text: str) -> bool:
        return _TLD(pattern_text).fqdn != "" or _idn_top_label(pattern_text)


def _idn_top_label(value: str) -> bool:
    top = value.rsplit("@", 1)[-1].rsplit(".", 1)
    return len(top) == 2 and len(top[1]) >= 2 and top[1].isalpha() and not top[1].isascii()


def _result(rec: EntityRecognizer, entity: str, start: int, end: int, score: float, why: str) -> RecognizerResult:
    return RecognizerResult(
        entity, start, end, score,
        analysis_explanation=AnalysisExplanation(recognizer=rec.name, original_score=score, textual_explanation=why),
        recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: rec.name,
                              RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: rec.id},
    )


CONTEXT_BEFORE, CONTEXT_AFTER, CONTEXT_BOOST = 40, 12, 0.35


@dataclass(frozen=True)
class RegexPattern:
    """One regex; ``group`` picks the part that is the entity (``password: <this>``)."""

    name: str
    regex: str
    score: float
    group: str | int = 0
    flags: int = 0
    validate: Callable[[str], bool] | None = None
    in_context: Callable[[str, int, int], bool] | None = None  # (text, start, end) of the value


class RegexRecognizer(EntityRecognizer):
    """Regex recognizer whose span can be a capture group, with an optional validator.

    Presidio's ``PatternRecognizer`` always returns the whole match; secrets in
    ``key = value`` form need just the value replaced so the text still reads.
    """

    def __init__(
        self,
        entity: str,
        patterns: Sequence[RegexPattern],
        *,
        name: str | None = None,
        context: Sequence[str] = (),
        validate: Callable[[str], bool] | None = None,
    ):
        self._patterns = [(p, re.compile(p.regex, p.flags)) for p in patterns]
        self._validate = validate
        self._context = (re.compile(r"(?i)(?<![a-z])(?:" + "|".join(map(re.escape, context)) + r")(?![a-z])")
                         if context else None)
        # Context is checked here on raw text: presidio's enhancer skips stop words, and "call" is one.
        super().__init__(supported_entities=[entity], name=name or f"{entity.lower()}_regex")

    def load(self) -> None:
        pass

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
                ) -> list[RecognizerResult]:
        entity = self.supported_entities[0]
        if entities and entity not in entities:
            return []
        out = []
        for pattern, rx in self._patterns:
            for m in rx.finditer(text):
                start, end = m.span(pattern.group)
                if start < 0 or start == end:
                    continue
                value = text[start:end]
                if (self._validate and not self._validate(value)) or (pattern.validate and not pattern.validate(value)) \
                        or (pattern.in_context and not pattern.in_context(text, start, end)):
                    continue
                score, why = pattern.score, f"pattern {pattern.name}"
                if self._context is not None and (self._context.search(text, max(0, start - CONTEXT_BEFORE), start)
                                                  or self._context.search(text, end, end + CONTEXT_AFTER)):
                    score, why = min(1.0, score + CONTEXT_BOOST), why + " with a context word"
                out.append(_result(self, entity, start, end, score, why))
        return out


# ---- secrets --------------------------------------------------------------------------


def _is_token(value: str) -> bool:
    """A token has digits or mixed case; plain words after ``token:`` are prose."""
    has_digit = any(c.isdigit() for c in value)
    mixed = any(c.islower() for c in value) and any(c.isupper() for c in value)
    return has_digit or mixed


_TYPE_NAMES = {"str", "string", "int", "integer", "bool", "boolean", "number", "bytes", "any", "none", "null",
               "undefined", "optional", "secretstr", "char", "varchar", "text", "object", "unknown", "nil", "void",
               "float", "double", "password", "passwd", "secret", "token", "hidden", "required"}
# The first name of a dotted path that is code, not a secret: os.environ[…], process.env.X, settings.X.
_CODE_ROOTS = {"os", "sys", "process", "settings", "config", "conf", "cfg", "env", "environ", "self", "this", "request",
               "req", "args", "kwargs", "opts", "options", "params", "data", "form", "body", "props", "state", "ctx",
               "context", "app", "secrets", "vault", "credentials", "creds", "user", "users", "auth", "db", "window",
               "document", "localstorage", "sessionstorage", "module", "exports", "st", "getpass", "hashlib", "bcrypt",
               "keyring", "boto3", "import", "environment", "values", "vars", "inputs", "secret", "client", "res", "resp",
               "response", "cls", "obj", "model", "record", "row", "payload", "json"}
_CODE_CALL = re.compile(r"[A-Za-z_][A-Za-z_.]*\((?:\)|.*(?:['\"=_.]|[a-z]{3}))")
_DOTTED = re.compile(r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+(?:\[.*)?[)}\];,]*")
_ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]*[A-Z][A-Z0-9]*)+")


def is_code_reference(value: str) -> bool:
    """``value`` (what follows ``password =`` or ``token:``) is code that names a secret rather
    than the secret: a type (``str``), a call (``getpass.getpass()``), a variable, an env var
    (``$DB_PASSWORD``, ``process.env.API_KEY``, ``DB_PASSWORD``), a template (``{{ pw }}``) or
    an operator (``==``). Asking about code that handles passwords is not sending one."""
    v = value.strip()
    bare = v.strip("'\"`").rstrip(")]};,")
    if not any(c.isalnum() for c in v):
        return True
    if bare.lower() in _TYPE_NAMES or re.fullmatch(r"(?:Optional|SecretStr|str|string)\b[\w\[\]| ]*", bare):
        return True
    if v[:1] in "$%" or v.startswith(("{{", "{%", "<%", "<?")) or re.fullmatch(r"<[^<>]+>", bare):
        return True
    if _CODE_CALL.match(v) or _ENV_NAME.fullmatch(bare):
        return True
    m = _DOTTED.fullmatch(v)
    if m:
        parts = re.split(r"[.\[]", bare)
        return (parts[0].lower() in _CODE_ROOTS or "[" in v or any(_ENV_NAME.fullmatch(p) for p in parts)
                or any(re.fullmatch(r"[a-z]+(?:_[a-z]+)+", p) for p in parts))
    return False


def _is_token_value(value: str) -> bool:
    return _is_token(value) and not is_code_reference(value)


def _looks_like_a_password(value: str) -> bool:
    """A value with no "password:" before it must look like one: six or more characters with a
    digit or a symbol, and not code."""
    return (len(value) >= 6 and bool(re.search(r"\d|[!@#$%^&*_+=~<>\[\]{}|\\]", value))
            and bool(re.search(r"[^\W\d_]", value)) and not is_code_reference(value))


_API_KEY_PATTERNS = [
    RegexPattern("openai", r"\bsk-(?:proj-|svcacct-|admin-|ant-[a-z0-9]+-)?[A-Za-z0-9_\-]{20,}", 1.0),
    RegexPattern("stripe", r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,}", 1.0),
    RegexPattern("aws_access_key_id", r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b", 1.0),
    RegexPattern("github", r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,})", 1.0),
    RegexPattern("gitlab", r"\bglpat-[A-Za-z0-9_\-]{20,}", 1.0),
    RegexPattern("slack", r"\bxox[abposre]-[A-Za-z0-9\-]{10,}", 1.0),  # xoxe-1-…: a refresh token
    # an app-level token: xapp-1-A0123456789-1234567890123-<64 hex>
    RegexPattern("slack_app", r"\bxapp-\d{1,2}-[A-Za-z0-9]{6,}-\d{6,}-[A-Za-z0-9]{16,}", 1.0),
    # the same tokens written with spaces, dots or underscores between their parts
    # ("xoxb 2048 1234567890 AbCd…", "xapp_1_A0…"); every part has a digit or a capital
    RegexPattern("slack_separated", r"\b(?:xox[abposre]|xapp)(?:(?:[ \t]*[\-_.][ \t]*|[ \t]+)"
                                    r"(?=[a-z]{0,80}[0-9A-Z])[A-Za-z0-9]{1,80}){2,8}", 0.95,
                 validate=lambda v: sum(c.isalnum() for c in v) >= 24 and any(c.isdigit() for c in v)),
    RegexPattern("google", r"\bAIza[0-9A-Za-z_\-]{35}", 1.0),
    RegexPattern("huggingface", r"\bhf_[A-Za-z0-9]{30,}", 1.0),
    RegexPattern("jwt", r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}", 1.0),
    RegexPattern("npm", r"\bnpm_[A-Za-z0-9]{36}\b", 1.0),
    RegexPattern("pypi", r"\bpypi-[A-Za-z0-9_\-]{50,}", 1.0),
    RegexPattern("sendgrid", r"\bSG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,}", 1.0),
    RegexPattern("slack_webhook", r"hooks\.slack\.com/(?:services|workflows)/(?P<v>[A-Za-z0-9/_\-]{20,})", 1.0, group="v"),
    RegexPattern("telegram_bot", r"\b(?:bot)?\d{6,12}:AA[A-Za-z0-9_\-]{30,}", 1.0),
    # HTTP auth schemes are case-insensitive; "Token" is Django REST framework's and GitHub's
    RegexPattern("bearer", r"(?i:\b(?:bearer|token)\s+)(?P<v>[A-Za-z0-9_\-.=+/]{16,})", 0.95, group="v",
                 validate=_is_token),
    RegexPattern("basic_auth", r"(?i:authorization|auth)[\"']?\s*[:=]\s*[\"']?(?i:basic)\s+"
                               r"(?P<v>[A-Za-z0-9+/]{8,}={0,2})(?![A-Za-z0-9+/=])", 0.9, group="v"),
    # key = value with a key name that says "secret"; the value must look like a token. The name may
    # be part of a longer one (SecretAccessKey, refreshToken, webhookSecret, AWS_SESSION_TOKEN).
    RegexPattern(
        "assignment",
        r"(?i)(?:api[_\- ]?key|api[_\- ]?token|access[_\- ]?token|auth[_\- ]?token|secret[_\- ]?key|"
        r"client[_\- ]?secret|aws_secret_access_key|private[_\- ]?token|account[_\- ]?key|shared[_\- ]?access[_\- ]?key|"
        r"secret|token)[a-z_]*"
        r"[\"']?\]?\s*(?:[:=]|=>|\bis\b)\s*[\"']?(?P<v>[A-Za-z0-9_\-./+=]{12,}+)(?![(\[])",
        0.9,
        group="v",
        validate=_is_token_value,
    ),
    # MINIO_ACCESS_KEY=…, MAILGUN_KEY=…, STRIPE_SECRET=…: an env-style name that ends in KEY/SECRET/TOKEN
    RegexPattern("env_key", r"(?<![A-Za-z0-9])[A-Z][A-Z0-9]{0,40}(?:_[A-Z0-9]{1,40}){0,8}_?(?:KEY|SECRET|TOKEN|CREDENTIALS?)(?![A-Za-z0-9_])"
                            r"[\"']?\s*[:=]\s*[\"']?(?P<v>[A-Za-z0-9_\-./+=]{8,}+)(?![(\[])", 0.9, group="v",
                 validate=_is_token_value),
    # ?appid=…&key=…&sig=…: secrets in URL query strings (percent-encoded ones too)
    RegexPattern("url_query", r"(?i)[?&;](?:api[_\-]?key|key|appid|app_id|access_token|auth_token|token|sig|signature|"
                              r"secret|client_secret|apikey|auth|password|pwd|code)=(?P<v>[A-Za-z0-9_\-.%+/=~]{16,}+)",
                 0.9, group="v", validate=lambda v: bool(re.search(r"\d", v) and re.search(r"[A-Za-z]", v))),
    RegexPattern("discord_bot", r"\b[MNO][A-Za-z\d_\-]{23,27}\.[\w\-]{6}\.[\w\-]{27,40}\b", 0.95),
    RegexPattern("mailgun", r"\bkey-[0-9a-z]{32}\b", 0.95),
    # A key a mail client or terminal wrapped over lines is still the key.
    RegexPattern("wrapped", r"(?<![A-Za-z0-9_\-])(?:sk-|gh[pousr]_|github_pat_|hf_|glpat-|xox[abposre]-|xapp-|AIza|pypi-|npm_)"
                 r"[A-Za-z0-9_\-]{4,}+(?:[ \t]*\r?\n[ \t]*[A-Za-z0-9_\-]{4,}+)+", 1.0,
                 validate=lambda v: len(re.sub(r"\s", "", v)) >= 24),
]

# In an Indian address the six-digit "PIN code" is the postcode ("Bengaluru, Karnataka, PIN: 560001").
_INDIAN_ADDRESS = re.compile(
    r"(?i)\b(?:india|address|road|rd|nagar|marg|colony|layout|sector|street|lane|cross|main|district|dist|taluk|"
    r"tehsil|village|city|state|flat|apartment|house|bengaluru|bangalore|mumbai|delhi|chennai|kolkata|hyderabad|"
    r"pune|ahmedabad|jaipur|lucknow|kochi|karnataka|maharashtra|tamil nadu|kerala|gujarat|rajasthan|telangana|"
    r"andhra pradesh|uttar pradesh|madhya pradesh|west bengal|punjab|haryana|bihar|odisha|assam)\b")


def _line_around(text: str, start: int, end: int) -> tuple[int, int]:
    """(start, end) of the line that holds ``text[start:end]``."""
    line_end = text.find("\n", end)
    return text.rfind("\n", 0, start) + 1, line_end if line_end >= 0 else len(text)


def _indian_pin(text: str, start: int, end: int) -> bool:
    """A six-digit PIN written "pincode", or on a line that reads as an Indian address."""
    if end - start != 6 or text[start] == "0":
        return False
    line_start, line_end = _line_around(text, start, end)
    return bool(re.search(r"(?i)pincode", text[max(line_start, start - 14):start])
                or _INDIAN_ADDRESS.search(text, line_start, line_end))


# What a code opens: a door, a gate, an alarm, a safe…
_LOCKS = (r"(?:door|gate|garage|alarm|entry|entrance|building|lobby|front[ \t]+door|lock|lockbox|key[ \t]?box|"
          r"key[ \t]?safe|keypad|safe|locker|padlock|intercom|buzzer|apartment|flat)")

_PASSWORD_PATTERNS = [
    # The long key names may end a longer one (userPassword, ROOTPASSWORD); the short ones stand
    # alone, or "bypass: yes" would be a password. An unquoted value runs to the next space or
    # ";" (my'dog99, a,b,c9), less a trailing comma or quote; "hunter2!" keeps its "!".
    RegexPattern(
        "password_assignment",
        r"(?i)(?:password|passwd|passphrase|passcode|passwort|kennwort|contraseña|mot[ \-]de[ \-]passe|senha|"
        r"wachtwoord|hasło|lösenord|salasana|(?<![a-z])(?:pwd|pw|clave|parola|psk)|(?<=\w[_\-.])pass)[\"']?\]?\s*"
        r"(?:[:=]|=>|\bis\b|['’]s\b)"
        r"[ \t]*(?:\"\"\"(?P<tq>[^\"\n]+)\"\"\"|\"(?P<dq>[^\"\n]+)\"|'(?P<sq>[^'\n]+)'|(?P<v>[^\s\";]*[^\s\"';,]))",
        0.95,
        group="v",
    ),
    # A bare "pass:" labels tickets as often ("Boarding pass: 12C", "Ski pass: 3 days"): the value
    # must look like a password, and a ticket word before it is no key at all.
    RegexPattern("pass_label", r"(?i)(?<![\w\-.])(?<!boarding[ \t])(?<!bus[ \t])(?<!ski[ \t])(?<!day[ \t])"
                               r"(?<!season[ \t])(?<!gate[ \t])(?<!hall[ \t])(?<!travel[ \t])(?<!rail[ \t])"
                               r"(?<!train[ \t])(?<!press[ \t])(?<!guest[ \t])(?<!visitor[ \t])(?<!museum[ \t])"
                               r"(?<!park[ \t])(?<!weekly[ \t])(?<!monthly[ \t])(?<!annual[ \t])"
                               r"pass[\"']?\s*(?:[:=]|=>)[ \t]*[\"']?(?P<v>[^\s\";]*[^\s\"';,.)!?])", 0.9, group="v",
                 validate=_looks_like_a_password),
    # "PASS=secret" in an .env or INI file: a key on its own line, so any value
    RegexPattern("pass_line", r"(?im)^[ \t]*(?:export[ \t]+)?pass[ \t]*=[ \t]*[\"']?(?P<v>[^\s\"';]*[^\s\"';,])", 0.9,
                 group="v"),
    # Server configs: redis "requirepass X", "masterauth X", keepalived "auth_pass X", wpa "psk X"
    RegexPattern("config_directive", r"(?im)^[ \t]*(?:requirepass|masterauth|auth_pass|psk)[ \t]+[\"']?"
                                     r"(?P<v>[^\s\"']{4,})", 0.9, group="v"),
    # Kubernetes / ECS / docker-inspect env pairs: "- name: DB_PASSWORD\n  value: X",
    # {"name": "API_TOKEN", "value": "X"}; valueFrom (a secretKeyRef) is no literal.
    RegexPattern("env_pair", r"(?i)\bname[\"']?[ \t]*:[ \t]*[\"']?[A-Za-z0-9_.\-]{0,60}?(?:password|passwd|pass|pwd|"
                             r"secret|token|api_?key|access_?key|private_?key|psk)[\"']?[ \t]*+,?\s{0,40}+"
                             r"(?:-[ \t]+)?[\"']?value[\"']?[ \t]*:[ \t]*[\"']?(?P<v>[^\s\"',}]{4,})", 0.9,
                 group="v"),
    # "the password for the router is zebra!Falls", "Password for the wifi: Falcon#2291"
    RegexPattern("password_for", r"(?i)\b(?:password|passcode|passphrase|pin|pass|pw|pwd)[ \t]+(?:for|to|of|on|at)[ \t]+"
                                 r"[^\n:=]{1,30}?[ \t]*(?::|\bis\b)[ \t]*[\"']?(?P<v>[^\s\"';,]*[^\s\"';,.:)!?])", 0.9,
                 group="v", validate=_looks_like_a_password),
    # "密码：hunter2" (the full-width colon reads as ":"); "密码是hunter2", "パスワードは hunter2",
    # "비밀번호는 hunter2" have an "is" word (a space once it touches the value) or none: the value
    # must look like one. CJK punctuation ends the value.
    RegexPattern("password_cjk", r"(?:密码|密碼|パスワード|비밀번호)[ \t]*[:=][ \t]*(?P<v>[^\s\"';,，。、]+)", 0.95,
                 group="v"),
    RegexPattern("password_cjk_is", r"(?:密码|密碼|パスワード|비밀번호)[ \t]*(?:是|为|為|は|는|은)?[ \t]*"
                                    r"(?P<v>[^\s\"';,:=，。、]+)", 0.9, group="v", validate=_looks_like_a_password),
    # a PIN: "pin = 4821", "PIN: 4821", "pin code 4821"; LED_PIN = 18 and "pin 2024 as the year" are not
    RegexPattern("pin_assignment", r"(?i)(?<![\w])pin(?:[ _\-]?(?:code|number|no\.?))?[\"']?\s*(?:[:=#]|\bis\b)[ \t]*"
                                   r"[\"']?(?P<v>\d{4,8})\b", 0.9, group="v", in_context=lambda *a: not _indian_pin(*a)),
    # "password Tr0ub4dor&3", "my gmail password hunter2", "Password - x9!": no ":" or "is", so the
    # value must look like one (a digit, or a symbol) or "password reset link" would be a secret.
    RegexPattern("password_spaced", r"(?i)\b(?:password|passwd|passcode|passphrase)(?:[ \t]*[-–—][ \t]*|[ \t]+)(?![-–—])"
                                     r"(?P<v>[^\s\"';,]*[^\s\"';,.:)!?])", 0.9, group="v",
                 validate=lambda v: len(v) >= 6 and bool(re.search(r"\d|[!@#$%^&*_+=~<>\[\]{}|\\]", v))
                 and not is_code_reference(v)),
    # "pw hunter2", "pass Xyz!2024": the short words need a value with a letter and a digit or symbol
    RegexPattern("short_spaced", r"(?i)(?<![\w\-])(?:pw|pwd|pass)[ \t]+(?P<v>[^\s\"';,]*[^\s\"';,.:)!?])", 0.85,
                 group="v", validate=_looks_like_a_password),
    RegexPattern("pin_digits", r"(?:\bPIN|(?i:\bpin[ \t]+(?:code|number|no\.?)))[ \t]*#?[ \t]*(?P<v>\d{4,8})\b", 0.9,
                 group="v", in_context=lambda *a: not _indian_pin(*a)),
    # "creds are admin / Summer2024!", "login: admin:Qwerty!234"
    RegexPattern("credentials_pair", r"(?i)\b(?:creds|credentials|login|logins|log-in|user/pass)\b[^\n:=]{0,12}?"
                                     r"(?:[:=]|\bare\b|\bis\b)[ \t]*[\"']?[^\s/:'\"]+[\"']?[ \t]*[/:][ \t]*[\"']?"
                                     r"(?P<v>[^\s'\"/][^\s'\"]*[^\s'\".,;)])", 0.9, group="v",
                 validate=lambda v: len(v) >= 4 and not is_code_reference(v)),
    # docker login -p X, sshpass -p X, redis-cli -a X, --password X / --password=X
    RegexPattern("cli_password_flag", r"(?:\b(?:docker|podman|nerdctl|buildah|skopeo|helm)\b[^\n]{0,200}?\blogin\b[^\n]{0,200}?(?<!\S)-p"
                                      r"|\bsshpass\b[^\n]{0,200}?(?<!\S)-p|\bredis-cli\b[^\n]{0,200}?(?<!\S)-a"
                                      r"|(?<!\S)--(?:password|passwd|pass))(?:[ \t]+|=)[\"']?(?P<v>[^\s'\"]+)", 0.9,
                 group="v", validate=lambda v: not is_code_reference(v) and not v.startswith("-")),
    # requests' auth=("admin", "S3cret!99"), HTTPBasicAuth('user', 'pw')
    RegexPattern("auth_pair", r"(?:\bauth\s*=\s*\(|\b(?:HTTPBasicAuth|HTTPDigestAuth|BasicAuth|DigestAuth|basic_auth)"
                              r"\s*\(\s*\(?)\s*(?P<q1>['\"])[^'\"\n]*(?P=q1)\s*,\s*(?P<q2>['\"])(?P<v>[^'\"\n]+)(?P=q2)",
                 0.95, group="v"),
    # a .pgpass line: host:port:database:user:password
    RegexPattern("pgpass", r"(?m)^[\w.\-*]+:(?:\d{2,5}|\*):[\w\-*]+:[\w\-*.@]+:(?P<v>\S+)$", 0.9, group="v"),
    # scheme://user:PASSWORD@host — database URLs, redis://:pw@host, git remotes
    RegexPattern("url_credentials", r"(?i)\b[a-z][a-z0-9+.\-]{0,31}://[^\s/:@]*:(?P<v>[^\s/@]+)@", 0.95, group="v"),
    # <password>x</password>, <Secret>…</Secret> in XML configs
    RegexPattern("xml_element", r"(?i)<(?P<tag>password|passwd|passphrase|secret|client_?secret|api_?key|token)>"
                                r"(?P<v>[^<\n]{4,})</(?P=tag)>", 0.95, group="v"),
    # curl -u user:PASSWORD, mysql -pPASSWORD (the value is glued to -p there)
    RegexPattern("cli_user_password", r"(?<!\S)(?:-u|--user)[ \t]+[^\s:]+:(?P<v>[^\s\"']{4,})", 0.9, group="v",
                 validate=lambda v: not is_code_reference(v)),
    RegexPattern("mysql_password", r"\b(?:mysql|mysqldump|mariadb)\b[^\n]{0,200}?(?<!\S)-p(?P<v>[^\s\"']{4,})", 0.9,
                 group="v"),
    # Codes that open a door: "gate code 1357", "door code: 2291#", "alarm PIN is 7734", "lockbox combo 4-4-5-5".
    # Not "door number 12" (an address) nor "error code 4012" (no lock named).
    RegexPattern("access_code", rf"(?i)\b{_LOCKS}[ \t]+(?:code|pin|passcode|password|combination|combo)s?\b[\"']?"
                                r"[ \t]*(?:[:=#]|\bis\b|\bwill be\b)?[ \t]*[\"']?(?P<v>[0-9*#](?:[0-9*#]|[ \-](?=[0-9*#])){2,11})"
                                r"(?![\w])", 0.9, group="v"),
    # "passcode for the alarm is 7734", "the code to the gate: 1357": digits are enough after a lock
    RegexPattern("code_for", rf"(?i)\b(?:passcode|pin|code|combination|combo)[ \t]+(?:for|to|of|on)[ \t]+"
                             rf"(?:the[ \t]+|my[ \t]+|our[ \t]+)?(?:front[ \t]+|back[ \t]+|main[ \t]+)?{_LOCKS}[ \t]*"
                             r"(?::|\bis\b)[ \t]*(?P<v>[0-9*#](?:[0-9*#]|[ \-](?=[0-9*#])){2,11})(?![\w])", 0.9, group="v"),
    # "the combination is 12-34-56"
    RegexPattern("combination", r"(?i)\bcombination\b[^\n:=]{0,20}?(?:[:=]|\bis\b)[ \t]*"
                                r"(?P<v>\d{1,3}(?:[ \t]*[-–/][ \t]*\d{1,3}){2,4})\b", 0.9, group="v"),
    # A card's security code: "cvv 123", "CVC is 4821", "security code: 842".
    RegexPattern("card_security_code", r"(?i)\b(?:cvv2?|cvc2?|cvn|csc|card[ \t]+verification[ \t]+(?:code|value)|"
                                       r"security[ \t]+code)\b[\"']?[ \t]*(?:[:=#]|\bis\b)?[ \t]*(?P<v>\d{3,4})(?!\w)",
                 0.9, group="v"),
    # Wi-Fi: "the wifi key is BlueMonkey77", "WPA2 passphrase: sunflower"; a bare "wifi: X" must look like one.
    RegexPattern("wifi_key", r"(?i)\b(?:wi-?fi|wlan|wpa2?|wpa3|network|router)[ \t]+(?:key|pass(?:word|phrase)?|pw|pwd|code)\b"
                             r"[\"']?[ \t]*(?:[:=]|\bis\b)[ \t]*[\"']?(?P<v>[^\s\"';,]{4,}[^\s\"';,.:)!?])", 0.9, group="v"),
    RegexPattern("wifi_bare", r"(?i)\b(?:wi-?fi|wlan)[ \t]*[:=][ \t]*[\"']?(?P<v>[^\s\"';,]*[^\s\"';,.:)!?])", 0.85,
                 group="v", validate=_looks_like_a_password),
]


# crypt(3) hashes from .htpasswd and /etc/shadow: cracked offline, so as secret as the password
# (their own recognizer: "$apr1$…" reads as a shell variable to the password recognizer's check).
_PASSWORD_HASH = RegexPattern("password_hash", r"(?<![\w$])\$(?:1|2[abxy]?|5|6|7|y|gy|apr1|argon2(?:id|i|d)|scrypt|"
                                               r"pbkdf2(?:-sha\d+)?)\$[A-Za-z0-9./$=,+\-]{16,}", 0.95)


def _quoted(pattern: RegexPattern, group: str) -> RegexPattern:
    return RegexPattern(f"{pattern.name}_{group}", pattern.regex, pattern.score, group=group)


_PASSWORD_PATTERNS += [_quoted(_PASSWORD_PATTERNS[0], g) for g in ("tq", "dq", "sq")]

# A BEGIN line without its END (a truncated paste) still runs to the end of the text.
_PRIVATE_KEY_PATTERNS = [
    RegexPattern(
        "pem",
        r"-----BEGIN (?P<kind>(?:[A-Z0-9]+ )*)PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
        r"(?:-----END (?P=kind)PRIVATE KEY(?: BLOCK)?-----|\Z)",
        1.0,
    ),
    RegexPattern("putty", r"PuTTY-User-Key-File-\d+:[\s\S]*?(?:Private-MAC: [0-9a-f]+|\Z)", 1.0),
    # The tail of a PEM key without its BEGIN line (a search chunk cut it off, a partial paste),
    # and a body of full-width base64 lines alone: key material even without its armour.
    RegexPattern("pem_tail", r"(?m)(?:^[A-Za-z0-9+/=]{16,}\r?\n)*^-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",
                 1.0),
    RegexPattern("key_body", r"(?m)(?:^[A-Za-z0-9+/]{60,76}\r?\n){2,}(?:^[A-Za-z0-9+/=]{1,76}$)?", 0.9),
    # a raw 32-byte key in hex after a cue: "wallet private key: 4c0883…"
    RegexPattern("hex_key", r"(?i)\b(?:private|priv|secret|signing|wallet|seed)[ _\-]?key\b[^\n]{0,20}?[:=]?[ \t]*[\"']?"
                            r"(?P<v>(?:0x)?[0-9a-fA-F]{64})\b", 0.95, group="v"),
    # a wallet's recovery words: "seed phrase: abandon ability able …" (12 to 24 words)
    RegexPattern("seed_phrase", r"(?i)\b(?:seed|recovery|mnemonic|backup)[ \t]+(?:phrase|words)\b[^\n:=]{0,12}[:=]?[ \t]*"
                                r"(?P<v>(?:[a-z]{3,8}[ \t]+){11,23}[a-z]{3,8})\b", 0.95, group="v"),
    RegexPattern("ssh2", r"---- BEGIN SSH2 (?:ENCRYPTED )?PRIVATE KEY ----[\s\S]*?"
                         r"(?:---- END SSH2 (?:ENCRYPTED )?PRIVATE KEY ----|\Z)", 1.0),
]

_NOT_A_PASSWORD = {"required", "incorrect", "invalid", "reset", "changed", "expired", "forgotten", "wrong",
                   "the", "a", "an", "your", "my", "is", "was", "and", "or", "***", "*****", "none", "null"}


def _is_password_value(value: str) -> bool:
    return value.strip().lower() not in _NOT_A_PASSWORD and not is_code_reference(value)


# ---- cards and phones: wider than presidio's patterns -------------------------------------


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


# Issuer prefixes and lengths (Visa, Mastercard incl. the 2-series, Amex, Discover, JCB,
# Diners, Maestro, UnionPay). Presidio's pattern misses 2-series, 19-digit Visa and Maestro.
_IIN = [
    (re.compile(r"4"), (13, 16, 19)),
    (re.compile(r"5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)"), (16,)),
    (re.compile(r"3[47]"), (15,)),
    (re.compile(r"6011|65|64[4-9]"), (16, 17, 18, 19)),
    (re.compile(r"35(?:2[89]|[3-8])"), (16, 17, 18, 19)),
    (re.compile(r"3(?:0[0-5]|[68])"), (14, 15, 16)),
    (re.compile(r"5[06-9]|6"), tuple(range(12, 20))),
    (re.compile(r"62"), (16, 17, 18, 19)),
    (re.compile(r"2131|1800"), (15,)),
]


def is_card_number(value: str) -> bool:
    digits = re.sub(r"[ \-.]", "", value)
    if not digits.isdigit() or not luhn_ok(digits) or len(set(digits)) < 3:
        return False
    return any(rx.match(digits) and len(digits) in lengths for rx, lengths in _IIN)


def _luhn_digits(value: str) -> bool:
    digits = re.sub(r"[ \-.]", "", value)
    return digits.isdigit() and luhn_ok(digits) and len(set(digits)) >= 3


_CARD_RX = r"(?<![\d\-])\d(?:[ \-]?\d){11,18}(?![\d\-])"
CARD_CONTEXT = ["card", "cc", "credit", "debit", "visa", "mastercard", "amex", "maestro", "discover", "jcb"]
_CARD_DOTTED_RX = r"(?<![\d.])\d{4}(?:\.\d{4}){2}\.\d{1,7}(?![\d.])"  # 4111.1111.1111.1111
_CARD_PATTERNS = [
    RegexPattern("card", _CARD_RX, 0.9, validate=is_card_number),
    RegexPattern("card_dotted", _CARD_DOTTED_RX, 0.9, validate=is_card_number),
    # Luhn-valid but an unlisted issuer: a card only when the text says so.
    RegexPattern("card_luhn_context", _CARD_RX, 0.3, validate=_luhn_digits),
]


def _phone_digits_ok(value: str) -> bool:
    n = sum(c.isdigit() for c in value)
    return 6 <= n <= 15


PHONE_CONTEXT = ["phone", "telephone", "tel", "call", "mobile", "cell", "fax", "desk", "office", "number", "reach",
                 "text", "sms", "whatsapp", "contact", "answering", "messages", "registered", "dial", "ring", "mob",
                 "extension", "ext", "ping", "landline", "hotline", "电话", "手机", "联系", "telefon", "teléfono", "téléphone",
                 # "call me", "mobile", "landline", "number" in the languages whose dates the DOB cue reads
                 "telefono", "telefone", "telefoon", "telefonu", "tél", "kom", "komórka", "komórkowy", "stacjonarny",
                 "zadzwoń", "dzwoń", "numer", "móvil", "movil", "celular", "cellulare", "llámame", "llamar", "portable",
                 "appelle", "appelez", "handy", "anrufen", "ruf", "chiamami", "chiama", "bellen", "bel", "mobiel",
                 "número", "numero", "numéro", "nummer", "rufnummer",
                 # and in scripts that the patterns above would otherwise read without any cue
                 "電話", "携帯", "전화", "휴대폰", "핸드폰", "연락처", "телефон", "тел", "моб", "هاتف", "جوال", "טלפון",
                 "נייד", "फ़ोन", "फोन", "मोबाइल", "โทร"]
_PHONE_PATTERNS = [
    # +41 53 147 37 99, +447700556093, +1 (415) 555-0134: a country code is enough evidence.
    RegexPattern("international", r"(?<![\w+])\+\d{1,3}(?:[ .\-]?\(\d{1,4}\))?(?:[ .\-]?\d{1,5}){1,5}"
                 r"(?:\s?(?:x|ext\.?)\s?\d{1,5})?(?!\w)", 0.6,
                 validate=_phone_digits_ok),
    # (1) 995-8140, 730 064 218, 650-752-7354x549: needs a context word to pass the threshold.
    RegexPattern("grouped", r"(?<![\w+\-./])\(?\d{1,5}\)?(?:[ .\-]\(?\d{1,8}\)?){1,4}"
                 r"(?:\s?(?:x|ext\.?)\s?\d{1,5})?(?![\w/]|-\d|\.\d)", 0.3, validate=_phone_digits_ok),
    RegexPattern("digits", r"(?<![\w+\-./])\d{7,13}(?![\w/]|-\d|\.\d)", 0.2),
    # a Chinese mobile number without +86: "138 0013 8000", "13800138000"
    RegexPattern("cn_mobile", r"(?<![\w+\-./])1[3-9]\d[ \-]?\d{4}[ \-]?\d{4}(?![\w/]|-\d|\.\d)", 0.55),
]


# ---- names the small model misses ----------------------------------------------------------

# First names that are also everyday English words: never a name without a cue or a surname.
_COMMON_WORDS = {
    "will", "may", "mark", "bill", "grace", "hope", "summer", "page", "long", "young", "green", "art", "jack",
    "joy", "faith", "sunny", "rich", "chase", "guy", "paris", "lincoln", "sofia", "victoria", "jordan", "chad",
    "georgia", "april", "june", "august", "january", "march", "sunday", "monday", "friday", "love", "rose",
    "lily", "ruby", "amber", "crystal", "dawn", "eve", "ivy", "pearl", "sky", "storm", "river", "autumn",
    "winter", "spring", "happy", "major", "king", "prince", "duke", "earl", "baron", "bishop", "bank", "card",
    "street", "city", "new", "north", "south", "east", "west", "united", "states", "email", "phone", "thanks",
    "hi", "hello", "dear", "please", "can", "could", "would", "should", "is", "are", "was", "the", "a", "an",
    "i", "you", "he", "she", "we", "they", "it", "my", "your", "our", "their", "his", "her", "this", "that",
    "what", "who", "why", "how", "when", "where", "yes", "no", "ok", "not", "all", "one", "man", "don", "job",
    "sale", "sales", "best", "star", "angel", "blessing", "precious", "justice", "liberty", "harmony", "honey",
    "cash", "gold", "silver", "read", "say", "look", "see", "tell", "call", "see", "van", "de", "la", "le",
    "del", "von", "der", "den", "bin", "al", "el", "di", "da", "do", "dos", "das",
}
# Titles and everyday words that some locale's name list holds: taken for names, they made
# "Doctor Appointment" and "Yoga Class" people. Left out of the name lists altogether; words
# that are also someone's name somewhere (Peer, Odd, Tone, Marine, Constant, Mate) stay in.
_NOT_NAMES = frozenset("""
doctor captain general admiral colonel governor pastor mentor author yoga council ninja safari server valid
floor edit line loan among beta canal greet jail joke kick lean mile owe wage
""".split())
_STOP_WORDS = {"the", "a", "an", "and", "or", "but", "i", "you", "he", "she", "we", "they", "it", "is", "are",
               "was", "not", "no", "yes", "this", "that", "my", "your", "please", "thanks", "hi", "hello"}
# Month and day names: a "place" made of these and numbers is a date ("- June 12").
_CALENDAR = frozenset("""
january february march april may june july august september october november december jan feb mar apr jun
jul aug sep sept oct nov dec monday tuesday wednesday thursday friday saturday sunday mon tue tues wed thu
thur thurs fri sat sun
""".split())
# Words that are never personal data by themselves, whatever their case: calendar words, form
# labels, address words, languages, and names of everyday software a request may mention.
_HARD_WORDS = set(_CALENDAR) | set("""
today tomorrow yesterday tonight morning afternoon evening night weekend christmas
easter mr mrs ms miss mx dr prof sir madam dear hi hello hey thanks thank regards cheers sincerely best
note notes subject re fw fwd cc bcc attn info information website web site url link e-mail email mail phone
tel telephone mobile cell fax desk office home work address addresses billing shipping postcode zip zipcode
apt apartment suite ste unit floor fl room rm box po street st road rd avenue ave lane ln drive dr court ct
place pl boulevard blvd way highway square plaza city town state county country region province
personal contact details name names first last full middle maiden surname username user account number no
date birth birthday dob age ssn iban bic swift card credit debit visa mastercard amex cvv pin password
english french german spanish italian portuguese dutch russian chinese japanese korean arabic hindi greek
polish swedish norwegian danish finnish turkish hebrew latin european american british canadian australian
asian african mexican indian irish scottish welsh
python java javascript typescript linux windows macos ios android google microsoft apple amazon aws azure
github gitlab docker kubernetes excel word powerpoint outlook gmail slack zoom teams chrome firefox safari
sql postgres postgresql mysql sqlite json yaml toml html css http https api rust golang ruby php swift
kotlin bash git npm pip pypi openai chatgpt gpt llama tether internet wifi bluetooth usb pdf csv markdown
readme todo fixme fyi asap faq ok okay yes no react vue angular node nodejs django flask fastapi pandas numpy
tensorflow pytorch jupyter vscode vim emacs nginx apache redis mongodb kafka spark terraform ansible jenkins
jira confluence notion figma trello salesforce shopify wordpress stripe paypal netflix spotify youtube facebook
instagram twitter whatsapp telegram tiktok linkedin reddit wikipedia iphone ipad macbook xbox playstation
nintendo intel amd nvidia cuda unix ubuntu debian fedora
select insert update delete from where join group order limit values into create table drop alter index
null true false begin end commit rollback
meanwhile however therefore moreover furthermore otherwise also anyway finally firstly secondly lastly
regarding attached attachment attachments summary question answer example examples task instructions update
reminder agenda minutes draft report invoice receipt order request reply response context input output
background goal goals problem error errors steps status result results expected actual environment version
description title author priority severity owner assignee reviewer deadline budget scope requirements
constraints feedback comments prompt system assistant human bot pros cons tags keywords category topic
action decision warning caution tip tips overview introduction conclusion references appendix abstract
grandma grandpa granny grandad grandmother grandfather mommy daddy auntie
payment payments transfer transfers refund refunds deposit subscription premium reunion
""".split())


@functools.cache
def common_words() -> frozenset[str]:
    """Lower-case English words: Faker's en_US lorem list (about a thousand of the most common
    words), the words of its job titles and company slogans, spaCy's stop words, and the lists here."""
    from faker.providers.company.en_US import Provider as Company
    from faker.providers.job.en_US import Provider as Job
    from faker.providers.lorem.en_US import Provider as Lorem
    from spacy.lang.en.stop_words import STOP_WORDS

    words = {w.lower() for w in Lorem.word_list} | set(STOP_WORDS) | _COMMON_WORDS | _HARD_WORDS
    for phrase in [*Job.jobs, *(w for group in Company.catch_phrase_words for w in group),
                   *(w for group in Company.bsWords for w in group)]:
        words.update(p for p in re.split(r"[\s,/()\-]+", phrase.lower()) if len(p) > 2 and p.isalpha())
    return frozenset(words)


@functools.cache
def hard_words() -> frozenset[str]:
    return frozenset(_HARD_WORDS | set(_STOP_WORDS) | _DATA_WORDS)


_NAME_CUE = re.compile(
    r"(?i)(?:\bname is|\bname\s*:|\bname\?|\bi am|\bi'm|\bhi|\bhello|\bhey|\bdear|\bthanks?,?|\bsincerely,?|"
    r"\bregards,?|\bsaid|\basked|\btold|\bby(?=\s*:)|\bmr\.?|\bmrs\.?|\bcall(?:s|ed)? me|\bnamed|"
    r"\bms\.?|\bmiss|\bdr\.?|\bprof\.?)[ \t]*:?[ \t]+$"
)
_GREETING_CUE = re.compile(r"(?i)\b(?:hi|hello|hey|dear|thanks?|sincerely|regards)[ \t]*,?[ \t]+$")
_WORD = re.compile(r"[^\W\d_][\w'’\-]*\.?|[^\W\d_]\.")
_POSSESSIVE = re.compile(r"['’]s?$")
# Surname particles: "Isolda van Gameren", "Maria de la Cruz".
_PARTICLES = {"van", "von", "de", "der", "den", "da", "di", "du", "del", "della", "la", "le", "dos", "das",
              "ten", "ter", "bin", "ibn", "al", "el", "y"}


@functools.cache
def _name_lists() -> tuple[frozenset[str], frozenset[str]]:
    """First and last names from Faker's person providers in every Latin-script locale."""
    import importlib
    import pkgutil

    import faker.providers.person as people

    first: set[str] = set()
    last: set[str] = set()
    for mod in pkgutil.iter_modules(people.__path__):
        provider = importlib.import_module(f"{people.__name__}.{mod.name}").Provider
        # every list a locale keeps: first_names_female, last_names_male, pl_PL's male_last_names
        # and unisex_last_names, bn_BD's last_names_islamic…
        for attr in dir(provider):
            bucket = last if "last_name" in attr else first if "first_name" in attr else None
            values = getattr(provider, attr, None)
            if bucket is not None and isinstance(values, (list, tuple, set, frozenset, dict)):
                bucket.update(v for v in values if isinstance(v, str) and v[:1].isupper())
    # Polish surnames in -ski, -cki, -dzki are -ska, -cka, -dzka for a woman (Kowalski, Kowalska)
    last.update(n[:-1] + "a" for n in list(last) if n.endswith(("ski", "cki", "dzki")))
    return (frozenset(n for n in first if n.lower() not in _NOT_NAMES),
            frozenset(n for n in last if n.lower() not in _NOT_NAMES))


def particle_chain(text: str, words: Sequence[tuple[int, int, str]], j: int) -> bool:
    """``words[j]`` starts "van Gameren" or "van der Voet": one or two particles, then a
    capitalised word, separated by single spaces."""
    for k in (j + 1, j + 2):
        if words[j][2] not in _PARTICLES or k >= len(words) or text[words[k - 1][1]:words[k][0]] != " ":
            return False
        if words[k][2][:1].isupper():
            return True
        if words[k][2] not in _PARTICLES:
            return False
    return False


def name_words(text: str) -> list[tuple[int, int, str]]:
    """Word tokens as (start, end, word); a trailing full stop and a possessive "'s" are left out
    of the word ("Marina's" is "Marina"), but a full stop stays in the span (an initial)."""
    out = []
    for m in _WORD.finditer(text):
        start, end, w = m.start(), m.end(), m.group().rstrip(".")
        if len(w) > 2 and w[-1] in "'’s" and _POSSESSIVE.search(w):
            w = _POSSESSIVE.sub("", w)
            end = start + len(w)
        out.append((start, end, w))
    return out


def is_sentence_start(text: str, start: int) -> bool:
    """The word at ``start`` opens the text, a line, or a sentence (quotes and bullets skipped)."""
    i = start - 1
    while i >= 0 and text[i] in " \t\"'“”‘’([{*•>#-":
        i -= 1
    return i < 0 or text[i] in ".!?\n:"


class NameListRecognizer(EntityRecognizer):
    """Names the small spaCy model misses: a known first name in Title case, extended over
    initials, particles and further Title-case words that are not common English, or any
    Title-case word right after a cue such as "my name is"."""

    def __init__(self) -> None:
        super().__init__(supported_entities=["PERSON"], name="name_list")

    def load(self) -> None:
        self._first, self._last = _name_lists()
        self._common = common_words()

    def _everyday(self, word: str) -> bool:
        """Common or frequent English. ``frequent_english`` takes 0.3 s to build: only a greeting
        followed by an unlisted word asks for it, so a scan that meets none never loads it."""
        from tether.privacy.recall import frequent_english  # recall builds on this module

        return word.lower() in self._common or word.lower() in frequent_english()

    @staticmethod
    def _is_name_word(word: str, strict: bool = True) -> bool:
        if not word[:1].isupper() or (word.isupper() and len(word) > 1):
            return False
        return word.lower() not in (_COMMON_WORDS if strict else _STOP_WORDS)

    def _surname_like(self, word: str) -> bool:
        return self._is_name_word(word) and (word in self._last or word in self._first
                                             or word.lower() not in self._common)

    def analyze(self, text, entities, nlp_artifacts=None):  # type: ignore[no-untyped-def]
        if entities and "PERSON" not in entities:
            return []
        words = name_words(text)
        out, i = [], 0
        while i < len(words):
            start, end, w = words[i]
            cue = bool(_NAME_CUE.search(text, max(0, start - 20), start))
            if cue and particle_chain(text, words, i):
                pass  # "her maiden name is van Bokhorst"
            elif not cue and i + 2 < len(words) and self._is_name_word(w, strict=False) and len(w) > 1:
                # "Pertti M Palander": Title-case word, initial, Title-case word.
                # Not "Conference Room B. Weekly": the first word must not be everyday English.
                w1, w2 = words[i + 1][2], words[i + 2][2]
                cue = (len(w1) == 1 and w1.isupper() and self._is_name_word(w2) and "\n" not in text[start:words[i + 2][1]]
                       and (w in self._first or w.lower() not in self._common))
            known = w in self._first and self._is_name_word(w) and not (len(w) > 3 and w.lower() in _HARD_WORDS)
            # after a greeting or a sign-off, an everyday word no name list holds is none: "Hi Team",
            # "Dear Client", "Best regards, Support Team" (but "Name: Bars Sinko", "Mr Happy")
            everyday = (cue and w not in self._first and w not in self._last
                        and bool(_GREETING_CUE.search(text, max(0, start - 20), start)) and self._everyday(w))
            if not (known or (cue and not everyday and (self._is_name_word(w, strict=False) or w in _PARTICLES)
                              and len(w) > 1)):
                i += 1
                continue
            j, surname, initial_seen = i + 1, False, False
            while j < len(words) and j - i <= 3:
                s2, e2, w2 = words[j]
                if text[end:s2].strip(" \t") not in ("", ".") or "\n" in text[end:s2]:
                    break  # punctuation, a line break, or a possessive ("Maria's") ends the name
                if text[end - 1] == "." and len(words[j - 1][2]) > 1:
                    break  # a full stop after a word, not an initial, ends the sentence ("Hall. Quarterly")
                initial = len(w2) == 1 and w2.isupper()
                particle = particle_chain(text, words, j) or (w2 in _PARTICLES and words[j - 1][2] in _PARTICLES)
                # A surname is a known one, a Title-case word that is not common English, or
                # any Title-case word after an initial ("Zeliha I Sultygov").
                if not (initial or particle or (self._is_name_word(w2) and (self._surname_like(w2) or initial_seen))):
                    break
                surname = surname or not (initial or particle)
                initial_seen = initial_seen or initial
                end = e2
                j += 1
            if text[end - 1] == "." and len(text[start:end].split()[-1]) > 2:
                end -= 1  # a sentence full stop, not an initial
            sentence_start = is_sentence_start(text, start)
            # Above spaCy's 0.85 so a known first name beats the small model's LOCATION guess.
            # A lone known first name opening a sentence ("Samantha is from…") counts unless it
            # is also a common word.
            score = (0.9 if cue else 0.88 if surname else 0.86 if not sentence_start
                     else 0.6 if w.lower() not in self._common else 0.3)
            out.append(_result(self, "PERSON", start, end, score, "name list" + (" after a cue" if cue else "")))
            i = j
        return out


_COMPANY_WORDS = {"inc", "ltd", "llc", "plc", "corp", "co", "gmbh", "ag", "sa", "spa", "bv", "nv", "oy", "ab", "as",
                  "kg", "sarl", "pty", "limited", "company", "corporation", "group", "holdings", "partners", "bros"}

# Names listed together: "Caird and Jones", "founders: Lapresse, Morris and Wright".
_LIST_SEP = r"(?:[ \t]*+,[ \t]*+(?:(?<=[ \t])(?:and|or|&)[ \t]++)?|[ \t]++(?:and|or|&)[ \t]++)"
_CAP = r"[^\W\d_a-z][^\W\d_]*(?:['’\-][^\W\d_]+)*"
_RIGHT_NEIGHBOUR = re.compile(rf"{_LIST_SEP}({_CAP})")
_LEFT_NEIGHBOUR = re.compile(rf"({_CAP}){_LIST_SEP}$")


def listed_names(text: str, spans: Sequence[tuple[str, int, int]]) -> list[tuple[int, int]]:
    """Title-case words in a comma/"and" list with a detected person: they are people too.

    ``spans`` are (entity_type, start, end); returns the (start, end) of each new name. A word
    that is common English (unless it is also a known surname), already covered by another
    type, or on another line is not taken.
    """
    first, last = _name_lists()
    common = common_words()
    taken = [(s, e) for _, s, e in spans]
    persons = [(s, e) for t, s, e in spans if t == "PERSON"]
    out: list[tuple[int, int]] = []

    def ok(a: int, b: int) -> bool:
        w = text[a:b]
        if w.isupper() or len(w) < 2 or any(x < b and a < y for x, y in taken):
            return False
        if re.search(r"['’](?!(?<=^\w['’])[A-Z])", w) or w.lower() in _COMPANY_WORDS:
            return False  # "I'm", "Corporation's", "Plc"; but "O'Brien", "L'Heureux" are names
        low = w.lower()
        return low not in hard_words() and low not in _COMMON_WORDS and (low not in common or w in last or w in first)

    while persons:
        s, e = persons.pop()
        found = []
        m = _RIGHT_NEIGHBOUR.match(text, e)
        if m and ok(*m.span(1)):
            found.append(m.span(1))
        m = _LEFT_NEIGHBOUR.search(text, max(0, s - 40), s)
        if m and ok(*m.span(1)):
            found.append(m.span(1))
        for span in found:
            out.append(span)
            taken.append(span)
            persons.append(span)
    return out


# ---- street addresses and dates of birth ----------------------------------------------

_STREET_SUFFIX = (
    r"(?:(?:Street|Avenue|Road|Boulevard|Lane|Drive|Court|Place|Terrace|Way|Parkway|Circle|Square|Highway|"
    r"Trail|Crescent|Close|Row|Alley|Plaza|Walk|Gardens|Grove|Hill|Park|Mews|Loop|Run|Pike|Path|Route|"
    r"Heights|Stream|Valley)\b|(?:St|Ave|Rd|Blvd|Ln|Dr|Ct|Pl|Ter|Pkwy|Cir|Sq|Hwy|Trl|Rte)\b\.?)"
)
_UNIT = r"(?:,?\s+(?:Apt|Apartment|Suite|Ste|Unit|Floor|Fl|Room|Rm|#)\.?\s*[A-Za-z0-9\-]+)?"
_CAP_WORD = r"(?:[A-Z][\w'’.\-]*|\d+(?:st|nd|rd|th)|de|del|la|le|van|von|der)"
_STREET_PATTERNS = [
    # 221B Baker Street, 1600 Pennsylvania Ave NW, 5th Avenue (with a number)
    RegexPattern("number_first", rf"\b\d{{1,6}}[A-Za-z]?(?:-\d+)?,?\s+(?:{_CAP_WORD}\s+){{0,4}}{_STREET_SUFFIX}"
                 rf"(?:\s+(?:N|S|E|W|NE|NW|SE|SW)\b)?{_UNIT}", 0.7),
    # Via Roma 12, Rue de Rivoli 99, Calle Mayor 5
    RegexPattern("prefix_street", r"\b(?:Via|Viale|Rue|Calle|Avenida|Av\.|Rua|Rúa|Strada|Piazza|Corso|Plaza|Paseo|"
                 r"Avenue|Boulevard|Chemin|Route|Ulica|ul\.|Ctra\.|Carretera|Camino|Ronda|Rambla|Travessa|Travesía|"
                 r"Largo|Praça|Estrada|Escada|Alameda|Quai|Allée|Impasse)[ \t]+(?:[\w'’.\-]+[ \t]+){0,4}\d{1,5}[A-Za-z]?"
                 r"(?:/\d{1,4}[A-Za-z]?)?\b", 0.65),
    # Polish estates, avenues and squares: "os. Kalinowe 14/27", "al. Jerozolimskie 65/79"; a capitalised
    # name must follow, and "et al." is a citation, so "et al. 2019" and "et al. Nature 2020" are no street
    RegexPattern("polish_prefix", r"(?<![\w.])(?<!et )(?:os\.|al\.|pl\.|Osiedle|Aleja|Aleje|Plac)[ \t]+[A-ZĄĆĘŁŃÓŚŹŻ][\w'’.\-]*"
                 r"(?:[ \t]+[\w'’.\-]+){0,3}[ \t]+\d{1,5}[A-Za-z]?(?:/\d{1,4}[A-Za-z]?)?\b", 0.65),
    # 12 rue de Rivoli, 4698 rue des Églises Est, 7 Avenue des Champs-Élysées
    RegexPattern("number_then_street_word",
                 r"\b\d{1,5}[A-Za-z]?,?[ \t]+(?:(?i:rue|chemin|allée|impasse|quai|calle|avenida|rua|viale|piazza|corso)|"
                 r"route|place|cours|avenue|boulevard|"
                 r"Via|Avenue|Boulevard)(?:[ \t]+(?:(?:des|de|du|la|le|les|della|del|di|da|dos|das|do)\b"
                 r"|[dl]['’][A-ZÀ-Þ][\w\-]*|[A-ZÀ-Þ][\w'’\-]*)){1,5}", 0.7),
    # "the corner of Escada Feijão 41 and Bermúdez Roads"
    RegexPattern("corner", r"(?i:\bcorner) of\s+(?P<v>(?:[^\W_][\w'’.\-]*\s+){1,5}?(?:and|&)\s+[^\W\d_][\w'’\-]*"
                 r"(?:[ \t]+(?:[A-ZÀ-Þ][\w'’\-]*|\d{1,5}))*)", 0.7, group="v"),
    # Hauptstraße 5, Strojírenská 1006, Kongensgade 12
    RegexPattern("suffix_street", r"\b[A-ZÀ-Ž][\w'’\-]{0,40}(?:straße|strasse|str\.|gasse|weg|allee|platz|vej|gade|"
                 r"gatan|vägen|veien|laan|straat|plein|ská|ní|ova|ulica|utca|katu|tie)[ \t]+\d{1,5}[A-Za-z]?\b",
                 0.65),
    # 42 Zorgvlietstraat, 7 Kongensgade: the number first, the street word ends in its suffix
    RegexPattern("number_then_suffix_street", r"\b\d{1,5}[A-Za-z]?,?[ \t]+[A-ZÀ-Ž][\w'’\-]{0,40}(?:straße|strasse|"
                 r"gasse|weg|allee|platz|vej|gade|gatan|vägen|veien|laan|straat|plein|gracht|kade|ulica|utca|katu)\b",
                 0.65),
    RegexPattern("po_box", r"(?i)\b(?:P\.?\s?O\.?\s+Box|Postbox|Box)\s+\d{1,6}\b", 0.7),
    RegexPattern("unit", r"\b(?:Apt|Apartment|Suite|Ste|Unit|Flat)\.?\s*#?\d+[A-Za-z]?\b", 0.7),
    # US military mail: "PSC 3412, Box 5242\nAPO AA 29282", "USNS Guibord\nFPO AA 49371"
    RegexPattern("military", r"\b(?:(?:PSC|CMR|Unit)\s+\d{3,5}(?:,?\s+Box\s+\d{3,5})?|(?:USNS|USNV|USS|USCGC)\s+[\w'’\-]+)"
                 r"\s*\n?\s*[AFD]PO\s+A[AEP]\s+\d{5}\b", 0.9),
    RegexPattern("apo_line", r"\b[AFD]PO\s+A[AEP]\s+\d{5}\b", 0.8),
    # "deliver to 55 maple avenue": all lower case; the words between may not be "miles down the"
    RegexPattern("number_first_lower", r"\b\d{1,5}[a-z]?[ \t]+(?:(?!(?:the|a|an|of|to|down|up|on|in|from|along|across|"
                 r"by|and|or|at|off|miles?|km|kilometers?|minutes?|mins?|blocks?|houses?|doors?|steps?|yards?|feet|"
                 r"metres?|meters?)\b)[a-z][a-z'\-]*[ \t]+){1,3}(?:street|avenue|road|lane|drive|boulevard|court|"
                 r"terrace|crescent|close|place|parkway|st|ave|rd|blvd|ln|dr)\b", 0.6),
]

_POSTCODE_CUE = (r"(?<![\w])(?i:post(?:al)?[ \t]?code|zip(?:[ \t]?code)?|eircode|plz|postleitzahl|code[ \t]postal|"
                 r"c[óo]digo[ \t]postal|kod[ \t]pocztowy|cep)")
_CANADA = re.compile(r"\b(?:AB|BC|MB|NB|NL|NS|NT|NU|ON|PE|QC|SK|YT)\b|(?i:\bcanada\b|qu[ée]bec|ontario|alberta|"
                     r"british columbia|manitoba|nova scotia|new brunswick|saskatchewan|newfoundland)")
_IRELAND = re.compile(r"(?i:\bireland\b|\b[ée]ire\b|\bdublin\b|\bco\.[ \t]*[A-Z]|\bcounty\b|eircode|post[ \t]?code)")


def _postcode_value(value: str) -> bool:
    """A code with a digit, and at least four digits when it is digits only ("zip 12 files" is none)."""
    digits = sum(c.isdigit() for c in value)
    return digits > 0 and (digits >= 4 or any(c.isalpha() for c in value)) and len(value.replace(" ", "")) >= 4


def _line_says(rx: re.Pattern[str]) -> Callable[[str, int, int], bool]:
    """A postcode shape that other codes share counts only on a line that names its country."""
    def check(text: str, start: int, end: int) -> bool:
        line_start, line_end = _line_around(text, start, end)
        return bool(rx.search(text[line_start:start]) or rx.search(text[end:line_end]))
    return check


_US_STATES = ("AL|AK|AZ|AR|CA|CO|CT|DE|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|NY|NC|ND|"
              "OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|DC|PR")
_POSTCODE_PATTERNS = [
    # India: the PIN code of an address (its cue is the PIN patterns' too; see _indian_pin)
    RegexPattern("indian_pin", r"(?i)\bpin[ \t_\-]?(?:code)?\b[\"']?[ \t]*(?:[:=#\-]|\bis\b)?[ \t]*(?P<v>\d{6})\b", 0.8,
                 group="v", in_context=_indian_pin),
    # UK: "LS1 4AB", "SW1A 1AA", "M1 1AE"
    RegexPattern("uk_postcode", r"\b(?:[A-PR-UWYZ][A-HK-Y]?\d[A-Z\d]?|GIR)[ \t]?\d[ABD-HJLNP-UW-Z]{2}\b", 0.7),
    # US: a ZIP after a state's code, "Springfield, IL 62704-1234"
    RegexPattern("us_zip", rf"\b(?:{_US_STATES})[ \t]+\d{{5}}(?:-\d{{4}})?\b", 0.7),
    # any country's code after its name: "postcode D02 X285", "PLZ 10115", "her zip is 94110"
    RegexPattern("after_postcode_cue", _POSTCODE_CUE + r"\b[\"']?[ \t]*(?:[:=#\-]|\b(?i:is)\b)?[ \t]*"
                 r"(?P<v>[A-Z\d]{2,5}(?:[ \-][A-Z\d]{2,4})?)\b", 0.75, group="v", validate=_postcode_value),
    # Canada: "Ottawa ON K1A 0B1", on a line that names a province or Canada
    RegexPattern("ca_postal_code", r"\b[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z][ \t]?\d[ABCEGHJ-NPRSTV-Z]\d\b", 0.7,
                 in_context=_line_says(_CANADA)),
    # Ireland's Eircode: "D02 X285", on a line that names Ireland, a county or Dublin
    RegexPattern("eircode", r"\b(?:[AC-FHKNPRTV-Y]\d{2}|D6W)[ \t]?[0-9AC-FHKNPRTV-Y]{4}\b", 0.7,
                 in_context=_line_says(_IRELAND)),
    # the Netherlands: "Herengracht 1, 1012 AB Amsterdam": after a street and number, before the town
    RegexPattern("nl_postcode", r"(?<=\d,[ \t])[1-9]\d{3}[ \t]?(?!SA|SD|SS)[A-Z]{2}(?=[ \t]+[A-Z][a-z])", 0.7),
]

# "born", "DOB", "b-day", and the cue inside a field name: dateOfBirth, date_of_birth, birthDate, userDob
_DOB_CUE = re.compile(r"(?:(?<![A-Za-z0-9])(?i:born|birth(?:day|date)?|b-?day|dob|d\.o\.b\.?|b\.)(?![a-z])"
                      r"|(?<=[a-z])(?:Birth|Dob|DOB|Bday)"
                      # es, fr, de, pl, it, pt, nl, sv/da/no: nacimiento, né le, geboren am, ur., nato il…
                      r"|(?<![^\W\d_])(?i:nacimiento|nacid[oa]|n[ée]e?[ \t]+le|naissance|geboren|geb\.|geburtsdatum|"
                      r"geburtstag|urodzon[ya]|urodzenia|urodzi[łl]a?|ur\.|nascita|nascid[oa]|nascimento|"
                      r"geboortedatum|f[öø]dd|f[øo]dt|f[øo]dselsdato)(?![^\W\d_])|(?<![^\W\d_])nat[oa][ \t]+il\b"
                      r")[^\n]{0,30}$")
_MONTH = (r"(?i:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|"
          r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)")
_DATE = re.compile(
    r"\b(?:\d{1,2}[/.\-]\d{1,2}[/.\-](?:19|20)?\d{2}|(?:19|20)\d{2}[/.\-]\d{1,2}[/.\-]\d{1,2}|"
    rf"\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}\.?,?\s+(?:19|20)\d{{2}}|"
    rf"{_MONTH}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+(?:19|20)\d{{2}}|"
    r"(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]))\b"
)


# Month names after the cues above: Spanish, French, German, Italian, Portuguese, Dutch and
# Polish (whose dates take the genitive: "19 września").
_FOREIGN_MONTH = (r"(?i:enero|febrero|marzo|abril|mayo|junio|julio|agosto|sep?tiembre|octubre|noviembre|diciembre|"
                  r"janvier|f[ée]vrier|mars|avril|mai|juin|juillet|ao[uû]t|septembre|octobre|novembre|d[ée]cembre|"
                  r"januar|j[äa]nner|februar|m[äa]rz|juni|juli|oktober|dezember|"
                  r"gennaio|febbraio|aprile|maggio|giugno|luglio|settembre|ottobre|dicembre|"
                  r"janeiro|fevereiro|mar[çc]o|maio|junho|julho|setembro|outubro|novembro|dezembro|"
                  r"januari|februari|maart|mei|augustus|"
                  r"stycznia|lutego|marca|kwietnia|maja|czerwca|lipca|sierpnia|wrze[śs]nia|pa[źz]dziernika|"
                  r"listopada|grudnia)")
# Dates that are a birth date only after a cue: a two-digit year ("19 Oct 95") or a month
# not written in English ("7 de julio de 1994", "2. November 1979").
_CUED_DATE = re.compile(
    rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}\.?,?\s+'?\d{{2}}(?!\d)|"
    rf"\b{_MONTH}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+'?\d{{2}}(?!\d)|"
    rf"\b\d{{1,2}}\.?\s+(?:de\s+)?(?:{_FOREIGN_MONTH}|{_MONTH})\s+(?:de\s+)?(?:(?:19|20)\d{{2}}|'?\d{{2}})(?!\d)"
)


class DateOfBirthRecognizer(EntityRecognizer):
    """A date counts as personal only when the text says it is a birth date.

    Candidates are spaCy DATE entities and numeric or written dates; the cue
    (born, birthday, DOB…) must come within 30 characters before the date.
    """

    def __init__(self) -> None:
        super().__init__(supported_entities=["DATE_OF_BIRTH"], name="date_of_birth")

    def load(self) -> None:
        pass

    def analyze(self, text, entities, nlp_artifacts=None):  # type: ignore[no-untyped-def]
        if entities and "DATE_OF_BIRTH" not in entities:
            return []
        candidates = {(m.start(), m.end()) for rx in (_DATE, _CUED_DATE) for m in rx.finditer(text)}
        if nlp_artifacts is not None:
            candidates |= {(e.start_char, e.end_char) for e in nlp_artifacts.entities if e.label_ == "DATE_TIME"}
        out = []
        for start, end in sorted(candidates):
            if _DOB_CUE.search(text, max(0, start - 40), start) and any(c.isdigit() for c in text[start:end]):
                out.append(_result(self, "DATE_OF_BIRTH", start, end, 0.85, "date after a birth cue"))
        return out


# Everyday short forms that Faker's list spells out ("United States of America").
_COUNTRY_ALIASES = {"United States", "USA", "U.S.A.", "United Kingdom", "Great Britain", "Britain", "England",
                    "Scotland", "Wales", "Northern Ireland", "Russia", "South Korea", "North Korea", "Syria",
                    "Czechia", "Holland", "Ivory Coast", "Vatican", "Palestine", "Laos", "Bolivia", "Venezuela",
                    "Tanzania", "Moldova", "Macedonia", "North Macedonia", "Brunei", "Micronesia"}


@functools.cache
def country_names() -> frozenset[str]:
    """Faker's country list, each cut before a comma or bracket, and everyday short forms."""
    from faker.providers.address.en_US import Provider

    return frozenset({c.split(",")[0].split(" (")[0] for c in Provider.countries} | _COUNTRY_ALIASES)


@functools.cache
def _country_lines() -> frozenset[str]:
    return frozenset(n for c in country_names() for n in (c, c.upper()))


def country_recognizer() -> RegexRecognizer:
    """Country names (Faker's list) in Title or upper case: the small model misses many."""
    names = sorted(country_names(), key=len, reverse=True)
    alts = "|".join(re.escape(n) + "|" + re.escape(n.upper()) for n in names)
    return RegexRecognizer("LOCATION", [RegexPattern("country", rf"(?<!\w)(?:{alts})(?!\w)", 0.85)], name="country")


# ---- structured records: the field name says what the value is ----------------------------

_FIELDS = {
    "PERSON": "firstname first givenname forename lastname last surname familyname fullname middlename maidenname "
              "nombre apellido apellidos prenom prénom nomdefamille vorname nachname imie imię nazwisko nome cognome "
              "sobrenome voornaam achternaam "
              "contactname customername patientname employeename clientname holdername cardholder accountholder "
              "cardholdername accountname recipientname sendername owner assignee reviewer reporter requester "
              "requestedby assignedto manager attendee attendees organizer organiser contact",
    "LOCATION": "city town hometown birthplace placeofbirth village municipality postcode postalcode zip zipcode "
                "ciudad ville stadt wohnort ort miasto miejscowosc miejscowość citta città cidade woonplaats "
                "codigopostal códigopostal codepostal plz postleitzahl kodpocztowy",
    "STREET_ADDRESS": "street streetaddress address address1 addressline1 addressline homeaddress mailingaddress "
                      "billingaddress shippingaddress calle direccion dirección domicilio adresse rue strasse straße "
                      "anschrift ulica adres indirizzo endereco endereço rua straat",
    "DATE_OF_BIRTH": "dob dateofbirth birthdate birthday bday fechadenacimiento fechanacimiento geburtsdatum "
                     "datedenaissance dataurodzenia datadinascita datadenascimento geboortedatum geburtstag",
    "PHONE_NUMBER": "phone phonenumber mobile mobilenumber mobilephone cell cellphone telephone tel homephone workphone "
                    "telefono teléfono telefon telefoon téléphone telefone movil móvil celular cellulare handy mobil "
                    "mobiel komorka komórka telefonnummer numerotelephone numerodetelephone numerodetelefono",
    "US_SSN": "ssn socialsecuritynumber",
    "PASSWORD": "password passwd pwd pass passphrase passcode userpassword",
    "API_KEY": "apikey secretkey accesskey accesskeyid clientsecret token accesstoken authtoken refreshtoken secret",
    "ID_NUMBER": "passport passportnumber passportno nationalid nationalidnumber idnumber idcard taxid taxnumber "
                 "taxidentificationnumber accountnumber accountno bankaccount employeeid employeenumber memberid "
                 "membershipnumber patientid medicalrecordnumber mrn policynumber insurancenumber "
                 "driverslicense driverlicense driverslicence licensenumber licencenumber pesel bsn aadhaar pan nino "
                 "nin personnummer cpf curp dni nif",
}
# A login names its person as much as a name does ("jbrown", "m.wisniewski"); typed PERSON once
# the value reads as a handle that is no system account or everyday word.
_USERNAME = "USERNAME"
_FIELDS[_USERNAME] = "username user login loginname userid uname handle nickname screenname accountname"
FIELD_TYPES = {name: entity for entity, names in _FIELDS.items() for name in names.split()}
_SYSTEM_ACCOUNTS = frozenset("""root admin administrator sysadmin postgres mysql redis nginx apache www-data nobody
guest user users test tester demo deploy deployer git ubuntu debian centos ec2-user azureuser pi oracle sa jenkins
docker daemon bin sys ftp mail operator service system anonymous default dev developer staging prod production
support info noreply no-reply webmaster backup monitor api app bot ci runner""".split())
_HANDLE_VALUE = re.compile(r"@?[A-Za-z][A-Za-z0-9._\-]{1,31}")


def _is_username(value: str) -> bool:
    """A handle, not a system account, an everyday English word ("Login: failed") or code."""
    v = value.strip()
    return bool(_HANDLE_VALUE.fullmatch(v)) and handle_names_someone(v)


def handle_names_someone(handle: str) -> bool:
    """``handle`` (a login, a chat speaker) is no system account, empty value, everyday English
    word or code, so it stands for a person."""
    from tether.privacy.recall import frequent_english  # recall imports this module

    bare = handle.lstrip("@").lower()
    return (bare not in _SYSTEM_ACCOUNTS and bare not in _EMPTY_VALUES and bare not in frequent_english()
            and not is_code_reference(handle))
_JSON_FIELD = re.compile(r"\"(?P<k>[A-Za-z][\w\- ]{0,40})\"\s*:\s*\"(?P<v>(?:[^\"\\\n]|\\.){1,200})\"")
_LINE_FIELD = re.compile(r"(?m)^[ \t]*(?:-[ \t]+)?(?P<k>[A-Za-z][\w\-]{0,40})[ \t]*[:=][ \t]*[\"']?"
                         r"(?P<v>[^\s\"'#][^\n\"'#]{0,100}?)[\"']?[ \t]*(?:[ \t]#.*)?$")
_URL_FIELD = re.compile(r"[?&;](?P<k>[A-Za-z][\w\-.\[\]]{0,40})=(?P<v>[^&#\s\"'<>]{1,200})")
_FULL_NAME = re.compile(r"[^\W\d_a-z][^\W\d_]+(?: [^\W\d_a-z][^\W\d_'\-]+){1,3}")
_PROSE_LABELS = {"first", "last", "pass", "secret", "token", "address", "street", "cell"}
_EMPTY_VALUES = {"", "-", "--", "n/a", "na", "none", "null", "nil", "unknown", "tbd", "todo", "***", "redacted", "true",
                 "false", "yes", "no"}


def field_type(name: str) -> str | None:
    """The entity a record field holds, by its name: ``lastName``, ``last_name`` and "Last name" alike."""
    return FIELD_TYPES.get(re.sub(r"[\s_\-]", "", name).lower())


def _field_value_ok(entity: str, value: str) -> bool:
    v = value.strip()
    if v.lower() in _EMPTY_VALUES or len(v) > 120 or PLACEHOLDER_LIKE.fullmatch(v):
        return False
    if entity == "PASSWORD":
        return len(v) >= 4 and not is_code_reference(v)
    if entity == "API_KEY":
        return len(v) >= 8 and _is_token_value(v)
    if entity == "LOCATION" and re.fullmatch(r"\d{2,6}(?:[ \-]\d{2,4})?", v) and sum(c.isdigit() for c in v) >= 4:
        return True  # a numeric postcode under zip / postcode ("94110", "00-001")
    if entity in ("PERSON", "LOCATION", "STREET_ADDRESS"):
        return (any(c.isalpha() for c in v) and "@" not in v and "://" not in v and not is_code_reference(v)
                and not re.fullmatch(r"[\d.:a-fA-F]+", v))
    if entity == "ID_NUMBER":
        return _is_id_value(v)
    if entity in ("DATE_OF_BIRTH", "PHONE_NUMBER", "US_SSN"):
        return sum(c.isdigit() for c in v) >= (6 if entity != "DATE_OF_BIRTH" else 2)
    return True


PLACEHOLDER_LIKE = re.compile(r"<[^<>]{1,40}>|\$\{?\w+\}?|\{\{.*\}\}|%\w+%|x{3,}|\*{3,}", re.IGNORECASE)


class FieldRecognizer(EntityRecognizer):
    """Values of records whose field names say what they hold: JSON (``"lastName": "Kowalczyk"``),
    YAML, INI and .env lines (``city: Kazan``), and the columns of CSV, TSV and markdown tables
    (a ``password`` column). The small spaCy model reads such values without the sentence it
    needs, and an uncommon surname or a password in a table cell otherwise goes out as is."""

    def __init__(self) -> None:
        super().__init__(supported_entities=sorted(set(FIELD_TYPES.values()) - {_USERNAME}), name="record_field")

    def load(self) -> None:
        pass

    def analyze(self, text, entities, nlp_artifacts=None):  # type: ignore[no-untyped-def]
        wanted = set(entities or self.supported_entities)
        out: list[RecognizerResult] = []

        def add(entity: str | None, start: int, end: int, how: str) -> None:
            if entity == _USERNAME:
                if not _is_username(text[start:end]):
                    return
                entity = "PERSON"
            if entity is None or entity not in wanted:
                return
            value = text[start:end]
            lead = len(value) - len(value.lstrip())
            start, end = start + lead, start + len(value.rstrip())
            if end > start and _field_value_ok(entity, text[start:end]):
                score = 0.9 if entity in SECRETS else 0.85
                out.append(_result(self, entity, start, end, score, f"value of a {how} field"))

        for m in _JSON_FIELD.finditer(text):
            add(field_type(m.group("k")), *m.span("v"), "JSON")
        for m in _LINE_FIELD.finditer(text):
            # "First: preheat the oven", "Pass: the ball": in prose these words open instructions
            words = m.group("v").split()
            if m.group("k").lower() in _PROSE_LABELS or len(words) > 6:
                continue
            entity = field_type(m.group("k"))
            if entity == "PERSON" and len(words) > 1 and not any(c.isupper() for c in m.group("v")):
                continue  # "Manager: approve the request" is a sentence, "owner: ivanova" a name
            add(entity, *m.span("v"), "key: value")
        for entity, start, end in table_cells(text):
            add(entity, start, end, "table column")
        for m in _URL_FIELD.finditer(text):
            # "?name=Zbigniew+Wojcik&city=K%C3%B3rnik": the value is read decoded, replaced as written
            key, value = m.group("k"), unquote_plus(m.group("v"))
            if key.lower() in ("name", "fullname", "full_name", "user[name]"):
                if _FULL_NAME.fullmatch(value):
                    add("PERSON", *m.span("v"), "URL query")
            elif (entity := field_type(key)) in ("PERSON", "LOCATION", "STREET_ADDRESS", "DATE_OF_BIRTH",
                                                "PHONE_NUMBER", "US_SSN") and _field_value_ok(entity, value):
                add(entity, *m.span("v"), "URL query")
        return out


_TABLE_SEPARATORS = ("|", "\t", ",", ";")


def table_cells(text: str) -> list[tuple[str, int, int]]:
    """(entity, start, end) of each cell under a header that names a kind of personal data, in a
    CSV, TSV or markdown table: rows below the header with the same number of cells."""
    if not any(sep in text for sep in _TABLE_SEPARATORS):
        return []
    lines, pos = [], 0
    for raw in text.split("\n"):
        lines.append((pos, raw))
        pos += len(raw) + 1
    out: list[tuple[str, int, int]] = []
    i = 0
    while i < len(lines):
        start, line = lines[i]
        found = None
        for sep in _TABLE_SEPARATORS:
            cells = _cells(line, sep)
            if len(cells) >= 2:
                kinds = {j: field_type(line[a:b]) for j, (a, b) in enumerate(cells)}
                kinds = {j: k for j, k in kinds.items() if k}
                if kinds:
                    found = (sep, len(cells), kinds)
                    break
        if found is None:
            i += 1
            continue
        sep, width, kinds = found
        i += 1
        while i < len(lines):
            start, line = lines[i]
            cells = _cells(line, sep)
            if len(cells) != width:
                break
            if sep == "|" and all(re.fullmatch(r"\s*:?-{2,}:?\s*", line[a:b]) for a, b in cells):
                i += 1  # the markdown rule under the header
                continue
            for j, entity in kinds.items():
                a, b = cells[j]
                out.append((entity, start + a, start + b))
            i += 1
    return out


def _cells(line: str, sep: str) -> list[tuple[int, int]]:
    """(start, end) of each cell of ``line`` split on ``sep``; a markdown row's outer pipes are dropped."""
    if sep not in line:
        return []
    bounds, a = [], 0
    for i, ch in enumerate(line):
        if ch == sep:
            bounds.append((a, i))
            a = i + 1
    bounds.append((a, len(line)))
    if sep == "|":
        if bounds and not line[bounds[0][0]:bounds[0][1]].strip():
            bounds = bounds[1:]
        if bounds and not line[bounds[-1][0]:bounds[-1][1]].strip():
            bounds = bounds[:-1]
    return bounds


def private_key_recognizer() -> RegexRecognizer:
    return RegexRecognizer("PRIVATE_KEY", _PRIVATE_KEY_PATTERNS, name="private_key")


# ---- addresses written to dodge a filter --------------------------------------------------

_DOMAIN = r"[a-z0-9](?:[a-z0-9\-]{0,62})(?:\s*+(?:\.|[(\[{]\s*+dot\s*+[)\]}]|(?<=\s)dot\s++)\s*+[a-z0-9\-]{1,63})+"


def _email_domain_ok(value: str) -> bool:
    domain = re.split(r"%40|[(\[{]\s*at\s*[)\]}]|@", value, flags=re.I)[-1]
    domain = re.sub(r"(?i)\s*(?:[(\[{]\s*dot\s*[)\]}]|\s+dot\s+)\s*", ".", domain)
    return _TLD(re.sub(r"\s", "", domain)).suffix != ""


# RFC 5321's quoted local part: '"john.doe"@example.com', '"john doe"@…'. Presidio's pattern starts
# after the quote, and the name inside was all that was replaced. An escaped quote inside is read
# as a bare one (JSON escapes are read first).
_QUOTED_LOCAL_EMAIL = RegexPattern(
    "quoted_local_part", r'(?<!\w)"(?:[^"\\\r\n]|\\[^\r\n]|(?<=\w)"(?=\w)){1,64}"@\w+(?:-+\w+)*(?:\.\w+(?:-+\w+)*)+',
    0.9, validate=lambda v: _email_domain_ok(v) or _idn_top_label(v))


_OBFUSCATED_EMAIL_PATTERNS = [
    RegexPattern("percent_encoded", r"(?i)\b[\w.+\-]{1,64}%40[a-z0-9\-]+(?:\.[a-z0-9\-]+)+", 0.9,
                 validate=_email_domain_ok),
    RegexPattern("bracketed_at", rf"(?i)\b[\w.+\-]{{1,64}}\s*[(\[{{]\s*at\s*[)\]}}]\s*{_DOMAIN}", 0.85,
                 validate=_email_domain_ok),
    RegexPattern("spaced_or_wrapped_at", r"(?i)\b[\w.+\-]{1,64}(?:[ \t]*@(?=\s*\n)\s*+|[ \t]+@[ \t]*|[ \t]*@[ \t]+)"
                 r"[a-z0-9\-]+(?:\.[a-z0-9\-]+)+", 0.8, validate=_email_domain_ok),
]

# Names reserved for private networks (RFC 6762, 8375, 2606; ICANN's .internal) and the usual
# intranet ones: no public suffix, so presidio's validator drops "bob@corp.local".
_PRIVATE_SUFFIX = r"(?:local|localdomain|localhost|internal|intranet|intra|lan|corp|home|private|priv|test|example|" \
                  r"invalid|home\.arpa)"
_INTERNAL_EMAIL = RegexPattern(
    "internal_domain", rf"(?i)(?<![\w.+\-:])[\w.+\-]{{1,64}}@(?:[a-z0-9\-]{{1,63}}\.){{1,8}}{_PRIVATE_SUFFIX}(?![\w\-]|\.\w)",
    0.85)


def _octets_with_leading_zeros(value: str) -> bool:
    parts = value.split(".")
    return all(int(p) <= 255 for p in parts) and any(len(p) > 1 and p[0] == "0" for p in parts)


# "192.168.001.023": presidio's recognizer reads no octet with a leading zero.
_ZERO_PADDED_IP = RegexPattern("zero_padded_ipv4", r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w]|\.\d)", 0.6,
                               validate=_octets_with_leading_zeros)

# India's UPI payment addresses: "vikram.c@okhdfcbank", "ramesh99@ybl". No public suffix, so
# no email rule reads them, but the handles after the @ are a short, published list.
_UPI_ADDRESS = RegexPattern(
    "upi_address", r"(?i)(?<![\w.+\-@])[\w.\-]{2,64}@(?:ok(?:hdfcbank|icici|sbi|axis)|ybl|ibl|axl|paytm|"
    r"pt(?:yes|sbi|hdfc|axis)|upi|apl|yapl|ikwik|freecharge|jupiteraxis|fbl|axisbank|hdfcbank|icici|sbi|kotak|kmbl|"
    r"pnb|barodampay|aubank|idfcbank|indus|federal|rbl|yesbank|abfspay|wa(?:axis|hdfcbank|sbi|icici)|naviaxis|"
    r"superyes|slice|airtel|jio|postbank|unionbankofindia|uboi|cnrb|boi|mahb|idbi|dbs|citi|hsbc|sc)(?![\w.@\-])",
    0.8)

# A profile address names its person: linkedin.com/in/<who>, calendly.com/<who>.
_PROFILE_HANDLE = RegexPattern(
    "profile_url", r"(?i)\b(?:(?:linkedin\.com/in|calendly\.com|cal\.com|twitter\.com|x\.com|facebook\.com|"
    r"instagram\.com|t\.me|keybase\.io)/@?|(?:tiktok\.com|medium\.com|youtube\.com|threads\.net)/@)"
    r"(?!(?:home|search|explore|groups|pages|events|login|signup|share|intent|hashtag|settings|help|about|watch|"
    r"marketplace|messages|notifications|i|p|reel|stories)\b)"
    r"(?P<v>[A-Za-z]{2,}(?:[._\-][A-Za-z]{2,}){0,3})", 0.6, group="v")  # the name part; a -12345 suffix says little


# A name after "my name is" in scripts without capitals, where neither the name lists nor the
# recall-first rules can see one: "我叫王小明", "私の名前は山田太郎です", "이름은 김민준입니다",
# "اسمي محمد الأحمد", "שמי דוד כהן", "मेरा नाम राहुल शर्मा है", "ผมชื่อสมชาย".
_HAN, _KANA, _HANGUL = "\u4e00-\u9fff\u3400-\u4dbf", "\u3040-\u30ff々", "\uac00-\ud7a3"
_SCRIPT_NAME_CUES = [
    RegexPattern("name_cue_zh", rf"(?:我叫|我的名字(?:是|叫)|本人(?:姓名|名叫)|(?:姓名|名字|联系人|聯絡人|收件人)[:：]?)"
                                rf"[ \t]*(?P<v>[{_HAN}]{{2,4}})", 0.85, group="v"),
    RegexPattern("name_cue_ja", rf"(?:(?:私|わたし|僕|ぼく|俺)の名前は|お?名前[:：は]|氏名[:：は]?)[ \t]*"
                                rf"(?P<v>[{_HAN}{_KANA}・]{{1,12}}?)(?=です|だ|と申します|といいます|と言います|[。、,.\s]|$)", 0.85, group="v"),
    RegexPattern("name_cue_ja_self", rf"(?:私|わたし|僕|ぼく)は(?P<v>[{_HAN}{_KANA}・]{{2,12}}?)(?:と申します|といいます|と言います)",
                 0.85, group="v"),
    RegexPattern("name_cue_ko", rf"(?:(?:제|내)[ \t]*이름은|이름은|이름[:：]|성명[:：]?)[ \t]*"
                                rf"(?P<v>[{_HANGUL}]{{2,4}}?)(?=입니다|이에요|예요|이고|이며|라고|[ \t.,]|$)", 0.85, group="v"),
    RegexPattern("name_cue_ar", r"(?:(?:أنا[ \t]+)?[اإ]سمي|الاسم[:：])[ \t]+"
                                r"(?P<v>[\u0621-\u064a]+(?:[ \t]+(?!و)[\u0621-\u064a]+){0,2})", 0.85, group="v"),
    RegexPattern("name_cue_he", r"(?:שמי|קוראים[ \t]+לי|השם[ \t]+שלי(?:[ \t]+הוא)?|שם[:：])[ \t]+"
                                r"(?P<v>[\u05d0-\u05ea'׳״]+(?:[ \t]+[\u05d0-\u05ea'׳״]+)?)", 0.85, group="v"),
    RegexPattern("name_cue_hi", r"(?:मेरा[ \t]+नाम|नाम[:：])[ \t]+(?P<v>[\u0900-\u097f]+(?:[ \t]+[\u0900-\u097f]+){0,2}?)"
                                r"(?=[ \t]+(?:है|हूँ|हूं)|[ \t]*[।,.]|[ \t]*$)", 0.85, group="v"),
    RegexPattern("name_cue_th", r"(?:ชื่อ)[ \t]*(?P<v>[\u0e01-\u0e4e]{2,20}(?:[ \t]+[\u0e01-\u0e4e]{2,20})?)", 0.85, group="v"),
]
# A Chinese or Japanese street address with its number: "北京市朝阳区建国路88号", "銀座4丁目5番3号",
# "札幌市中央区北1条西2丁目".
# Matched on the text as written (``cjk_streets``): detection reads a CJK letter against a digit as a
# space, and these letters are what says "street".
_CJK_STREET = re.compile(
    r"(?![我你他她它在住于於的是和到从從把给給])"  # "I live at" is no part of it: "我住在…"
    # at most four divisions, never given back: their letters are Han too, and a run of "市市市…"
    # could be cut into divisions in exponentially many ways
    rf"(?:(?:[{_HAN}]{{1,6}}(?:省|市|区|區|县|縣|镇|鎮)){{0,4}}+[{_HAN}]{{1,8}}?"
    r"(?:路|街|大道|巷|胡同|弄)\d{1,5}(?:号|號)(?:[\d\-]{1,6}(?:室|楼|樓|栋|棟|单元|單元))?"
    rf"|(?:[{_HAN}]{{1,6}}(?:都|道|府|県|市|区|町|村)){{0,4}}+[{_HAN}{_KANA}]{{1,8}}?\d{{1,3}}丁目\d{{1,5}}(?:番地?|-)\d{{1,5}}(?:号)?"
    # a town cut into numbered blocks ("札幌市中央区北1条西2丁目", "旭川市4条通8丁目"): after a city
    # or ward, as "第5条" (an article of a law) is not
    rf"|(?:[{_HAN}]{{1,6}}(?:都|道|府|県|市|区|町|村)){{1,4}}+[{_HAN}{_KANA}]{{0,6}}?(?<!第)\d{{1,3}}条通?"
    rf"(?:[{_HAN}{_KANA}]{{1,4}}?\d{{1,3}}丁目)?(?:\d{{1,5}}(?:番地?|-)\d{{1,5}}号?|\d{{1,5}}番地?)?)")


def cjk_streets(text: str) -> list[tuple[int, int]]:
    """Chinese and Japanese street addresses in ``text`` as written (not unglued)."""
    return [m.span() for m in _CJK_STREET.finditer(text)] if not text.isascii() else []


# ---- identity and account numbers named by their cue ----------------------------------------

# What the number is: a passport, a licence, a tax or national ID, a health or insurance record.
# Short upper-case cues (MRN, TIN, PAN…) are case-sensitive: "pan", "sin", "tin" are words.
_ID_CUE = (r"(?:(?i:passport|driver['’]?s?[ \t]+licen[cs]e|driving[ \t]+licen[cs]e|licen[cs]e|"
           r"national[ \t]+(?:insurance|id(?:entity)?|identification)|identity[ \t]+card|id[ \t]+card|"
           r"tax(?:payer)?[ \t]+(?:id(?:entification)?|file|reference|code)|social[ \t]+insurance|"
           r"nhs|medicare|medicaid|medical[ \t]+record|patient(?:[ \t]+id)?|health[ \t]+(?:card|insurance|plan)|"
           r"insurance|policy|member(?:ship)?|account|customer|student|employee|voter|"
           r"aadhaar|aadhar|personnummer|henkilötunnus|cpr|bsn|burgerservicenummer|codice[ \t]+fiscale|"
           r"steuer-?id|steueridentifikationsnummer|sozialversicherungsnummer|pesel|curp|cpf|dni|nie|nif|nir|rut|"
           r"personalausweis|iqama|emirates[ \t]+id|regon|nip|acc(?:t|\.)?|e-?ticket|(?:t\.?c\.?[ \t]+)?kimlik)"
           r"(?:[ \t]+(?i:number|no\.?|num|nr\.?|id|#|code|numarası|nummer|numero|número|numéro|numer|n[º°]))?"
           r"|\b(?:MRN|TIN|EIN|ITIN|SIN|TFN|PAN|NINO|NI(?:[ \t]+number)?|DL|UPN|IRD|PPS|PPSN|BVN|NIN|RFC|KRS|UAN|CCCD|"
           r"EMP[ \t]+ID|ID|STK|NRIC|FIN|RRN)\b)")  # an SSN is US_SSN; a bare "ID" needs the value's five digits
# The same in scripts written without spaces, so with no word boundary before the cue: a Chinese
# or Taiwanese resident ID, Japan's My Number, a Korean resident registration number; a particle
# ("는", "は", "是") may follow.
_ID_CUE_CJK = (r"(?:(?:居民)?身份证(?:号码|号)?|身分證(?:字號|號碼|號)?|マイナンバー|個人番号|"
               r"(?:주민|외국인)(?:등록)?번호)(?:[은는이가의]|は|が|の|是|为|為)?")
# "is" in the languages whose IDs are named here: "Mi DNI es …", "il codice fiscale è …", "PESEL to …"
_ID_IS = r"\b(?:is|es|est|ist|è|é|är|er|jest|to)\b"
_ID_PATTERNS = [
    RegexPattern("id_number", rf"(?:(?<![\w])(?:{_ID_CUE})|{_ID_CUE_CJK})"
                              # a passport's issuing country between cue and number: "Passport: POL, No. EA1234567"
                              r"(?:[ \t]*:?[ \t]*[A-Z]{3},?[ \t]+(?i:no\.?|nr\.?|num|number|#))?"
                              rf"[\"']?[ \t]*(?:[:=#]|{_ID_IS})?[ \t]*[\"']?"
                              # a digit first, or up to six capitals before one ("X1234567", "QQ 12 34 56 C",
                              # "POL-2291-7781", a codice fiscale "RSSMRA85T10A562S"); a word ("since 2019") is not a number
                              r"(?P<v>(?:[A-Z]{1,6}[ \t\-]?)?\d[A-Za-z0-9\-./]{0,23}(?:[ \t](?=\d)[0-9\-./]{1,12}){0,5}"
                              r"(?:[ \t][A-Da-d](?!\w))?)(?<![\-./])(?![\w@])", 0.85, group="v"),
]


_YEARS_OR_DATE = re.compile(r"(?:19|20)\d{2}(?:[\-–/](?:19|20)?\d{2})?|\d{1,4}[\-/.]\d{1,2}[\-/.]\d{1,4}")


# Codes named by their cue: a vehicle's plate ("car reg is AB12 CDE", "Kennzeichen B-MK 2041"), a
# booking code, a VIN. Letters and digits mixed, so no _is_id_value (that wants five digits).
_PLATE_CUE = (r"(?i:\b(?:(?:car|vehicle|van)[ \t]+)?(?:vehicle|reg(?:istration)?(?:[ \t]+(?:number|no\.?|plate|mark))?|"
              r"(?:licen[cs]e|number|registration|rego)[ \t]+plate|plate(?:[ \t]+(?:number|no\.?))?|kennzeichen|"
              r"rejestracja|numer[ \t]+rejestracyjny|matr[ií]cula|immatriculation|targa|kenteken|nummerplaat))")
_CUED_CODE_PATTERNS = [
    RegexPattern("plate", rf"{_PLATE_CUE}[\"']?[ \t]*(?:[:=#]|\bis\b)?[ \t]*[\"']?"
                          r"(?P<v>[A-Z0-9]{1,8}(?:[ \-.][A-Z0-9]{1,5}){0,3})(?![\w\-])", 0.8, group="v",
                 validate=lambda v: 4 <= len(re.sub(r"[ \-.]", "", v)) <= 10 and bool(re.search(r"\d", v))
                 and bool(re.search(r"[A-Z]", v))),
    # A booking code opens the booking with the surname: "Booking ref: Q8ZK4M", "PNR 6YHQ3T"
    RegexPattern("booking_reference", r"(?i:\b(?:booking|reservation|confirmation)[ \t]+(?:ref(?:erence)?|code|number|no\.?)"
                                      r"|\bPNR|\bauftragsnummer|\bbuchungsnummer)\b[\"']?[ \t]*(?:[:=#]|\bis\b)?[ \t]*"
                                      r"(?P<v>[A-Z0-9]{5,10})\b", 0.8, group="v",
                 validate=lambda v: bool(re.search(r"\d", v)) and bool(re.search(r"[A-Z]", v))),
    RegexPattern("vin", r"\bVIN\b[\"']?[ \t]*(?:[:=#]|\bis\b)?[ \t]*(?P<v>[A-HJ-NPR-Z0-9]{17})\b", 0.9, group="v"),
]


def _is_id_value(value: str) -> bool:
    """A number, not a word, a year or a date: five digits, or four and a letter in six characters or more."""
    if _YEARS_OR_DATE.fullmatch(value.strip()):
        return False
    digits = sum(c.isdigit() for c in value)
    compact = re.sub(r"[\s\-./]", "", value)
    return (digits >= 5 or (digits >= 4 and len(compact) >= 6 and any(c.isalpha() for c in compact))) \
        and len(compact) <= 24 and not is_code_reference(value)


def _nrb_ok(value: str) -> bool:
    """A Polish account number (NRB) is the IBAN without its "PL": the same mod-97 check."""
    digits = re.sub(r"\D", "", value)
    return len(digits) == 26 and int(digits[2:] + "2521" + digits[:2]) % 97 == 1  # P=25, L=21


# Domestic account numbers written without their IBAN country code, which presidio's
# recognizer needs: Poland's 26-digit NRB, "61 1090 1014 0000 0712 1981 2874".
_DOMESTIC_IBAN = RegexPattern("pl_nrb", r"(?<![\w\-])\d{2}[ \t]?(?:\d{4}[ \t]?){5}\d{4}(?![\w\-])", 0.8,
                              validate=_nrb_ok)


# The login in an auth log line: "Accepted publickey for mwisniewski from …", "Invalid user jbrown from",
# "session opened for user kasia", "user=jbrown"
_LOG_LOGIN = RegexPattern(
    "auth_log_login", r"(?:\b(?:(?:Accepted|Failed)[ \t]+\w+[ \t]+for(?:[ \t]+invalid[ \t]+user)?|[Ii]nvalid[ \t]+user|"
    r"session[ \t]+(?:opened|closed)[ \t]+for[ \t]+user)[ \t]+|(?<![\w\-])(?:ruser|user|USER)=)"
    r"(?P<v>[A-Za-z_][\w.\-]{1,31})(?=[ \t(,;]|$)", 0.7, group="v", flags=re.M, validate=_is_username)


def builtin_recognizers() -> list[EntityRecognizer]:
    """Tether's own recognizers: secrets, street addresses, dates of birth."""
    return [
        RegexRecognizer("EMAIL_ADDRESS", _OBFUSCATED_EMAIL_PATTERNS, name="email_obfuscated"),
        RegexRecognizer("EMAIL_ADDRESS", [_INTERNAL_EMAIL], name="email_internal_domain"),
        RegexRecognizer("EMAIL_ADDRESS", [_QUOTED_LOCAL_EMAIL], name="email_quoted_local_part"),
        RegexRecognizer("IP_ADDRESS", [_ZERO_PADDED_IP], name="ip_zero_padded"),
        RegexRecognizer("PERSON", [_PROFILE_HANDLE], name="profile_handle"),
        RegexRecognizer("PERSON", [_LOG_LOGIN], name="auth_log_login"),
        RegexRecognizer("PERSON", _SCRIPT_NAME_CUES, name="name_cue_script"),
        RegexRecognizer("API_KEY", _API_KEY_PATTERNS, name="api_key"),
        RegexRecognizer("PASSWORD", _PASSWORD_PATTERNS, name="password", validate=_is_password_value),
        RegexRecognizer("PASSWORD", [_PASSWORD_HASH], name="password_hash"),
        private_key_recognizer(),
        RegexRecognizer("CREDIT_CARD", _CARD_PATTERNS, name="card_luhn", context=CARD_CONTEXT),
        RegexRecognizer("PHONE_NUMBER", _PHONE_PATTERNS, name="phone_pattern", context=PHONE_CONTEXT),
        RegexRecognizer("STREET_ADDRESS", _STREET_PATTERNS, name="street_address"),
        RegexRecognizer("ID_NUMBER", _ID_PATTERNS, name="id_number", validate=_is_id_value),
        RegexRecognizer("ID_NUMBER", _CUED_CODE_PATTERNS, name="cued_code"),
        RegexRecognizer("ID_NUMBER", [_UPI_ADDRESS], name="upi_address"),
        RegexRecognizer("IBAN_CODE", [_DOMESTIC_IBAN], name="domestic_iban"),
        RegexRecognizer("LOCATION", _POSTCODE_PATTERNS, name="postcode"),
        FieldRecognizer(),
        DateOfBirthRecognizer(),
        NameListRecognizer(),
        country_recognizer(),
    ]


# ---- false positives of the small spaCy model -----------------------------------------

# Words the small model labels PERSON/LOCATION/ORG although they name a kind of data.
_DATA_WORDS = {
    "ssn", "ssns", "iban", "ibans", "bic", "swift", "email", "e-mail", "emails", "mail", "phone", "mobile",
    "cell", "fax", "tel", "ip", "ipv4", "ipv6", "dob", "pin", "cvv", "cvc", "visa", "mastercard", "amex",
    "credit card", "card", "atm", "password", "passwd", "api", "api key", "token", "url", "id", "hi",
    "hello", "dear", "thanks", "regards", "cheers", "ok", "okay", "yes", "no", "sir", "madam", "mr", "mrs",
    "ms", "dr", "street", "address", "zip", "zip code", "postcode", "account", "bank", "iban code",
}
_NER_TYPES = {"PERSON", "LOCATION"}
_HAS_DIGIT_OR_AT = re.compile(r"[@\d]|https?://|www\.")
_WORD_OR_NUMBER = re.compile(r"[^\W_]+")


def is_false_positive(entity_type: str, value: str) -> bool:
    """True for NER hits that are really data-type words, numbers or addresses of other kinds."""
    if entity_type not in _NER_TYPES:
        return False
    v = value.strip(" \t\n.,;:!?'\"()[]{}")
    if len(v) < 2 or v.casefold() in _DATA_WORDS:
        return True  # "SSN", "Email"
    if all(len(w) > 3 and w in _HARD_WORDS for w in v.casefold().split()):
        return True  # "French", "March", "React", "Spotify Premium": every word one of those
    if entity_type == "PERSON" and _HAS_DIGIT_OR_AT.search(v):
        return True
    if entity_type == "LOCATION" and _calendar_only(v):
        return True
    if "_" in v and v.upper() == v:  # MAX_TOKENS, DB_PASSWORD: code identifiers, no person or place
        return True
    return not any(c.isalpha() for c in v)


def _calendar_only(value: str) -> bool:
    """Only month or day names and numbers, at least one name: "June 12", "Wed 15 May"."""
    words = _WORD_OR_NUMBER.findall(value.casefold())
    return any(w in _CALENDAR for w in words) and all(w in _CALENDAR or w.isdigit() for w in words)


# ---- postal address blocks ----------------------------------------------------------------

_ADDRESS_TYPES = {"STREET_ADDRESS", "LOCATION"}


def postal_block_lines(text: str, spans: Sequence[tuple[str, int, int]]) -> list[tuple[int, int]]:
    """Lines next to a street-address line in a short-line block: the addressee above it, the
    town, region and postcode below. Returns the (start, end) of each such line's stripped text.

    ``spans`` are (entity_type, start, end). A block stops at a blank line, a long or prose
    line, a line holding other personal data (a phone, an email), or a name line above.
    """
    lines, pos = [], 0
    for raw in text.split("\n"):
        lines.append((pos, pos + len(raw)))
        pos += len(raw) + 1

    # Each line's entity types, each span placed by bisection (a scan per line grew with lines x spans).
    line_starts = [a for a, _ in lines]
    on_line: list[set[str]] = [set() for _ in lines]
    for t, s, e in spans:
        j = max(0, bisect.bisect_right(line_starts, s) - 1)
        while j < len(lines) and lines[j][0] < e:
            if s < lines[j][1]:
                on_line[j].add(t)
            j += 1

    def addressy(j: int, allowed: set[str]) -> bool:
        a, b = lines[j]
        line = text[a:b].strip()
        return (0 < len(line) <= 60 and len(line.split()) <= 7 and line[-1:] not in "?!:"
                and not on_line[j] - allowed)

    anchors = [i for i, found in enumerate(on_line) if "STREET_ADDRESS" in found]
    out: set[int] = set()
    for i in anchors:
        # Below the street line: town, region, postcode, country. A name-like word there is
        # usually a town ("<PERSON> 96281").
        j, blanks = i + 1, 0
        while j < len(lines) and j - i <= 5:
            a, b = lines[j]
            if not text[a:b].strip():
                blanks += 1
                if blanks > 1:
                    break
            elif addressy(j, _ADDRESS_TYPES | {"PERSON"}) and (
                    not blanks or "LOCATION" in on_line[j] or any(c.isdigit() for c in text[a:b])):
                out.add(j)  # after a blank line only a country or postcode line ("Austria 73269")
            else:
                break
            j += 1
        # Above it: the addressee and company lines, across at most one blank line.
        j, blanks = i - 1, 0
        while j >= 0 and i - j <= 4:
            a, b = lines[j]
            if not text[a:b].strip():
                blanks += 1
                if blanks > 1:
                    break
            elif addressy(j, _ADDRESS_TYPES | {"PERSON"}) and len(text[a:b].split()) <= 5:
                out.add(j)
            else:
                break
            j -= 1
    # "Saber Mailly / Artilleros / Uruguay": with no street line, the short line between an
    # addressee (across one blank line) and a line that is only a country is the town.
    for j in range(2, len(lines)):
        if text[lines[j][0]:lines[j][1]].strip() not in _country_lines():
            continue
        town = text[lines[j - 1][0]:lines[j - 1][1]].strip()
        if not (addressy(j - 1, _ADDRESS_TYPES | {"PERSON"}) and town[:1].isupper() and len(town.split()) <= 3):
            continue
        k = j - 2 if text[lines[j - 2][0]:lines[j - 2][1]].strip() else j - 3
        if k >= 0 and "PERSON" in on_line[k] and addressy(k, {"PERSON"}):
            out.add(j - 1)
    result = []
    for j in sorted(out):
        a, b = lines[j]
        line = text[a:b]
        lead = len(line) - len(line.lstrip())
        result.append((a + lead, a + len(line.rstrip())))
    return result
