"""Tool calling in tether.Session: definitions, the decision grammar, and real models calling real functions."""

from __future__ import annotations

import json
from enum import Enum
from typing import Literal, Optional

import pytest
from pydantic import BaseModel, Field

from tether import InputError, Sampling, Session, Tool, ToolCallError, tool
from tether.tools import ANSWER, ToolSpec, check_tools, decision_schema, parse_decision, spec_of

TINY, SMALL = "smollm2-135m", "qwen2.5-0.5b"
WEATHER = {"paris": "14°C, light rain", "oslo": "-3°C, snow"}


def make_weather(log: list):
    @tool
    def weather(city: str) -> str:
        """Current weather for a city.

        Not part of the description."""
        log.append(city)
        return WEATHER.get(city.strip().lower(), "unknown city")

    return weather


class Attendee(BaseModel):
    name: str
    email: str | None = None


class EventArgs(BaseModel):
    title: str = Field(description="short title")
    day: str = Field(description="YYYY-MM-DD")
    attendees: list[Attendee] = []
    kind: Literal["meeting", "lunch", "call"] = "meeting"


class AddEvent(Tool):
    name = "add_event"
    description = "Add an event to the user's calendar."
    arguments = EventArgs

    def __init__(self) -> None:
        self.added: list[EventArgs] = []

    def call(self, arguments: EventArgs) -> dict:
        self.added.append(arguments)
        return {"added": arguments.title, "on": arguments.day}


# ----------------------------------------------------------------- definitions (no model)

def test_tool_decorator_reads_the_signature_and_docstring():
    log: list = []
    weather = make_weather(log)
    assert weather.name == "weather" and weather.description == "Current weather for a city."
    schema = weather.arguments.model_json_schema()
    assert schema["properties"] == {"city": {"title": "City", "type": "string"}} and schema["required"] == ["city"]
    assert weather("Oslo") == "-3°C, snow" and log == ["Oslo"]  # still a plain function

    @tool(name="convert", description="Convert an amount.")
    def _convert(amount: float, currency: str = "EUR") -> float:
        return amount

    assert (_convert.name, _convert.description) == ("convert", "Convert an amount.")
    assert _convert.arguments.model_json_schema()["required"] == ["amount"]
    assert _convert.call(_convert.arguments(amount=2)) == 2


@pytest.mark.parametrize("tools, message", [
    (["not a tool"], "is not a Tool"),
    ([tool(lambda city: city, name="none")], "must match"),
    ([tool(lambda city: city, name="two words")], "must match"),
    ([tool(lambda a: a, name="dup"), tool(lambda b: b, name="dup")], "two tools are named"),
])
def test_bad_tool_definitions_are_refused_up_front(tools, message):
    with pytest.raises(InputError, match=message):
        Session(model=TINY, tools=tools)


def test_tool_names_follow_openais_rule():
    """Letters, digits, "_" and "-", 1 to 64 of them: a leading digit is allowed, a 65th character is not."""
    assert Session(model=TINY, tools=[tool(lambda x: x, name="3d_render"), tool(lambda x: x, name="a" * 64)]).tools
    with pytest.raises(InputError, match="must match"):
        Session(model=TINY, tools=[tool(lambda x: x, name="a" * 65)])


class Unit(str, Enum):
    celsius = "celsius"
    fahrenheit = "fahrenheit"


def test_string_annotations_resolve_in_the_tools_own_module():
    """This module has ``from __future__ import annotations``: every hint is a string."""

    @tool
    def forecast(city: Optional[str], unit: Unit = Unit.celsius, days: Literal[1, 3] = 1) -> str:
        """The forecast."""
        return f"{city} {unit.value} {days}"

    props = forecast.arguments.model_json_schema()["properties"]
    assert set(props) == {"city", "unit", "days"}
    assert forecast.call(forecast.arguments(city="Oslo", unit="fahrenheit", days=3)) == "Oslo fahrenheit 3"


def test_schemas_that_cannot_guide_generation_are_input_errors(tiny):
    class Plain:  # no fields pydantic knows
        x: int

    class Odd(BaseModel):
        when: object = Field(default_factory=lambda: {1, 2})  # fine in Python, no JSON schema for a callable field
        call: type = int

    session = Session(model=TINY)
    for schema, needle in [(Plain, "not a type pydantic can validate"), ({"type": "object"}, "model class or a type"),
                           ("x", "model class or a type"), (Odd, "cannot be described as JSON")]:
        with pytest.raises(InputError, match=needle):
            session.respond("Hi", schema)  # type: ignore[arg-type]
    assert not session.is_responding  # refused before the model was taken


