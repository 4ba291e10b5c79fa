"""Guided generation on the real engine: the schemas pydantic writes for ordinary models
must give a grammar llama.cpp parses, and what it forces must validate."""

from __future__ import annotations

import json
import re

import pytest

from tether.errors import InputError
from tether.models.engine import Message, Sampling
from tether.models.grammar import grammar_regex, schema_to_gbnf

PATTERNS = [
    r"^[A-Z]{3}-\d{2}$",
    r"\d{6}",
    r"^\w{1,8}@\w{1,8}\.com$",
    r"^[\w.]{1,12}$",
    r"^\S{1,8}\s\S{1,8}$",
    r"^\D{2}\d$",
    r"^v\d{1,2}\.\d{1,2}\.\d{1,2}$",
    r"^(?:yes|no)$",
    r"^(?P<year>\d{4})-(?P<month>\d{2})$",
    r"^[\-+]?\d{1,4}$",
    r"^\$\d{1,3}(\.\d\d)?$",
    r"^a\\b$",
    r'^say "\w{1,6}"$',
    r"^[^\s,]{1,8}$",
    r"^.{3}$",
    r"^[ -~]{2,6}$",
    r"^[\t\n\"a]{2,4}$",
    r"^\x41\u00e9{1,3}$",
    r"^[]a]{1,5}$",
    r"^\(\d{3}\) \d{3}-\d{4}$",
    r"^[A-Z]{2}$|^N/A$",  # anchors at both ends of each alternative
]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_a_pattern_with_escapes_is_forced_and_validates(tiny, pattern):
    schema = {"type": "object", "properties": {"v": {"type": "string", "pattern": pattern}}, "required": ["v"]}
    for seed in range(2):
        done = tiny.complete([Message("user", "Give a value.")], Sampling(temperature=1.2, seed=seed, max_tokens=40),
                             json_schema=schema)
        value = json.loads(done.text)["v"]
        assert re.search(pattern, value), (pattern, value)


@pytest.mark.parametrize("values", [['say "hi"', "plain"], ["back\\slash", "C:\\temp\\"], ["two\nlines", "tab\there"],
                                    ["café", "🐱🐱", 'both " and \\']])
def test_enum_strings_with_quotes_backslashes_and_controls_come_back_exactly(tiny, values):
    for seed in range(3):
        done = tiny.complete([Message("user", "Pick one.")], Sampling(temperature=1.5, seed=seed, max_tokens=24),
                             json_schema={"enum": values})
        assert json.loads(done.text) in values


def test_a_string_never_holds_a_raw_control_character(tiny):
    """JSON strings may not hold a raw newline; llama-cpp-python's string rule let the model write
    one (this prompt gave a raw newline on all three seeds), and the answer did not parse."""
    schema = {"type": "object", "properties": {"poem": {"type": "string", "maxLength": 300}}, "required": ["poem"]}
    finished = 0
    for seed in range(3):
        done = tiny.complete([Message("user", "Write a poem of four short lines.")],
                             Sampling(temperature=0.8, seed=seed, max_tokens=120), json_schema=schema)
        assert not any(ord(c) < 0x20 for c in done.text)
        if done.finish_reason == "stop":
            finished += 1
            assert json.loads(done.text)["poem"]
    assert finished >= 2


def test_property_names_with_quotes_and_backslashes(tiny):
    schema = {"type": "object", "properties": {'a "quoted" key': {"const": 'x"y'}, "back\\slash": {"type": "boolean"}},
              "required": ['a "quoted" key', "back\\slash"]}
    done = tiny.complete([Message("user", "Fill it in.")], Sampling.greedy(40), json_schema=schema)
    data = json.loads(done.text)
    assert data['a "quoted" key'] == 'x"y' and isinstance(data["back\\slash"], bool)


@pytest.mark.parametrize("pattern, why", [(r"^\bword\b$", r"\\b cannot be enforced"),
                                          (r"^(a)\1$", r"\\1 cannot be enforced"),
                                          (r"^[\D]+$", r"inside \[...\]"),
                                          (r"^(?=a)a$", "lookarounds"),
                                          (r"(?i)^abc$", "inline flags")])
