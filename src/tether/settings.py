"""Settings read from the environment.

A bad value is a :class:`~tether.errors.SettingError` that names the variable and
what it accepts, so ``TETHER_N_CTX=4k`` reads as a one-line mistake, not a traceback.
"""

from __future__ import annotations

import os

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
