"""tether.Session on the real 135M model."""

from __future__ import annotations

import dataclasses
import enum
import threading
from typing import Literal

import pytest
from pydantic import BaseModel, field_validator

import tether
from tether import (
    ContextWindowExceededError,
    GenerationCancelledError,
    InputError,
    InvalidOutputError,
    Message,
    ModelUnavailableError,
    Sampling,
    Session,
    TranscriptEntry,
    UnknownModelError,
)

TINY = "smollm2-135m"


def test_public_api_is_exported():
    assert sorted(tether.__all__) == tether.__all__
    for name in tether.__all__:
        assert hasattr(tether, name)


def test_respond_returns_text_and_records_transcript(tiny):
    s = Session(instructions="Answer briefly.", model=TINY, sampling=Sampling.greedy(20))
    r = s.respond("What colour is the sky?")
    assert isinstance(r.content, str) and r.content == r.text == str(r)
    assert r.usage["total_tokens"] == r.usage["prompt_tokens"] + r.usage["completion_tokens"]
    assert [e.role for e in s.transcript] == ["instructions", "prompt", "response"]
    assert s.transcript[2].content == r.text


def test_later_turns_see_earlier_ones(tiny):
    s = Session(model=TINY, sampling=Sampling.greedy(10))
    first = s.respond("My name is Ada.")
    second = s.respond("What is my name?")
    assert second.completion.prompt_tokens > first.completion.prompt_tokens + first.completion.completion_tokens
    assert len(s.transcript) == 4


class City(BaseModel):
    name: str
    country: str
    population: int


def test_schema_returns_an_instance(tiny):
    s = Session(model=TINY, sampling=Sampling.greedy(80))
    r = s.respond("Describe Paris.", City)
    assert isinstance(r.content, City)
    assert City.model_validate_json(r.text) == r.content


class NeverValid(BaseModel):
    word: str

    @field_validator("word")
    @classmethod
    def impossible(cls, v: str) -> str:
        raise ValueError("no word is ever good enough")


def test_output_that_fails_validation_twice_raises(tiny):
    s = Session(model=TINY, sampling=Sampling.greedy(30))
    with pytest.raises(InvalidOutputError) as info:
        s.respond("Say a word.", NeverValid)
    assert "after a retry" in str(info.value) and info.value.output
    assert not s.is_responding


def test_the_retry_keeps_the_caller_s_sampling_but_not_its_greediness(tiny):
    """The retry took fresh sampling (temperature 0.7, seed 1234), dropping the caller's stop
    strings, penalties, logit_bias and top_k: here the stop "r" cut both tries, before it the
    retry ran on past it."""
    s = Session(model=TINY)
    with pytest.raises(InvalidOutputError) as info:
        s.respond("Say a word.", NeverValid, sampling=Sampling.greedy(30, stop=("r",)))
    assert "r" not in info.value.output, info.value.output
    caller = Sampling(temperature=0.0, top_p=0.0, top_k=1, seed=42, max_tokens=40, stop=("}",), presence_penalty=1.0,
                      logit_bias={13: -100})
    again = caller.retry()
    assert (again.stop, again.presence_penalty, again.logit_bias, again.max_tokens) == (("}",), 1.0, ((13, -100.0),), 40)
    assert again.temperature >= 0.7 and again.top_p > 0 and again.top_k != 1 and again.seed == 43


def test_tool_choice_required_without_tools_is_an_error(tiny):
    """It answered without calling anything: "required" was ignored."""
    s = Session(model=TINY, sampling=Sampling.greedy(8))
    with pytest.raises(InputError, match="'required' needs a tool"):
        s.respond("What's the weather in Paris?", tool_choice="required")
    assert s.transcript == []


def test_stream_yields_deltas_and_final_response(tiny):
    s = Session(model=TINY, sampling=Sampling.greedy(20))
    stream = s.stream("Name a fruit.")
    text = "".join(stream)
    assert stream.response is not None and stream.response.text == text
    assert s.transcript[-1].content == text


