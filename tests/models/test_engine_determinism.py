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


def _tokens_read(engine, monkeypatch, batches: list[int] | None = None):
    """How many prompt tokens the engine hands llama.cpp to read, request by request (the
    answer's tokens, read one by one as they are generated, are not counted); ``batches``
    gets how many calls that took."""
    read: list[int] = []
    prefill, real_eval = engine._prefill, engine.llm.eval

    def counting_prefill(prompt, cancel):
        read.append(0)
        if batches is not None:
            batches.append(0)

        def counting_eval(tokens):
            read[-1] += len(tokens)
            if batches is not None:
                batches[-1] += 1
            return real_eval(tokens)

        monkeypatch.setattr(engine.llm, "eval", counting_eval)
        try:
            return prefill(prompt, cancel)
        finally:
            monkeypatch.setattr(engine.llm, "eval", real_eval)

    monkeypatch.setattr(engine, "_prefill", counting_prefill)
    return read


def test_a_shared_system_prompt_is_read_once_and_a_conversation_rereads_only_its_last_turns(tiny, monkeypatch):
    """Blocks end after each turn's header, so a system prompt shorter than a block (a
    feature's instructions) is reused by the next request, the new question and the answer's
    header are read in one batch, and a continued conversation re-reads only the answer and the
    new question."""
    system = Message("system", "You sort the user's notifications and answer in one short sentence. " * 4)
    tiny.complete([system, Message("user", "First question?")], Sampling.greedy(4))
    batches: list[int] = []
    read = _tokens_read(tiny, monkeypatch, batches)
    second = [system, Message("user", "A different question?")]
    first = _run(tiny, second, 8)
    tokens = tiny.tokenize_chat(second)
    opens = tiny.llm.tokenize(b"<|im_start|>", add_bos=False, special=True)
    assert len(opens) == 1
    user_turn = [i for i, t in enumerate(tokens) if t == opens[0]][1]  # <|im_start|>user\n
    assert tiny.llm.detokenize(tokens[user_turn + 1:user_turn + 3]) == b"user\n"
    question = user_turn + 3
    assert 0 < question < len(tokens) - 4
    assert read == [len(tokens) - question] and batches == [1]  # the question and the answer's header
    assert _run(tiny, second, 8) == first  # the same answer however much was reused
    assert read[-1] < 14 and batches[-1] == 1  # the last turn, read again for the first token's logits

    session = Session("You are a storyteller. " * 30, engine=tiny)
    session.respond("Tell a story about a fox.", sampling=Sampling.greedy(40))
    read.clear()
    whole = session.token_count("And then?")
    session.respond("And then?", sampling=Sampling.greedy(4))
    assert 0 < read[0] < whole - 150  # the instructions (about 150 tokens) stayed cached


def test_a_template_without_header_lines_still_repeats_exactly(tiny, monkeypatch):
    """The rule for templates whose turns do not open with a header line: blocks end at every
    end-of-turn token. Forced here on the 135M model (its own template has headers)."""
    assert tiny._header_blocks
    tiny._forget()  # the cache was read under the other rule
    monkeypatch.setattr(tiny, "_header_blocks", False)
    try:
        tokens = tiny.tokenize_chat(SAY_HELLO)
        ends, closed = tiny._block_ends(tokens)
        eos = tiny.llm.token_eos()
        assert ends[:-1] == [i + 1 for i, t in enumerate(tokens) if t == eos] and not closed
        test_the_same_greedy_request_twice_gives_the_same_answer_and_logprobs(tiny)
        test_a_continued_conversation_answers_as_the_same_one_resumed(tiny)
    finally:
        tiny._forget()
