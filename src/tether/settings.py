"""Settings read from the environment.

A bad value is a :class:`~tether.errors.SettingError` that names the variable and
what it accepts, so ``TETHER_N_CTX=4k`` reads as a one-line mistake, not a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

from tether.errors import SettingError


def env_int(name: str, default: int, *, minimum: int = 1, maximum: int | None = None) -> int:
    """The whole number in ``$name``, or ``default`` when it is unset or blank."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingError(name, raw, _accepts(minimum, maximum)) from None
    if value < minimum or (maximum is not None and value > maximum):
        raise SettingError(name, raw, _accepts(minimum, maximum))
    return value


def _accepts(minimum: int, maximum: int | None) -> str:
    return f"a whole number from {minimum} to {maximum}" if maximum is not None else f"a whole number ≥ {minimum}"


def http_url(value: str, what: str) -> str:
    """``value`` without a trailing slash if it is a usable http(s) URL, else ``InputError``
    naming ``what``: a malformed URL is a one-line mistake at start-up, not a traceback later."""
    import httpx

    from tether.errors import InputError

    text = (value or "").strip()
    try:
        url = httpx.URL(text)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise InputError(f"{what} {value!r} is not a valid URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise InputError(f"{what} {value!r} is not an http:// or https:// URL with a host")
    if url.port is not None and not 1 <= url.port <= 65535:  # the socket layer would wrap 70000 to 4464
        raise InputError(f"{what} {value!r} has port {url.port}, outside 1-65535")
    return text.rstrip("/")


def cloud_state_path() -> Path:
    """Where the pinned transparency-log key and last tree head outlive the process, for the CLI and
    the router alike: $TETHER_CLOUD_STATE, else the platform's user state directory."""
    import platformdirs

    return Path(os.environ.get("TETHER_CLOUD_STATE") or Path(platformdirs.user_state_dir("tether")) / "cloud-log-state.json")


def header_token(value: str | None, what: str) -> str | None:
    """``value`` if it can travel in an HTTP ``Authorization`` header: printable ASCII, no space at
    either end (the receiver strips it). Else ``InputError`` naming ``what``, raised before anything
    is loaded or sent: a non-ASCII token would otherwise fail deep in the HTTP client (or never match).
    The message gives the position of the bad character, not the secret itself."""
    from tether.errors import InputError

    if not value:
        return value
    for i, ch in enumerate(value):
        if not " " <= ch <= "~":
            raise InputError(f"{what} holds a character an HTTP header cannot carry (at position {i + 1}); "
                             "a token or key must be printable ASCII")
    if value != value.strip():
        raise InputError(f"{what} starts or ends with a space; a token or key must not")
    return value


def path_problem(path: str | os.PathLike[str]) -> str | None:
    """Why no file system call can take ``path``, or None: ``open`` and ``sqlite3`` fail on a NUL
    or a lone surrogate (a JSON config's ``"\\ud800"``) with a ValueError, and ``exists()``
    answers False, so the problem would read as "no file yet"."""
    try:
        raw = os.fsencode(path)
    except UnicodeEncodeError:
        return "is not valid Unicode"
    return "holds a NUL" if b"\0" in raw else None


def mkdir_problem(exc: OSError) -> str:
    """What ``exc`` from ``Path.mkdir(parents=True, exist_ok=True)`` means, in words: on a folder
    whose name a file has taken, mkdir says "File exists", which reads as if all were well."""
    if isinstance(exc, FileExistsError):
        return f"{exc.filename} is a file, not a folder"
    if isinstance(exc, NotADirectoryError):
        return f"a folder on the way to {exc.filename} is a file"
    return exc.strerror or str(exc)
