"""What a request yields depends on the request alone, not on what the KV cache held before.

llama.cpp's numbers depend on how a prompt's tokens are batched, and llama-cpp-python re-read
only the last token of a cached prompt: the same greedy request, asked twice, gave a first
token's logprob of -1.88 and then -2.06, and a different answer a dozen tokens in."""

from __future__ import annotations

from tether import Session
from tether.models.engine import Message, Sampling

SAY_HELLO = [Message("user", "Say hello.")]


def _run(engine, messages, n=30):
    c = engine.complete(messages, Sampling.greedy(n), logprobs=True)
    return c.text, [lp.logprob for lp in c.logprobs or []]


def test_the_same_greedy_request_twice_gives_the_same_answer_and_logprobs(tiny):
    tiny.complete([Message("user", "Something else first.")], Sampling.greedy(4))
    first = _run(tiny, SAY_HELLO)
    assert _run(tiny, SAY_HELLO) == first  # its whole prompt was cached this time
    tiny.complete([Message("user", "Say hello to my friend.")], Sampling.greedy(4))  # a shared prefix
    assert _run(tiny, SAY_HELLO) == first


def test_a_prompt_longer_than_a_block_repeats_exactly(tiny):
    long = [Message("system", "You tell stories about foxes. " * 100), Message("user", "Begin.")]
    assert len(tiny.tokenize_chat(long)) > 520
    first = _run(tiny, long, 12)
    assert _run(tiny, long, 12) == first
    assert _run(tiny, long[:1] + [Message("user", "Begin now.")], 4)  # same long prefix, other end
    assert _run(tiny, long, 12) == first


def test_a_continued_conversation_answers_as_the_same_one_resumed(tiny):
    """The continued session's earlier answer sat in the cache as generated, one token at a time;
    the resumed one reads it as part of its prompt."""
    session = Session("You are a storyteller. " * 30, engine=tiny)
    for prompt in ("Tell a story about a fox.", "And then?"):
        session.respond(prompt, sampling=Sampling.greedy(80))
    saved = session.transcript_dict()
    continued = session.respond("Summarize.", sampling=Sampling.greedy(30), logprobs=True)
    tiny.complete([Message("user", "unrelated")], Sampling.greedy(4))
    resumed = Session.from_transcript(saved, engine=tiny).respond("Summarize.", sampling=Sampling.greedy(30),
                                                                   logprobs=True)
    assert resumed.text == continued.text
    assert [lp.logprob for lp in resumed.completion.logprobs] == [lp.logprob for lp in continued.completion.logprobs]
