"""A schema that constrains nothing (pydantic's ``Any``, ``list[Any]``'s ``"items": {}``, a bare
``{}``) allows any JSON value: llama-cpp-python's converter refused the first, crashed on the
second and forced an object for the third."""

from __future__ import annotations

import json
from typing import Any, Optional

import pytest
from pydantic import BaseModel, Field

from tether import Session
from tether.models.engine import Message, Sampling


class Note(BaseModel):
    key: str
    value: Any
    extra: list[Any] = Field(max_length=3)
    maybe: Optional[Any] = None


def test_a_model_with_any_fields_is_guided_and_its_values_need_not_be_objects(tiny):
    wanted = {"key": "k", "value": "hi", "extra": [1, "x"]}
    reply = Session(engine=tiny).respond(f"Repeat exactly: {json.dumps(wanted)}", schema=Note,
                                         sampling=Sampling.greedy(60))
    assert reply.content == Note(**wanted)


@pytest.mark.parametrize("schema", [{}, {"description": "anything"}, True, {"type": "array", "items": {}},
                                    {"type": "array", "items": True}])
def test_an_unconstrained_schema_allows_any_json_value(tiny, schema):
    c = tiny.complete([Message("user", 'Repeat exactly: ["a", 1, null]')], Sampling.greedy(40),
                      json_schema=schema)  # type: ignore[arg-type]
    assert c.finish_reason == "stop"
    value = json.loads(c.text)
    assert not isinstance(value, dict), c.text  # an object was all the grammar used to allow for {}
