"""Lazy grammar checks (tether.models.lazy_grammar) on the real engine: the same greedy output as
matching the whole vocabulary at every step, the grammar still forced where the model's first
choice breaks it, logit_bias honoured, and llama-cpp-python's own sampler back after a request."""

from __future__ import annotations

import contextlib
import json

import pytest

import tether.models.engine as engine_module
from tether.models.engine import Message, Sampling

CITY = {"type": "object", "required": ["name", "country", "population"],
        "properties": {"name": {"type": "string"}, "country": {"type": "string"}, "population": {"type": "integer"}}}
SCHEMAS = [
    ("Describe Paris.", CITY),
    ("Pick a fruit.", {"enum": ["apple", "banana", "cherry"]}),
    ("Give a product code.", {"type": "object", "required": ["code"],
                              "properties": {"code": {"type": "string", "pattern": r"^[A-Z]{3}-\d{2}$"}}}),
    ("Rate this film from 1 to 5.", {"type": "object", "required": ["stars"],
                                     "properties": {"stars": {"type": "integer", "minimum": 1, "maximum": 5}}}),
    ("List three colours.", {"type": "array", "items": {"type": "string", "maxLength": 12}, "minItems": 3,
                             "maxItems": 3}),
]


@contextlib.contextmanager
def mode(engine, *, lazy: bool):
    """Both ways evaluate the whole prompt, so the logits (and greedy picks) are the same."""
    before = engine.lazy_grammar, engine.isolate_requests
    engine.lazy_grammar, engine.isolate_requests = lazy, True
    try:
        yield
    finally:
        engine.lazy_grammar, engine.isolate_requests = before


def complete(engine, prompt, schema, *, lazy, **sampling):
    with mode(engine, lazy=lazy):
        return engine.complete([Message("user", prompt)], Sampling(**{"max_tokens": 60, **sampling}),
                               json_schema=schema).text


@pytest.fixture
def spy(monkeypatch):
    """The LazyGrammarSampler objects the engine makes (the real class, counted)."""
    made = []

    class Counted(engine_module.LazyGrammarSampler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(engine_module, "LazyGrammarSampler", Counted)
    yield made
    made.clear()  # the class lives on in a reference cycle; the model must not live on with it


@pytest.mark.parametrize("prompt,schema", SCHEMAS, ids=[p for p, _ in SCHEMAS])
def test_greedy_output_is_what_matching_the_whole_vocabulary_gives(tiny, prompt, schema, spy):
    lazy = complete(tiny, prompt, schema, lazy=True, temperature=0.0)
    assert len(spy) == 1 and spy[0].steps > 0
    assert lazy == complete(tiny, prompt, schema, lazy=False, temperature=0.0)
    json.loads(lazy)
    assert spy[0].full_matches < spy[0].steps  # most steps asked the grammar about one token only


def test_the_grammar_holds_where_the_models_first_choice_breaks_it(tiny, spy):
    prompt, schema = "What colour is the sky? Answer in one word.", {"enum": ["zebra", "quokka"]}
    free = tiny.complete([Message("user", prompt)], Sampling.greedy(8)).text
    assert not free.startswith('"')
    lazy = complete(tiny, prompt, schema, lazy=True, temperature=0.0)
    assert json.loads(lazy) in schema["enum"] and spy[0].full_matches >= 1
    assert lazy == complete(tiny, prompt, schema, lazy=False, temperature=0.0)
    for seed in range(4):  # sampled: every draw the grammar refuses is drawn again from what it allows
        assert json.loads(complete(tiny, prompt, schema, lazy=True, temperature=1.5, seed=seed)) in schema["enum"]


def test_logit_bias_counts_before_the_grammar(tiny):
    prompt, schema = "Which animal barks?", {"enum": ["cat", "dog"]}
    dog = tiny.llm.tokenize(b"dog", add_bos=False, special=False)[0]
    cat = tiny.llm.tokenize(b"cat", add_bos=False, special=False)[0]
    for token, want in ((dog, "dog"), (cat, "cat")):
        bias = {token: 100.0}  # at every step; the grammar admits it only after the opening quote
        got = complete(tiny, prompt, schema, lazy=True, temperature=0.0, logit_bias=bias)
        assert json.loads(got) == want
        assert got == complete(tiny, prompt, schema, lazy=False, temperature=0.0, logit_bias=bias)


def test_the_llama_object_gets_its_own_sampler_back(tiny):
    messages = [Message("user", "Describe Paris.")]
    stream = tiny.stream(messages, Sampling.greedy(40), json_schema=CITY)
    next(stream)
    assert "sample" in vars(tiny.llm)  # installed for this request only
    stream.close()
    assert "sample" not in vars(tiny.llm)
    assert tiny.complete(messages, Sampling.greedy(5)).text  # a plain request samples as before
    with pytest.raises(Exception):
        for i, _ in enumerate(tiny.stream(messages, Sampling.greedy(40), json_schema=CITY)):
            if i == 2:
                raise RuntimeError("the reader fails mid-stream")
    assert "sample" not in vars(tiny.llm)