def test_a_guided_stream_shows_the_object_growing_and_ends_with_an_instance(tiny):
    s = Session(model=TINY, sampling=Sampling.greedy(80))
    stream = s.stream("Describe Paris.", City)
    snapshots = list(stream)
    assert len(snapshots) >= 3  # the object grows field by field, not in one piece at the end
    for before, after in zip(snapshots, snapshots[1:]):
        assert after.raw_content.startswith(before.raw_content) and after.content != before.content
        for key, value in before.content.items():  # a field, once shown, only grows
            assert key in after.content
            if isinstance(value, str):
                assert str(after.content[key]).startswith(value)
            else:  # a number is shown only when whole ("3" of "31522" never appears)
                assert after.content[key] == value
    r = stream.response
    assert r is not None and isinstance(r.content, City)
    assert City.model_validate_json(r.text) == r.content
    assert snapshots[-1].content == r.content.model_dump() and snapshots[-1].raw_content.strip() == r.text.strip()
    assert s.transcript[-1].content == r.text and not s.is_responding


def test_a_guided_stream_collects_like_respond(tiny):
    s = Session(model=TINY, sampling=Sampling.greedy(80))
    streamed = s.stream("Describe Paris.", City).collect()
    answered = Session(model=TINY, sampling=Sampling.greedy(80)).respond("Describe Paris.", City)
    assert streamed.content == answered.content and streamed.text == answered.text
    raw = Session(model=TINY, sampling=Sampling.greedy(80)).stream("Describe Paris.", City).text()
    assert raw == answered.text  # the raw JSON, not snapshots
    assert [e.role for e in s.transcript] == ["prompt", "response"]


def test_a_guided_stream_the_schema_refuses_raises_at_its_end_and_records_nothing(tiny):
    s = Session(model=TINY, sampling=Sampling.greedy(30))
    stream = s.stream("Say a word.", NeverValid)
    seen = []
    with pytest.raises(InvalidOutputError) as info:
        for snapshot in stream:
            seen.append(snapshot)
    assert seen and "word" in seen[-1].content  # the output was shown before it was refused
    assert "did not match NeverValid" in str(info.value) and info.value.output
    assert stream.response is None and s.transcript == [] and not s.is_responding
    assert s.respond("Hi").text is not None


def test_a_schema_that_is_not_a_type_is_refused_before_anything_starts(tiny):
    s = Session(model=TINY, sampling=Sampling.greedy(10))
    for bad in (42, "City", {"type": "object"}, City(name="a", country="b", population=1), object()):
        with pytest.raises(InputError, match="schema"):
            s.stream("Describe Paris.", bad)
        with pytest.raises(InputError, match="schema"):
            s.respond("Describe Paris.", bad)
    assert not s.is_responding and s.transcript == []


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"


@dataclasses.dataclass
class Point:
    x: int
    y: int


def test_a_schema_can_be_any_type_pydantic_validates(tiny):
    s = Session(model=TINY, sampling=Sampling.greedy(40))
    colours = s.respond("Name three colours.", list[str]).content
    assert isinstance(colours, list) and all(isinstance(c, str) for c in colours)
    assert s.respond("Is the sky blue?", Literal["yes", "no"]).content in ("yes", "no")
    assert isinstance(s.respond("Pick a colour.", Colour).content, Colour)
    point = s.respond("Give a point on a grid.", Point).content
    assert isinstance(point, Point) and isinstance(point.x, int)
    assert isinstance(s.respond("How many legs has a spider?", int).content, int)
    assert [e.role for e in s.transcript].count("response") == 5


def test_a_guided_stream_of_a_list_shows_the_items_as_they_come(tiny):
    s = Session(model=TINY, sampling=Sampling.greedy(60))
    stream = s.stream("Name five fruits.", list[str])
    snapshots = list(stream)
    assert all(isinstance(snap.content, list) for snap in snapshots)
    assert len(snapshots) >= 3 and len(snapshots[0].content) <= len(snapshots[-1].content)
    assert stream.response is not None and stream.response.content == snapshots[-1].content


def test_a_type_pydantic_cannot_validate_is_an_input_error(tiny):
    class Opaque:
        pass

    with pytest.raises(InputError, match="Opaque"):
        Session(engine=tiny).respond("Make one.", Opaque)