def test_a_pattern_the_grammar_cannot_force_is_named(tiny, pattern, why):
    with pytest.raises(InputError, match=why):
        tiny.complete([Message("user", "Hi")], Sampling(max_tokens=2),
                      json_schema={"type": "string", "pattern": pattern})


def test_rewritten_regexes_accept_only_the_json_text_of_what_the_original_accepts():
    samples = ["AB-12", "ab_9", "x y", "v1.2.3", "$5.00", "a\\b", "é", "]", "(555) 123-4567", "-7", "١٢", "a.b",
               'say "hi"', "\t\"a", '"', "\\", "a\nb"]
    for pattern in PATTERNS:
        body = pattern.removeprefix("^").removesuffix("$")
        rewritten = re.compile("^(" + grammar_regex(body) + ")$")
        for s in samples:
            if rewritten.search(json.dumps(s, ensure_ascii=False)[1:-1]):
                assert re.search(pattern, s), (pattern, s)
    assert re.fullmatch(grammar_regex(r'say "\w+"'), r'say \"hi\"')
    assert re.fullmatch(grammar_regex(r"[\t\n]"), r"\n")


NODE = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12},
                                         "kids": {"type": "array", "items": {"$ref": "#/$defs/tree_node"}}},
        "required": ["name", "kids"], "additionalProperties": False}
RECURSIVE = {
    "definitions": {"$defs": {"tree_node": NODE}, "type": "object", "properties": {"t": {"$ref": "#/$defs/tree_node"}},
                    "required": ["t"], "additionalProperties": False},
    "root": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12},
                                              "kids": {"type": "array", "items": {"$ref": "#"}}},
             "required": ["name", "kids"], "additionalProperties": False},
    # pydantic's recursive model (class Node(BaseModel): name: str; kids: list["Node"] = []): a root $ref
    "pydantic": {"$defs": {"Node": {"properties": {"name": {"title": "Name", "type": "string", "maxLength": 12},
                                                   "kids": {"default": [], "items": {"$ref": "#/$defs/Node"},
                                                            "title": "Kids", "type": "array"}},
                                    "required": ["name"], "title": "Node", "type": "object"}},
                 "$ref": "#/$defs/Node"},
}


@pytest.mark.parametrize("form", sorted(RECURSIVE))
def test_recursive_schemas_build_a_grammar_that_forces_them(tiny, form):
    """A snake_case definition that refers to itself, and OpenAI's ``{"$ref": "#"}`` root recursion:
    every rule the grammar names is defined, and what it forces validates."""
    from jsonschema import Draft202012Validator

    from tether.models.grammar import local_refs_renamed, schema_to_gbnf

    schema = RECURSIVE[form]
    grammar = schema_to_gbnf(schema)
    defined = {line.split(" ::= ")[0] for line in grammar.splitlines() if " ::= " in line}
    used = {name for line in grammar.splitlines() if " ::= " in line
            for name in re.findall(r"(?<![\"\w-])([A-Za-z][\w-]*)(?![\"\w-])", re.sub(r'"(?:\\.|[^"\\])*"|\[(?:\\.|[^\]\\])*\]', "", line.split(" ::= ")[1]))}
    assert used <= defined, used - defined
    ada = {"name": "Ada", "kids": [{"name": "Bo", "kids": []}]}
    for instance, valid in ((ada, True), ({"name": "Ada", "kids": [{"name": 3, "kids": []}]}, False)):
        instance = {"t": instance} if form == "definitions" else instance
        for s in (schema, local_refs_renamed(schema)):  # the renaming allows exactly what the schema does
            assert Draft202012Validator(s).is_valid(instance) is valid
    answer = json.dumps({"t": ada} if form == "definitions" else ada)
    c = tiny.complete([Message("user", f"Repeat exactly: {answer}")], Sampling.greedy(60), json_schema=schema)
    if c.finish_reason == "stop":
        assert Draft202012Validator(schema).is_valid(json.loads(c.text)), c.text
    else:  # the 135M model may nest forever; what it wrote must still be on the way to a valid answer
        assert c.text.lstrip().startswith("{")


