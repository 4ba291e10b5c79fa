"""Checking JSON schemas and the answers generated for them.

llama.cpp's grammar forces an answer's shape (types, keys, enums, string lengths,
small integer ranges; see ``grammar.enforceable``), but not every keyword: number
bounds, wide integer ranges, ``multipleOf``, ``uniqueItems``, ``format``. An
answer is therefore validated against the full schema afterwards, with the
``jsonschema`` library and its format checker (an ``email`` without an ``@``, a
``date`` of 2024-02-31, a ``date-time`` of "yesterday", a ``uuid`` that is not one),
so a broken one is caught rather than returned.
"""

from __future__ import annotations

import json
from typing import Any

from tether.errors import InputError


def _validator(schema: dict[str, Any]) -> Any:
    from jsonschema import Draft202012Validator, validators

    return validators.validator_for(schema, default=Draft202012Validator)


def check_schema(schema: dict[str, Any]) -> None:
    """``InputError`` if ``schema`` is not a valid JSON schema (``"type": "strnig"``), holds text
    that is not valid Unicode (a lone surrogate, which JSON can escape), or nests too deeply to check."""
    from jsonschema.exceptions import SchemaError

    try:
        json.dumps(schema, ensure_ascii=False).encode("utf-8")
        _validator(schema).check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "the schema"
        raise InputError(f"invalid JSON schema at {where}: {exc.message}") from None
    except UnicodeEncodeError as exc:
        raise InputError(f"invalid JSON schema: it holds text that is not valid Unicode "
                         f"(an unpaired surrogate, {exc.object[exc.start:exc.end]!a})") from None
    except RecursionError:
        raise InputError("invalid JSON schema: it is nested too deeply to check") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")  # Python reads NaN and Infinity; JSON has neither


def violation(schema: dict[str, Any], text: str) -> str | None:
    """Why ``text`` is not a JSON value ``schema`` accepts, or None if it is."""
    from jsonschema.exceptions import best_match

    try:
        value = json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        return f"not JSON ({exc})"
    validator = _validator(schema)
    error = best_match(validator(schema, format_checker=validator.FORMAT_CHECKER).iter_errors(value))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "the answer"
    return f"{where}: {error.message}"
