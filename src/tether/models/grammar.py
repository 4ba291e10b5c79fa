"""JSON schema → GBNF grammar, for guided generation with llama.cpp.

llama-cpp-python ships the converter; this module feeds it what it can enforce
and fixes two of its escaping faults, so a schema pydantic writes for an
ordinary model always yields a grammar whose output parses and validates:

- a string ``pattern`` is anchored and rewritten into the regex subset the
  converter copies correctly (``\\d``, ``\\w``, ``\\s``, ``\\.`` and ``(?:…)``
  would otherwise land in the grammar verbatim, where llama.cpp cannot parse them);
- an ``enum`` or ``const`` string holding ``"`` or ``\\`` is escaped for GBNF
  (the converter escapes the quote but not the backslash JSON put before it);
- a bounded integer becomes an ``enum`` (the converter ignores the bounds);
- local ``$ref`` targets get names the converter keeps as they are (a recursive
  ``#/$defs/tree_node`` came out as a rule ``tree_node`` that was never defined),
  the root's own ``"#"`` (OpenAI's recursion form) becomes one of them, and a root
  ``$ref`` (pydantic's recursive model) becomes an ``anyOf`` of one;
- a schema that constrains nothing (pydantic's ``Any`` field, ``{"title": "A"}``; ``list[Any]``'s
  ``"items": {}``) allows any JSON value (the converter refused the first, crashed on the
  second and forced an object for ``{}``);
- ``"type": ["integer", "null"]`` becomes an ``anyOf`` of the two, so the bounds and
  pattern still apply to the integer or string (the converter drops them for a type list);
- a ``maxLength``, ``maxItems`` or pattern repeat over ``REPEAT_MAX`` is left to the
  check after generation (llama.cpp cannot parse the nesting the converter writes for it).
"""

from __future__ import annotations

import functools
import json
import math
import re
from typing import Any

from tether.errors import InputError

ENUM_RANGE_MAX = 1024  # an integer range up to this size becomes an enum the grammar can force
# The converter writes "at most N" as N nested optional groups, "(x (x (x)?)?)?": llama.cpp refuses
# 1,500 of them and overflows its stack (a segfault) at 20,000. A larger upper bound on a string's
# length, an array's items or a pattern's repeat is left to the check after generation.
REPEAT_MAX = 500

_INTEGER_BOUND_KEYS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
_GBNF_LITERAL_ESCAPES = {"\\": "\\\\", '"': '\\"', "\r": "\\r", "\n": "\\n"}
_HEX_LENGTH = {"x": 2, "u": 4, "U": 8}
_QUANTIFIER = re.compile(r"\{\d+(,\d*)?\}|\{,\d+\}")