def test_collecting_a_cancelled_stream_says_it_was_cancelled(tiny):
    s = Session(model=TINY, sampling=Sampling.greedy(200))
    stream = s.stream("Count from 1 to 100.")
    next(iter(stream))
    stream.cancel()
    with pytest.raises(GenerationCancelledError):
        stream.collect()
    assert not s.is_responding


def test_stream_cancel_from_another_thread(tiny):
    s = Session(model=TINY, sampling=Sampling.greedy(400))
    stream = s.stream("Count from 1 to 300, one number per line.")
    got = []
    for piece in stream:
        got.append(piece)
        if len(got) == 2:
            threading.Thread(target=stream.cancel).start()
    assert stream.cancelled and stream.response is None
    assert len(got) < 50
    assert not s.is_responding
    assert s.respond("Hi").text is not None  # the session is usable again


def test_stream_context_manager_releases_session(tiny):
    s = Session(model=TINY, sampling=Sampling.greedy(50))
    with s.stream("Tell a story.") as stream:
        next(iter(stream))
    assert not s.is_responding


def test_breaking_out_of_a_stream_frees_the_model_for_everyone(tiny):
    """The engine's generation lock goes with the stream: neither this session nor another waits."""
    import threading

    s = Session(model=TINY, sampling=Sampling.greedy(200))
    stream = s.stream("Tell me a long story.")
    for i, _ in enumerate(stream):
        if i == 2:
            break
    answers: dict[str, str] = {}

    def later() -> None:
        answers["other"] = Session(model=TINY, sampling=Sampling.greedy(4)).respond("Hi").content
        answers["same"] = s.respond("Hi", sampling=Sampling.greedy(4)).content

    worker = threading.Thread(target=later, daemon=True)
    worker.start()
    worker.join(120)
    assert set(answers) == {"other", "same"} and stream.cancelled
    assert len(s.transcript) == 2  # the broken-off turn is not recorded; the next one is


def test_a_stream_dropped_unread_does_not_keep_the_session_busy(tiny):
    s = Session(model=TINY, sampling=Sampling.greedy(4))
    s.stream("Hi")  # never read
    assert s.respond("Hi").content
    with s.stream("Say ok.") as stream:
        stream.text()
    assert not stream.cancelled and list(stream) == []  # finished, and read only once
    assert len(s.transcript) == 4


def test_busy_session_refuses_a_second_request(tiny):
    s = Session(model=TINY, sampling=Sampling.greedy(50))
    with s.stream("Tell a story."):
        with pytest.raises(InputError, match="already responding"):
            s.respond("Hello")


def test_context_exceeded_is_typed_and_raised_before_generation(tiny):
    s = Session(model=TINY)
    with pytest.raises(ContextWindowExceededError):
        s.respond("lorem ipsum " * 3000)
    with pytest.raises(ContextWindowExceededError):
        s.stream("lorem ipsum " * 3000)
    assert s.transcript == [] and not s.is_responding


def test_empty_prompt_is_an_input_error(tiny):
    s = Session(model=TINY)
    for bad in ["", "   \n"]:
        with pytest.raises(InputError):
            s.respond(bad)


def test_availability_says_why():
    ok = Session.availability(TINY)
    assert ok.available and ok.reason == "ready"
    unknown = Session.availability("no-such-model")
    assert not unknown and "unknown model" in unknown.reason
    assert not Session(model="/nowhere/model.gguf").is_available
    with pytest.raises(UnknownModelError):
        Session(model="no-such-model").respond("hi")
    with pytest.raises(ModelUnavailableError, match="file not found"):
        Session(model="/nowhere/model.gguf").respond("hi")


