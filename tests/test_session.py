"""tether.Session on the real 135M model."""

from __future__ import annotations

import threading

import pytest
from pydantic import BaseModel, field_validator

import tether
from tether import (
    ContextWindowExceededError,
    InputError,
    InvalidOutputError,
    ModelUnavailableError,
    Sampling,
    Session,
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


def test_stream_yields_deltas_and_final_response(tiny):
    s = Session(model=TINY, sampling=Sampling.greedy(20))
    stream = s.stream("Name a fruit.")
    text = "".join(stream)
    assert stream.response is not None and stream.response.text == text
    assert s.transcript[-1].content == text


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
