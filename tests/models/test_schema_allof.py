"""``allOf``: llama-cpp-python's converter reads it as a merge of object properties, so a wrapped
enum (``{"allOf": [{"$ref": "#/$defs/Colour"}]}``, as pydantic 2.0-2.8 and other generators
write a field with a default) was forced to ``{}``, and so was ``allOf`` of a string's keywords."""

from __future__ import annotations

import json

import pytest

from tether.errors import InputError
from tether.models.engine import Message, Sampling

WRAPPED_ENUM = {
    "$defs": {"Colour": {"enum": ["red", "green"], "type": "string"}},
    "type": "object",
    "properties": {"colour": {"allOf": [{"$ref": "#/$defs/Colour"}], "default": "red"}},
    "required": ["colour"],
}


def test_a_single_wrapped_reference_is_the_schema_it_wraps(tiny):
    c = tiny.complete([Message("user", "Pick a colour.")], Sampling.greedy(20), json_schema=WRAPPED_ENUM)
    assert json.loads(c.text)["colour"] in ("red", "green")


def test_objects_merged_by_allof_still_build():
    from tether.models.grammar import schema_to_gbnf

    schema = {"$defs": {"A": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}},
              "allOf": [{"$ref": "#/$defs/A"},
                        {"type": "object", "properties": {"y": {"type": "string"}}, "required": ["y"]}]}
    grammar = schema_to_gbnf(schema)
    assert '"\\"x\\""' in grammar and '"\\"y\\""' in grammar


@pytest.mark.parametrize("schema", [
    {"allOf": [{"type": "string"}, {"maxLength": 5}]},
    {"type": "object", "properties": {"n": {"allOf": [{"type": "integer"}, {"minimum": 1}]}}, "required": ["n"]},
])
def test_allof_of_what_is_no_object_is_an_input_error_not_a_forced_empty_object(tiny, schema):
    with pytest.raises(InputError, match="allOf"):
        tiny.complete([Message("user", "Give a value.")], Sampling.greedy(10), json_schema=schema)