@pytest.mark.parametrize("schema", [
    {"type": "string", "maxLength": 20000},
    {"type": "array", "items": {"type": "integer"}, "maxItems": 20000},
    {"type": "string", "pattern": "^[a-z ]{0,20000}$"},
    {"type": "string", "maxLength": 1500},
], ids=["maxLength", "maxItems", "pattern", "maxLength-1500"])
def test_a_large_upper_bound_builds_a_grammar_and_is_checked_afterwards(tiny, schema):
    """The converter nests one optional group per allowed repeat: 1,500 made llama.cpp refuse the
    grammar with a wrong reason, and 20,000 killed the process (a segfault) from one HTTP request."""
    from jsonschema import Draft202012Validator

    from tether.models.grammar import REPEAT_MAX, enforceable

    schema = {"type": "object", "properties": {"v": schema}, "required": ["v"]}
    done = tiny.complete([Message("user", "Give a short value.")], Sampling.greedy(24), json_schema=schema)
    if done.finish_reason == "stop":
        assert Draft202012Validator(schema).is_valid(json.loads(done.text)), done.text
    kept = {"type": "string", "maxLength": REPEAT_MAX, "pattern": f"^a{{1,{REPEAT_MAX}}}$"}
    assert enforceable(kept)["maxLength"] == REPEAT_MAX and f"{{1,{REPEAT_MAX}}}" in enforceable(kept)["pattern"]


@pytest.mark.parametrize("field, check", [
    ({"type": ["integer", "null"], "minimum": 1, "maximum": 5}, lambda v: v is None or 1 <= v <= 5),
    ({"type": ["string", "null"], "pattern": "^\\d{5}$"}, lambda v: v is None or re.fullmatch(r"\d{5}", v)),
])
def test_a_nullable_field_keeps_its_bounds_and_pattern(tiny, field, check):
    """OpenAI's strict mode writes an optional field as a type list with "null": the converter
    dropped the bounds and pattern for it, and the answer failed validation on every try."""
    schema = {"type": "object", "properties": {"v": field}, "required": ["v"]}
    for seed in range(3):
        done = tiny.complete([Message("user", "Give a value.")], Sampling(temperature=1.2, seed=seed, max_tokens=24),
                             json_schema=schema)
        assert check(json.loads(done.text)["v"]), done.text


@pytest.mark.parametrize("pattern", [r"a^b", r"^(^a|b)$", r"ab$c"])
def test_an_anchor_inside_a_pattern_is_named(tiny, pattern):
    """An anchor the wrapper cannot absorb would have been forced as the character itself."""
    schema = {"type": "object", "properties": {"v": {"type": "string", "pattern": pattern}}}
    with pytest.raises(InputError, match="an anchor .* inside the pattern cannot be enforced"):
        tiny.complete([Message("user", "x")], Sampling.greedy(4), json_schema=schema)


def test_a_format_is_checked_after_generation():
    """The module promised format among the keywords checked afterwards, but the validator
    was built without a format checker: an "email" of "Karlina" came back as a success."""
    from tether.models.json_schema import violation

    for fmt, bad, good in [("email", "Karlina", "k@example.org"), ("date", "2024-02-31", "2024-02-28"),
                           ("uuid", "xyz", "12345678-1234-5678-1234-567812345678"), ("ipv4", "1.2.3", "10.0.0.1"),
                           ("date-time", "yesterday", "2026-12-03T10:00:00Z")]:
        assert violation({"type": "string", "format": fmt}, json.dumps(bad)) is not None, fmt
        assert violation({"type": "string", "format": fmt}, json.dumps(good)) is None, fmt


def test_a_dangling_ref_is_named_as_written_and_the_message_stays_short():
    big = {f"field_{i}": {"type": "string", "description": "x" * 200} for i in range(500)}
    schema = {"type": "object", "properties": {**big, "a": {"$ref": "#/nope"}}}
    with pytest.raises(InputError) as info:
        schema_to_gbnf(schema)
    message = str(info.value)
    assert "#/nope" in message and "stdin" not in message
    assert len(message) < 400