def schema_to_gbnf(schema: dict[str, Any]) -> str:
    """The GBNF grammar for ``schema``; ``InputError`` for a schema it cannot enforce."""
    prepared = json.loads(json.dumps(enforceable(any_value_spelled_out(local_refs_renamed(schema)))))
    converter = _converter_class()(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    try:
        resolved = converter.resolve_refs(prepared, "")  # no base name: a ref reads as the caller wrote it
        converter.visit(resolved, "")
    except (AssertionError, ValueError, KeyError, TypeError) as exc:  # the converter asserts on what it lacks
        raise InputError(f"cannot build a grammar from this JSON schema: {_converter_reason(exc)}") from None
    return converter.format_grammar()


def _converter_reason(exc: BaseException, limit: int = 300) -> str:
    """The converter's complaint, capped: a failed ref lookup quotes the whole schema, which can
    be megabytes."""
    reason = str(exc)
    return reason if len(reason) <= limit else reason[:limit] + "…"


_JSON_STRING_CHAR = r'[^"\\\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F])'


@functools.cache
def _converter_class() -> type:
    from llama_cpp import llama_grammar

    class Converter(llama_grammar.SchemaConverter):  # type: ignore[misc, name-defined]
        def _format_literal(self, literal: str) -> str:
            """A GBNF literal that produces exactly ``literal``."""
            return '"' + "".join(_GBNF_LITERAL_ESCAPES.get(c, c) for c in literal) + '"'

        def _generate_constant_rule(self, value: Any) -> str:
            # Real characters, not \\u escapes: the model writes "café" and "🐱", not "caf\\u00e9".
            return self._format_literal(json.dumps(value, ensure_ascii=False))

        def _add_primitive(self, name: str, rule: Any) -> str:
            # llama-cpp-python's ``char`` admits raw control characters, which JSON strings may not
            # hold: a model that wrote a newline inside a string produced JSON no parser accepts.
            if name == "char":
                rule = llama_grammar.BuiltinRule(_JSON_STRING_CHAR, [])
            return super()._add_primitive(name, rule)  # type: ignore[no-any-return]

    return Converter


_DEF_GROUPS = ("$defs", "definitions")
_ROOT_NAME = "RecursiveRoot"


def local_refs_renamed(schema: Any) -> Any:
    """``schema`` with each local definition named in letters and digits only, and a root that
    refers to itself (``{"$ref": "#"}``) moved into ``$defs``; the values it allows are the same.

    llama-cpp-python's converter names a rule after its definition with ``_`` turned into ``-``,
    but a reference met while that rule is still being built keeps the raw name, so recursion
    through ``tree_node`` produced a grammar llama.cpp refuses. It also has no ``"#"`` at all."""
    if not isinstance(schema, dict):
        return schema
    text = json.dumps(schema)
    if '"$ref"' not in text:
        return schema
    schema = json.loads(text)
    renames: dict[str, str] = {}
    taken: set[str] = set()
    for group in _DEF_GROUPS:
        defs = schema.get(group)
        if not isinstance(defs, dict):
            continue
        renamed = {}
        for key, value in defs.items():
            base = re.sub(r"[^A-Za-z0-9]", "", key) or "Def"
            name, n = base, 1
            while name in taken or name == _ROOT_NAME:
                n += 1
                name = f"{base}{n}"
            taken.add(name)
            renames[f"#/{group}/{key.replace('~', '~0').replace('/', '~1')}"] = f"#/$defs/{name}"
            renamed[name] = value
        schema[group] = renamed
    if "definitions" in schema:  # one group: refs now all point into $defs
        schema["$defs"] = {**schema.pop("definitions"), **schema.get("$defs", {})}

    def visit(node: Any, recursive: list[bool]) -> Any:
        if isinstance(node, list):
            return [visit(v, recursive) for v in node]
        if not isinstance(node, dict):
            return node
        out = {k: visit(v, recursive) for k, v in node.items()}
        ref = node.get("$ref")
        if ref == "#":
            recursive[0] = True
            out["$ref"] = f"#/$defs/{_ROOT_NAME}"
        elif isinstance(ref, str) and ref in renames:
            out["$ref"] = renames[ref]
        return out

    recursive = [False]
    schema = visit(schema, recursive)
    if recursive[0]:
        defs = schema.pop("$defs", {})
        schema = {"$defs": {**defs, _ROOT_NAME: schema}, "anyOf": [{"$ref": f"#/$defs/{_ROOT_NAME}"}]}
    elif isinstance(schema.get("$ref"), str):  # pydantic's recursive model: {"$defs": {"Node": …}, "$ref": …}
        ref = schema.pop("$ref")  # the converter resolves no root $ref; one branch of anyOf it does
        key = "allOf" if "anyOf" in schema else "anyOf"
        schema[key] = [{"$ref": ref}, *schema.get(key, [])]
    return schema


# Keywords that describe a schema without constraining it.
_ANNOTATIONS = frozenset(("title", "description", "default", "examples", "$comment", "deprecated", "readOnly",
                          "writeOnly", "$schema", "$id", "$anchor", "$defs", "definitions"))
_ANY_VALUE_TYPES = ["object", "array", "string", "number", "boolean", "null"]
_SUBSCHEMA = ("items", "additionalItems", "additionalProperties", "unevaluatedItems", "unevaluatedProperties",
              "not", "if", "then", "else", "contains", "propertyNames")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems", "items")
_SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")


def any_value_spelled_out(schema: Any) -> Any:
    """``schema`` with every subschema that constrains nothing (``true``, ``{}``, or annotations
    only, as pydantic writes an ``Any`` field) spelled out as "one of the six JSON types"."""
    if schema is True:
        return {"type": list(_ANY_VALUE_TYPES)}
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for key in _SUBSCHEMA:
        if key in out and not isinstance(out[key], list):
            if key in ("additionalProperties", "additionalItems", "unevaluatedItems", "unevaluatedProperties") \
                    and isinstance(out[key], bool):
                continue  # ``additionalProperties: true`` is the converter's own "any value"
            out[key] = any_value_spelled_out(out[key])
    for key in _SUBSCHEMA_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [any_value_spelled_out(v) for v in out[key]]
    for key in _SUBSCHEMA_MAPS:
        if isinstance(out.get(key), dict):
            out[key] = {name: any_value_spelled_out(v) for name, v in out[key].items()}
    if not out.keys() - _ANNOTATIONS:
        out["type"] = list(_ANY_VALUE_TYPES)
    return out


def enforceable(schema: Any) -> Any:
    """``schema`` as llama.cpp's grammar converter can enforce it.

    Every string ``pattern`` is anchored (``^…$``): JSON Schema (and pydantic) patterns match
    anywhere, but the converter accepts only anchored ones, and a whole-string match also
    satisfies the unanchored check that validates the output. A bounded integer (a rating
    from 1 to 5) becomes an ``enum``: the converter ignores ``minimum`` and ``maximum``.
    """
    if isinstance(schema, dict):
        all_of = schema.get("allOf")
        if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict) \
                and not (schema.keys() - _ANNOTATIONS - {"allOf"}):
            # {"allOf": [{"$ref": …}], "description": …}: the schema it wraps, which the converter
            # would otherwise read as an object of that schema's properties (none, for an enum)
            return enforceable({**{k: v for k, v in schema.items() if k != "allOf"}, **all_of[0]})
        if isinstance(all_of, list) and not all(_object_like(m) for m in all_of):
            raise InputError("allOf can be enforced while generating only as a merge of object schemas; "
                             "write the combined schema out")
        types = schema.get("type")
        if isinstance(types, list) and len(types) > 1 and not {"anyOf", "enum", "const"} & schema.keys():
            # {"type": ["integer", "null"], "maximum": 5}: the converter drops the bounds and pattern
            # for a type list, so each type gets its own branch with them (JSON Schema applies each
            # keyword only to its type, so the values allowed are the same).
            rest = {k: v for k, v in schema.items() if k != "type"}
            return {"anyOf": [enforceable({**rest, "type": t}) for t in types]}
        out = {k: enforceable(v) for k, v in schema.items()}
        pattern = schema.get("pattern")
        if isinstance(pattern, str) and schema.get("type") in (None, "string"):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise InputError(f"pattern {pattern!r} is not a valid regular expression: {exc}") from None
            body = pattern[1:] if pattern.startswith("^") else pattern
            if body.endswith("$") and not body.endswith("\\$"):
                body = body[:-1]
            out["pattern"] = "^(" + grammar_regex(body, pattern) + ")$"
        for key in ("maxLength", "maxItems"):
            bound = schema.get(key)
            if isinstance(bound, int) and not isinstance(bound, bool) and bound > REPEAT_MAX:
                del out[key]
        if schema.get("type") == "integer" and "enum" not in schema and "const" not in schema:
            bounds = _integer_bounds(schema)
            if bounds is not None:
                low, high = bounds
                if low > high:
                    raise InputError(f"this JSON schema allows no value: no integer lies from {low} to {high}")
                if high - low < ENUM_RANGE_MAX:
                    step = schema.get("multipleOf")
                    values = [v for v in range(low, high + 1)
                              if not (isinstance(step, int) and step > 0 and v % step)]
                    out = {k: v for k, v in out.items() if k not in _INTEGER_BOUND_KEYS + ("type", "multipleOf")}
                    out["enum"] = values
        return out
    if isinstance(schema, list):
        return [enforceable(v) for v in schema]
    return schema