def test_variadic_functions_and_bad_argument_types_are_refused():
    with pytest.raises(InputError, match=r"\*args"):
        tool(lambda *args: None, name="v")

    class NoModel(Tool):
        name = "x"
        arguments = dict  # type: ignore[assignment]

    with pytest.raises(InputError, match="pydantic model class"):
        check_tools([NoModel()])
    with pytest.raises(InputError, match="max_tool_calls"):
        Session(model=TINY, max_tool_calls=0)


def test_decision_schema_admits_each_tool_or_answering():
    specs = [spec_of(make_weather([])), spec_of(AddEvent())]
    schema = decision_schema(specs)
    assert [o["properties"]["tool"]["const"] for o in schema["anyOf"]] == [ANSWER, "weather", "add_event"]
    assert "Attendee" in schema["$defs"]  # nested models' definitions are hoisted to the root
    forced = decision_schema(specs[:1], allow_answer=False)
    assert [o["properties"]["tool"]["const"] for o in forced["anyOf"]] == ["weather"]
    clash = ToolSpec("other", "", {"type": "object", "properties": {}, "$defs": {"Attendee": {"type": "string"}}})
    with pytest.raises(InputError, match="two different 'Attendee'"):
        decision_schema([specs[1], clash])
    assert parse_decision('{"tool": "none"}', specs) == (ANSWER, {})
    assert parse_decision('{"tool": "weather", "arguments": {"city": "Oslo"}}', specs) == ("weather", {"city": "Oslo"})
    for bad in ('{"tool": "rm_rf", "arguments": {}}', '{"tool": "weather"}', "[]"):
        with pytest.raises(ValueError):
            parse_decision(bad, specs)


# ----------------------------------------------------------------- on the real 135M model

def test_forced_tool_call_runs_the_function_and_feeds_the_answer(tiny):
    log: list = []
    s = Session(model=TINY, tools=[make_weather(log)], sampling=Sampling.greedy(30))
    r = s.respond("What's the weather in Paris?", tool_choice="weather")
    assert 1 <= len(r.tool_calls) <= s.max_tool_calls
    assert [c.arguments["city"] for c in r.tool_calls] == log  # every call the model made really ran
    first = r.tool_calls[0]
    assert first.name == "weather" and first.output == WEATHER.get(log[0].strip().lower(), "unknown city")
    assert r.text.strip()
    roles = [e.role for e in s.transcript]
    assert roles == ["prompt", *["tool"] * len(r.tool_calls), "response"]
    assert s.transcript[1].tool_call == first and s.transcript[1].content == first.output
    # The next turn sees the earlier results folded into the earlier prompt.
    history = s._messages("And tomorrow?", None)
    assert first.output in history[0].content and history[1].content == r.text


def test_structured_arguments_arrive_as_the_validated_model(tiny):
    add = AddEvent()
    s = Session(model=TINY, tools=[add], sampling=Sampling.greedy(20), max_tool_calls=1)
    r = s.respond("Add lunch with Sam on 2026-12-03.", tool_choice="required")
    assert len(add.added) == len(r.tool_calls) == 1
    assert isinstance(add.added[0], EventArgs) and add.added[0].kind in {"meeting", "lunch", "call"}
    assert json.loads(r.tool_calls[0].output) == {"added": add.added[0].title, "on": add.added[0].day}


def test_tools_then_a_guided_answer(tiny):
    class Forecast(BaseModel):
        city: str
        rain: bool

    r = Session(model=TINY, tools=[make_weather([])], sampling=Sampling.greedy(40), max_tool_calls=1).respond(
        "Will it rain in Paris?", schema=Forecast, tool_choice="weather")
    assert isinstance(r.content, Forecast) and len(r.tool_calls) == 1


def test_tool_choice_none_never_calls_and_unknown_choice_is_an_error(tiny):
    log: list = []
    s = Session(model=TINY, tools=[make_weather(log)], sampling=Sampling.greedy(10))
    r = s.respond("What's the weather in Paris?", tool_choice="none")
    assert r.tool_calls == [] and log == []
    with pytest.raises(InputError, match="tool_choice"):
        s.respond("Hi", tool_choice="search")