def test_non_gguf_file_is_unavailable_not_a_crash(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a gguf file at all" * 100)
    with pytest.raises(ModelUnavailableError, match="is not a GGUF model file"):
        Session(model=str(bad)).respond("hi")


def test_a_second_generation_on_the_same_thread_while_a_stream_is_open_is_an_error_not_a_hang(tiny):
    """Sessions on one model share its engine: a stream holds it. Starting another generation on it
    inside the loop that reads the stream could only wait for itself."""
    reader, other = Session(engine=tiny), Session(engine=tiny)
    stream = reader.stream("Count from 1 to 50.", sampling=Sampling.greedy(60))
    it = iter(stream)
    next(it)
    with pytest.raises(tether.ConcurrentRequestsError, match="still open on this thread"):
        other.respond("Hi", sampling=Sampling.greedy(2))
    stream.close()
    assert other.respond("Hi", sampling=Sampling.greedy(2)).text is not None  # free again once closed
    with pytest.raises(tether.InputError):  # the same session twice: busy, and still an InputError
        with reader.stream("Count.", sampling=Sampling.greedy(30)):
            reader.respond("Hi")


def test_respond_can_be_cancelled_and_the_transcript_stays_clean(tiny):
    session = Session(engine=tiny)
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    with pytest.raises(GenerationCancelledError):
        session.respond("Write a very long story about a lighthouse.", sampling=Sampling.greedy(2000), cancel=cancel)
    assert session.transcript == [] and not session.is_responding


def _ticker(every: float):
    """A task counting event-loop turns in ``ticks[0]``: it only counts while the loop is free."""
    import asyncio

    ticks = [0]

    async def tick():
        while True:
            await asyncio.sleep(every)
            ticks[0] += 1

    return asyncio.create_task(tick()), ticks


def test_respond_async_runs_off_the_event_loop_and_stops_when_cancelled(tiny):
    import asyncio

    session = Session(engine=tiny)

    async def main():
        ticker, ticks = _ticker(0.05)
        answer = await session.respond_async("Say hi.", sampling=Sampling.greedy(8))
        task = asyncio.create_task(session.respond_async("Write a very long story.", sampling=Sampling.greedy(2000)))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(100):  # the generation stops at its next token and frees the session
            if not session.is_responding:
                break
            await asyncio.sleep(0.05)
        ticker.cancel()
        return answer, ticks[0]

    from tests.conftest import run_async

    answer, ticks = run_async(main())
    assert answer.text and ticks > 3  # the loop kept running while the model answered
    assert not session.is_responding and len(session.transcript) == 2  # only the finished turn


def test_async_for_reads_a_stream_off_the_event_loop(tiny):
    import asyncio

    from tests.conftest import run_async

    session = Session(engine=tiny, sampling=Sampling.greedy(60))

    async def main():
        ticker, ticks = _ticker(0.01)
        stream = session.stream("Tell a story.")
        pieces = [piece async for piece in stream]
        snapshots = [snap async for snap in session.stream("Describe Paris.", City)]
        ticker.cancel()
        return stream, pieces, snapshots, ticks[0]

    stream, pieces, snapshots, ticks = run_async(main())
    assert stream.response is not None and "".join(pieces) == stream.response.text and len(pieces) > 5
    assert ticks > 3  # the loop kept running while the model answered
    assert City.model_validate(snapshots[-1].content) and len(snapshots) > 3
    assert [e.role for e in session.transcript] == ["prompt", "response"] * 2 and not session.is_responding


def test_leaving_an_async_stream_early_stops_it_and_frees_the_session(tiny):
    import asyncio

    from tests.conftest import run_async

    session = Session(engine=tiny, sampling=Sampling.greedy(2000))

    async def main():
        async with session.stream("Write a very long story.") as stream:
            got = []
            async for piece in stream:
                got.append(piece)
                if len(got) == 3:
                    break
        free_after_break = not session.is_responding

        async def reader(stream):
            async for _ in stream:
                pass

        stream = session.stream("Write a very long story.")
        task = asyncio.create_task(reader(stream))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return got, free_after_break, stream

    got, free_after_break, stream = run_async(main())
    assert len(got) == 3 and free_after_break
    assert stream.cancelled and stream.response is None and not session.is_responding
    assert session.transcript == []  # neither unfinished answer was recorded
    assert session.respond("Hi", sampling=Sampling.greedy(5)).text is not None


def test_context_size_and_token_count_match_what_is_sent(tiny):
    session = Session("Be brief.", engine=tiny)
    assert session.context_size == tiny.context_window
    before = session.token_count("What is the capital of France?")
    assert before == len(tiny.tokenize_chat([Message("system", "Be brief."),
                                             Message("user", "What is the capital of France?")]))
    session.respond("Hi", sampling=Sampling.greedy(4))
    assert session.token_count("What is the capital of France?") > before  # the transcript counts


def test_an_unanchored_pattern_in_a_schema_is_enforced_not_refused(tiny):
    from pydantic import Field

    class Code(BaseModel):
        code: str = Field(pattern=r"[A-Z]{3}")

    value = Session(engine=tiny).respond("Give a three-letter airport code for Oslo.", Code,
                                         sampling=Sampling.greedy(20)).content
    assert len(value.code) == 3 and value.code.isupper()


def test_availability_unpacks_like_apples_is_available():
    ok, reason = tether.availability(TINY)
    assert ok is True and reason
    ok, reason = tether.availability("no-such-model")
    assert ok is False and "no-such-model" in reason


def test_a_saved_transcript_resumes_with_its_instructions_and_turns(tiny):
    import json

    first = Session("Answer in one word.", engine=tiny)
    first.respond("What colour is the sky?", sampling=Sampling.greedy(4))
    saved = json.loads(json.dumps(first.transcript_dict()))  # through JSON, as a file would
    resumed = Session.from_transcript(saved, engine=tiny)
    assert resumed.instructions == "Answer in one word."
    assert resumed.transcript == first.transcript
    assert resumed.token_count("And grass?") == first.token_count("And grass?")  # the same request
    renewed = Session.from_transcript(saved, engine=tiny, instructions="Answer in French.")  # no TypeError
    assert renewed.instructions == "Answer in French." and renewed.transcript[1:] == first.transcript[1:]
    with pytest.raises(InputError, match="role"):
        Session.from_transcript({"entries": [{"role": "wizard", "content": "x"}]}, engine=tiny)
    with pytest.raises(InputError, match="tool_call"):
        Session.from_transcript([{"role": "tool", "content": "14°C"}], engine=tiny)


def test_the_schema_in_the_prompt_keeps_a_field_named_title():
    from tether.session import _compact_schema

    class Book(BaseModel):
        title: str
        author: str

    schema = _compact_schema(Book.model_json_schema())
    assert set(schema["properties"]) == {"title", "author"} and "title" not in schema


def _bad_calls(tiny):
    from tether.features import create_emoji, load_notifications, rewrite, summarize, summarize_notifications

    s = Session(engine=tiny)
    return {
        "instructions=5": lambda: Session(5, engine=tiny),
        "max_tool_calls='3'": lambda: Session(engine=tiny, max_tool_calls="3"),
        "tools=5": lambda: Session(engine=tiny, tools=5),
        "n_ctx='512'": lambda: Session(TINY, n_ctx="512"),
        "sampling as a dict": lambda: Session(engine=tiny, sampling={"max_tokens": 5}),
        "respond(sampling=dict)": lambda: s.respond("hi", sampling={"max_tokens": 5}),
        "stream(sampling=5)": lambda: s.stream("hi", sampling=5),
        "respond(cancel=True)": lambda: s.respond("hi", cancel=True),
        "token_count(None)": lambda: s.token_count(None),
        "entry with int content": lambda: TranscriptEntry("response", 5),
        "entry with a bogus role": lambda: TranscriptEntry("bogus", "x"),
        "transcript of another format": lambda: Session.from_transcript({"type": "x", "version": 99, "entries": []}),
        "two instructions": lambda: Session.from_transcript([TranscriptEntry("instructions", "a"),
                                                             TranscriptEntry("instructions", "b")]),
        "tool(5)": lambda: tether.tool(5),
        "tool(dict)": lambda: tether.tool(dict),
        "rewrite tone as a list": lambda: rewrite("hi there", ["x"], model=TINY),
        "summarize form as a dict": lambda: summarize("hi there", {}, model=TINY),
        "summarize_notifications(None)": lambda: summarize_notifications(None, model=TINY),
        "load_notifications(None)": lambda: load_notifications(None),
        "emoji size 'big'": lambda: create_emoji("a cat", model=TINY, size="big", png=False),
        "emoji size 5": lambda: create_emoji("a cat", model=TINY, size=5, png=False),
    }


def test_wrong_types_are_input_errors_and_the_session_stays_usable(tiny):
    leaked = {}
    for label, call in _bad_calls(tiny).items():
        try:
            call()
            leaked[label] = "no error"
        except InputError:
            pass
        except Exception as exc:  # noqa: BLE001 - what the test is looking for
            leaked[label] = f"{type(exc).__name__}: {exc}"
    assert leaked == {}
    session = Session(engine=tiny)
    assert session.respond("Say hi.", sampling=Sampling.greedy(4)).text


def test_changed_instructions_are_what_a_resumed_session_gets(tiny):
    session = Session("Answer in French.", engine=tiny)
    session.instructions = "Answer in one word."
    resumed = Session.from_transcript(session.transcript_dict(), engine=tiny)
    assert resumed.instructions == "Answer in one word."
    assert [e.role for e in session.transcript] == ["instructions"]
    session.instructions = None
    assert session.transcript == []


def test_respond_async_takes_the_callers_cancel_event(tiny):
    from tests.conftest import run_async  # a suite-wide loop may already run on this thread

    session = Session(engine=tiny)
    event = threading.Event()
    answer = run_async(session.respond_async("Say hi.", sampling=Sampling.greedy(4), cancel=event))
    assert answer.text and not event.is_set()


def test_every_error_class_is_part_of_the_public_api():
    import inspect

    import tether.errors
    import tether.features

    errors = {n for n, o in vars(tether.errors).items()
              if inspect.isclass(o) and issubclass(o, Exception) and o.__module__ == "tether.errors"}
    assert errors <= set(tether.__all__)
    assert all(getattr(tether, n) is getattr(tether.errors, n) for n in errors)
    assert "Notification" in tether.features.__all__  # summarize_notifications takes it


def test_cancelling_a_stream_frees_the_session_at_once(tiny):
    """cancel() only set a flag: a stream read part way (or not at all) kept the session and the
    model until someone read it again, so the next respond was a ConcurrentRequestsError."""
    s = Session(engine=tiny)
    stream = s.stream("Count from 1 to 100.", sampling=Sampling.greedy(200))
    reading = iter(stream)
    next(reading)
    stream.cancel()
    assert not s.is_responding
    assert s.respond("Hi", sampling=Sampling.greedy(4)).text is not None
    assert list(reading) == [] and stream.response is None and stream.cancelled
    unread = s.stream("Count from 1 to 100.", sampling=Sampling.greedy(200))
    unread.cancel()
    assert s.respond("Hi", sampling=Sampling.greedy(4)).text is not None
    assert [e.role for e in s.transcript] == ["prompt", "response"] * 2  # the cancelled turns left no trace


def test_a_cancelled_async_request_has_freed_the_session_when_the_task_ends(tiny):
    """The task ended at once while the worker thread still generated, and a break out of
    ``async for`` closed the stream only later, from a task of the event loop: the next request,
    at once, was a ConcurrentRequestsError."""
    import asyncio

    from tests.conftest import run_async

    session = Session(engine=tiny)

    async def main():
        task = asyncio.create_task(session.respond_async("Write a very long story.", sampling=Sampling.greedy(2000)))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        free_after_cancel = not session.is_responding
        after_cancel = await session.respond_async("Hi", sampling=Sampling.greedy(4))
        async for _ in session.stream("Write a very long story.", sampling=Sampling.greedy(2000)):
            break
        after_break = await session.respond_async("Hi", sampling=Sampling.greedy(4))
        return free_after_cancel, after_cancel, after_break

    free_after_cancel, after_cancel, after_break = run_async(main())
    assert free_after_cancel and after_cancel.text is not None and after_break.text is not None
    assert [e.role for e in session.transcript] == ["prompt", "response"] * 2


def test_a_conversation_that_fills_the_window_says_how_to_go_on(tiny):
    """The error read as if the prompt were too long; it is the earlier turns, and the session
    goes on once some are dropped."""
    s = Session.from_transcript([{"role": "prompt", "content": "lorem ipsum " * 1400},
                                 {"role": "response", "content": "ok"}], engine=tiny)
    with pytest.raises(ContextWindowExceededError, match="1 earlier turn.*new Session.*session.transcript"):
        s.respond("Hi", sampling=Sampling.greedy(4))
    with pytest.raises(ContextWindowExceededError, match="new Session"):
        s.stream("Hi", sampling=Sampling.greedy(4))
    assert not s.is_responding and len(s.transcript) == 2
    del s.transcript[:2]
    assert s.respond("Hi", sampling=Sampling.greedy(4)).text is not None