def _object_like(schema: Any) -> bool:
    """Whether the converter's ``allOf`` (which merges the members' ``properties``) reads ``schema``
    as it means: an object schema, a reference (pydantic refers to models), or a choice of those."""
    if not isinstance(schema, dict):
        return False
    if "$ref" in schema or "properties" in schema or schema.get("type") == "object":
        return True
    branches = schema.get("anyOf")
    return isinstance(branches, list) and bool(branches) and all(_object_like(b) for b in branches)


def grammar_regex(regex: str, pattern: str | None = None) -> str:
    """``regex`` rewritten to match the JSON-encoded text of a string ``regex`` matches, in the
    subset the converter copies into GBNF correctly; it may allow less, never more.

    The grammar forces the characters between the quotes of a JSON string, so a ``"`` must come
    out as ``\\"`` and a newline as ``\\n``; a dot or a negated class must never produce a
    bare quote, backslash or control character. Shorthands become ASCII classes (``\\d`` →
    ``[0-9]``, ``\\s`` → a space: subsets of what Python allows, so the answer still
    validates) and every escaped character a hex escape GBNF reads. Zero-width and
    back-reference escapes (``\\b``, ``\\A``, ``\\1``) have no grammar form.
    """
    pattern = regex if pattern is None else pattern
    out: list[str] = []
    i, n = 0, len(regex)
    depth = 0
    while i < n:
        c = regex[i]
        if c in "^$":
            # "^[A-Z]{2}$|^N/A$": an anchor at either end of a whole alternative is a no-op inside
            # the anchored wrapper; anywhere else the converter would force the character itself.
            edge = (i == 0 or (depth == 0 and out[-1:] == ["|"])) if c == "^" else \
                (i + 1 == n or (depth == 0 and regex[i + 1] == "|"))
            if not edge:
                raise InputError(f"pattern {pattern!r}: an anchor ({c}) inside the pattern cannot be enforced "
                                 "while generating")
            i += 1
            continue
        if c == "[":
            piece, i = _char_class(regex, i, pattern)
            out.append(piece)
        elif c == "\\":
            kind, value, i = _escape(regex, i, pattern)
            if kind == "set":
                out.append(_render_class(value, negated=False, pattern=pattern))
            elif kind == "notset":
                out.append(_render_class(value, negated=True, pattern=pattern))
            else:
                out.append(_json_char(value))
        elif c == ".":
            out.append(_render_class([], negated=True, pattern=pattern))
            i += 1
        elif c == "(" and regex.startswith("(?", i):
            m = re.match(r"\(\?(?::|P<[A-Za-z_]\w*>)", regex[i:])
            if m is None:
                raise InputError(f"pattern {pattern!r}: lookarounds and inline flags cannot be enforced "
                                 "while generating")
            out.append("(")  # the converter knows no (?:…); a plain group is the same here
            depth += 1
            i += m.end()
        elif c == "{" and (m := _QUANTIFIER.match(regex, i)):
            low, comma, high = m.group()[1:-1].partition(",")
            wide = comma and high and int(high) > REPEAT_MAX  # see REPEAT_MAX: checked afterwards
            out.append(f"{{{low or 0},}}" if wide else m.group())
            i = m.end()
        elif c in "|()*+?":
            depth += (c == "(") - (c == ")")
            out.append(c)
            i += 1
        else:
            out.append(_json_char(c))
            i += 1
    return "".join(out)