def test_a_failing_tool_is_a_typed_error_and_the_session_stays_usable(tiny):
    @tool
    def explode(reason: str) -> str:
        """Always fails."""
        raise RuntimeError("disk on fire")

    s = Session(model=TINY, tools=[explode], sampling=Sampling.greedy(10))
    with pytest.raises(ToolCallError, match="tool 'explode' failed: RuntimeError: disk on fire") as err:
        s.respond("Do it.", tool_choice="explode")
    assert err.value.tool == "explode" and isinstance(err.value.__cause__, RuntimeError)
    assert s.transcript == [] and not s.is_responding
    assert s.respond("Say hi.", tool_choice="none").text.strip()


def test_a_huge_tool_output_is_cut_to_fit(tiny):
    @tool
    def dump(topic: str) -> str:
        """Everything about a topic."""
        return "lorem ipsum " * 20_000

    r = Session(model=TINY, tools=[dump], sampling=Sampling.greedy(8), max_tool_calls=1).respond(
        "Tell me everything.", tool_choice="dump")
    out = r.tool_calls[0].output
    assert len(out) < 4100 and out.endswith("more characters]") and r.text.strip()


def test_a_chatty_tool_in_another_script_is_cut_by_tokens_not_characters(tiny):
    """4,000 characters of Chinese are ~7,800 tokens: the character cap let the output overflow
    the window after the tool had run, and the request failed."""
    @tool
    def read_note(name: str) -> str:
        """A note's text."""
        return "我们今天去公园散步，天气很好。" * 300

    s = Session(model=TINY, tools=[read_note], sampling=Sampling.greedy(8), max_tool_calls=1)
    r = s.respond("What does my note 'walk' say?", tool_choice="read_note")
    out = r.tool_calls[0].output
    assert out.endswith("more characters]") and tiny.count_tokens(out) <= tiny.context_window // 2 + 16
    assert r.text.strip()


def test_a_tool_output_that_is_not_valid_unicode_is_mended_not_blamed_on_the_user(tiny):
    """os.listdir gives a Latin-1 file name as a lone surrogate: the request failed with "the
    user message is not valid Unicode"."""
    @tool
    def list_files(folder: str) -> list[str]:
        """The files in a folder."""
        return ["caf\udce9.txt", "notes.md"]

    r = Session(model=TINY, tools=[list_files], sampling=Sampling.greedy(8), max_tool_calls=1).respond(
        "Which files do I have?", tool_choice="list_files")
    assert "caf\ufffd.txt" in r.tool_calls[0].output and r.text.strip()


def test_positional_only_and_underscore_parameters_reach_the_function(tiny):
    """Both were accepted and then failed on every call: positional-only ones were passed by
    keyword, and pydantic took "_id" for a private attribute and left it out of the schema."""
    seen: list = []

    @tool
    def lookup(_id: str, model_config: int = 1, /) -> str:
        """Look a record up."""
        seen.append((_id, model_config))
        return f"record {_id}"

    @tool
    def tag(name: str, _kind: str = "label") -> str:
        """Tag something."""
        seen.append((name, _kind))
        return "tagged"

    assert set(lookup.arguments.model_json_schema()["properties"]) == {"_id", "model_config"}
    assert set(tag.arguments.model_json_schema()["properties"]) == {"name", "_kind"}
    s = Session(model=TINY, tools=[lookup, tag], sampling=Sampling.greedy(8), max_tool_calls=1)
    r = s.respond("Look up record 42.", tool_choice="lookup")
    assert len(seen) == 1 and r.tool_calls[0].output == f"record {seen[0][0]}"
    assert set(r.tool_calls[0].arguments) <= {"_id", "model_config"} and "_id" in r.tool_calls[0].arguments
    s.respond("Tag the invoice.", tool_choice="tag")
    assert len(seen) == 2 and isinstance(seen[1][1], str)


def test_an_openai_style_tool_choice_names_the_tool_and_a_bad_one_is_an_input_error(tiny):
    log: list = []
    s = Session(model=TINY, tools=[make_weather(log)], sampling=Sampling.greedy(8), max_tool_calls=1)
    r = s.respond("Weather in Paris?", tool_choice={"type": "function", "function": {"name": "weather"}})
    assert len(r.tool_calls) == 1 and log  # it was a TypeError: unhashable type: 'dict'
    for bad in (["weather"], {"type": "function"}, {"type": "function", "function": {"name": "search"}}):
        with pytest.raises(InputError, match="tool_choice"):
            s.respond("Hi", tool_choice=bad)


def test_async_tools_are_awaited(tiny):
    import asyncio

    @tool
    async def lookup(key: str) -> str:
        """Look a key up."""
        await asyncio.sleep(0)
        return "value-7f3a"

    r = Session(model=TINY, tools=[lookup], sampling=Sampling.greedy(8), max_tool_calls=1).respond(
        "Look up the key.", tool_choice="lookup")
    assert r.tool_calls[0].output == "value-7f3a"

    async def inside_a_loop():
        return Session(model=TINY, tools=[lookup], sampling=Sampling.greedy(8), max_tool_calls=1).respond(
            "Look up the key.", tool_choice="lookup")

    # From inside a running loop (in a thread of its own: other tests may leave one in this thread).
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(asyncio.run, inside_a_loop()).result().tool_calls[0].output == "value-7f3a"


def test_stream_runs_tools_first_then_streams_the_answer(tiny):
    log: list = []
    s = Session(model=TINY, tools=[make_weather(log)], sampling=Sampling.greedy(20), max_tool_calls=2)
    stream = s.stream("Weather in Oslo?", tool_choice="weather")
    assert log and len(stream.tool_calls) == len(log) <= 2  # tools ran before the first delta
    text = stream.text()
    assert stream.response is not None and stream.response.text == text
    assert stream.response.tool_calls == stream.tool_calls
    assert s.transcript[-1].content == text


# ----------------------------------------------------------------- behaviour on qwen2.5-0.5b

@pytest.mark.quality
def test_device_model_fills_arguments_from_the_request(small):
    """Which tool to call is measured in benchmarks/tools.py; here, that the arguments are right."""
    log: list = []
    r = Session(model=SMALL, tools=[make_weather(log)], sampling=Sampling.greedy(40)).respond(
        "Do I need an umbrella in Paris today?", tool_choice="required")
    assert (r.tool_calls[0].name, r.tool_calls[0].arguments["city"]) == ("weather", "Paris")
    assert "rain" in r.tool_calls[0].output
    add = AddEvent()
    Session(model=SMALL, tools=[add], sampling=Sampling.greedy(40), max_tool_calls=1).respond(
        "Put lunch with Sam on 2026-12-03 in my calendar.", tool_choice="add_event")
    assert add.added[0].day == "2026-12-03" and "Sam" in add.added[0].title


def test_openai_tool_turns_render_for_the_decision_and_fold_for_the_answer():
    from tether.models.openai_chat import ChatRequest

    req = ChatRequest.parse({"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 31 degrees."},
    ], "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]})
    folded = req.engine_messages()
    assert [m.role for m in folded] == ["system", "user"]
    assert folded[1].content.endswith("Weather in Paris?") and 'get_weather({"city": "Paris"}) returned: Sunny' in folded[1].content
    turns = req.decision_messages("GUIDE")
    assert [m.role for m in turns] == ["system", "user", "assistant", "user"]
    assert turns[0].content == "Be brief.\n\nGUIDE"
    assert json.loads(turns[2].content) == {"tool": "get_weather", "arguments": {"city": "Paris"}}
    assert turns[3].content == "Result of get_weather: Sunny, 31 degrees."
    assert req.tool_mode(req.tool_specs()) == "auto"


class Calendar:
    def __init__(self, owner: str) -> None:
        self.owner = owner

    @tool
    def next_event(self, day: str) -> str:
        """The owner's next event on a day."""
        return f"{self.owner}: dentist on {day}"


def test_a_method_tool_is_bound_to_its_instance_and_self_is_no_argument():
    bound = Calendar("Ana").next_event
    assert list(spec_of(bound).parameters["properties"]) == ["day"]
    assert check_tools([bound]) == {"next_event": bound}
    assert bound.call(bound.arguments(day="Friday")) == "Ana: dentist on Friday"
    with pytest.raises(InputError, match="is a method: pass it from an instance"):
        check_tools([Calendar.next_event])