# Characters a JSON string cannot hold bare: controls, the quote, the backslash.
_JSON_ESCAPED = [(0x00, 0x1F), (0x22, 0x22), (0x5C, 0x5C)]
_SHORTHANDS = {"d": [(0x30, 0x39)], "w": [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)],
               "s": [(0x20, 0x20)]}
_NAMED = {"t": "\t", "n": "\n", "r": "\r", "f": "\f", "v": "\v", "a": "\a"}


def _escape(regex: str, i: int, pattern: str, in_class: bool = False) -> tuple[str, Any, int]:
    """The escape at ``regex[i]``: ("char", ch), ("set", ranges) or ("notset", ranges), and the next index."""
    e = regex[i + 1]
    i += 2
    if e in _HEX_LENGTH:
        digits = regex[i:i + _HEX_LENGTH[e]]
        return "char", chr(int(digits, 16)), i + len(digits)  # re.compile accepted it: hex digits
    if e in _SHORTHANDS:
        return "set", _SHORTHANDS[e], i
    if e in "DWS":
        if in_class:
            raise InputError(f"pattern {pattern!r}: \\{e} inside [...] cannot be enforced while generating; "
                             "spell the class out")
        ranges = _SHORTHANDS[e.lower()] + ([(0x09, 0x0D)] if e == "S" else [])
        return "notset", ranges, i
    if e in _NAMED or (in_class and e == "b"):  # in a class, \b is a backspace
        return "char", _NAMED.get(e, "\b"), i
    if e.isalnum() or e == "_":
        raise InputError(f"pattern {pattern!r}: \\{e} cannot be enforced while generating "
                         "(guided generation supports classes, groups, alternation and quantifiers)")
    return "char", e, i


def _char_class(regex: str, i: int, pattern: str) -> tuple[str, int]:
    """The class starting at ``regex[i] == "["``, rendered, and the index after it."""
    i += 1
    negated = regex.startswith("^", i)
    i += negated
    ranges: list[tuple[int, int]] = []
    first = True

    def atom(j: int) -> tuple[str, Any, int]:
        if regex[j] == "\\":
            return _escape(regex, j, pattern, in_class=True)
        return "char", regex[j], j + 1

    while not (regex[i] == "]" and not first):
        first = False
        kind, value, i = atom(i)
        if kind != "char":
            ranges += value
            continue
        if regex[i] == "-" and regex[i + 1] != "]":
            kind, high, i = atom(i + 1)
            if kind != "char":
                raise InputError(f"pattern {pattern!r}: a range cannot end in a class shorthand")
            ranges.append((ord(value), ord(high)))
        else:
            ranges.append((ord(value), ord(value)))
    return _render_class(ranges, negated, pattern), i + 1


def _render_class(ranges: list[tuple[int, int]], negated: bool, pattern: str) -> str:
    """A GBNF-safe class. A negated one also excludes what JSON must escape (a subset); in a plain
    one, each such character becomes an alternative spelled the way JSON writes it."""
    if negated:
        return "[^" + "".join(_range(lo, hi) for lo, hi in ranges + _JSON_ESCAPED) + "]"
    kept: list[tuple[int, int]] = []
    escaped: set[int] = set()
    for lo, hi in ranges:
        for blo, bhi in _JSON_ESCAPED:  # cut each such span out of the range
            if lo <= bhi and blo <= hi:
                escaped.update(range(max(lo, blo), min(hi, bhi) + 1))
                if lo < blo:
                    kept.append((lo, blo - 1))
                lo = bhi + 1
        if lo <= hi:
            kept.append((lo, hi))
    plain = "[" + "".join(_range(lo, hi) for lo, hi in kept) + "]"
    if not escaped:
        return plain
    return "(" + "|".join(([plain] if kept else []) + [_json_char(chr(p)) for p in sorted(escaped)]) + ")"


def _range(lo: int, hi: int) -> str:
    return _char_escape(chr(lo)) if lo == hi else _char_escape(chr(lo)) + "-" + _char_escape(chr(hi))


def _json_char(ch: str) -> str:
    """One character of the value, as the text JSON writes for it, in classes the converter keeps whole."""
    encoded = json.dumps(ch, ensure_ascii=False)[1:-1]
    if encoded == ch:
        return "[" + _char_escape(ch) + "]"
    return "(" + "".join("[" + _char_escape(x) + "]" for x in encoded) + ")"


def _char_escape(ch: str) -> str:
    """``ch`` as a GBNF character escape (valid in a literal and in a class)."""
    point = ord(ch)
    if point <= 0xFF:
        return f"\\x{point:02X}"
    return f"\\u{point:04X}" if point <= 0xFFFF else f"\\U{point:08X}"


def _integer_bounds(schema: dict[str, Any]) -> tuple[int, int] | None:
    """The smallest and largest integer ``schema`` allows, when both are bounded."""

    def num(key: str) -> float | None:
        v = schema.get(key)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    low, high = num("minimum"), num("maximum")
    above, below = num("exclusiveMinimum"), num("exclusiveMaximum")
    if above is not None:  # the first integer past an exclusive bound
        low = max(low if low is not None else above, math.floor(above) + 1)
    if below is not None:
        high = min(high if high is not None else below, math.ceil(below) - 1)
    if low is None or high is None:
        return None
    return math.ceil(low), math.floor(high)
