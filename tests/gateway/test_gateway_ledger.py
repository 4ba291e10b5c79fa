"""The ledger behind a real ``tether serve``: the gateway's own device path writes the rows the router
writes for the requests it runs (an answer, or ``<rule>.failed`` / ``.abandoned``), and a row that
cannot be written costs no answer: it is a "ledger not written" note."""

from __future__ import annotations

import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from openai import OpenAI

from tether.gateway.embeddings import EMBEDDING_MODEL


@pytest.fixture(scope="module")
def client(server):
    return OpenAI(base_url=server.url + "/v1", api_key="local", max_retries=0, timeout=120)


def ledger_path(server) -> Path:
    return server.log.parent / "ledger.sqlite"  # TETHER_LEDGER of the conftest's server


def rows(server) -> list[tuple[str, str, int, int]]:
    with sqlite3.connect(ledger_path(server)) as db:
        return db.execute("SELECT feature, reason, prompt_tokens, completion_tokens FROM entries "
                          "ORDER BY rowid").fetchall()


def new_rows(server, before: int, want: int = 1) -> list[tuple[str, str, int, int]]:
    """The rows written after the first ``before``; waits (without a time limit that decides the
    test) for ``want`` of them, as a row of a stream the client left is written as its stream closes."""
    for _ in range(600):
        now = rows(server)[before:]
        if len(now) >= want:
            return now
        time.sleep(0.05)
    return rows(server)[before:]


@contextmanager
def ledger_locked(server) -> Iterator[None]:
    """Another writer holds the ledger (as a long ``tether stats --prune`` would)."""
    db = sqlite3.connect(ledger_path(server), isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        db.execute("ROLLBACK")
        db.close()


ASK = dict(model="auto", max_tokens=4, messages=[{"role": "user", "content": "Hi"}])


def test_a_device_answer_whose_ledger_row_cannot_be_written_says_so(client, server):
    before = len(rows(server))
    with ledger_locked(server):
        plain = client.chat.completions.create(**ASK)
        chunks = list(client.chat.completions.create(stream=True, **ASK))
    assert plain.choices[0].message.content
    assert any(n.startswith("ledger not written: ") for n in plain.model_extra["tether"]["notes"])
    last = [c for c in chunks if c.choices and c.choices[0].finish_reason][-1]
    assert any(n.startswith("ledger not written: ") for n in last.model_extra["tether"]["notes"])
    assert len(rows(server)) == before  # nothing written, and nothing written twice once the lock goes
    ok = client.chat.completions.create(**ASK)
    assert ok.model_extra["tether"]["notes"] == [] and len(rows(server)) == before + 1


def test_an_embedding_or_emoji_whose_ledger_row_cannot_be_written_is_still_answered(server):
    with ledger_locked(server):
        emb = httpx.post(server.url + "/v1/embeddings", json={"model": EMBEDDING_MODEL, "input": "hi"}, timeout=120)
        emoji = httpx.post(server.url + "/v1/emoji", json={"description": "a cat", "png": False}, timeout=120)
    for r in (emb, emoji):
        assert r.status_code == 200, r.text
        assert any(n.startswith("ledger not written: ") for n in r.json()["tether"]["notes"])
    assert len(emb.json()["data"][0]["embedding"]) > 0 and emoji.json()["svg"].startswith("<svg")


def test_a_device_request_that_fails_leaves_a_failed_row(server):
    before = len(rows(server))
    r = httpx.post(server.url + "/v1/chat/completions", timeout=120, json={
        "model": "device", "max_tokens": 4, "messages": [{"role": "user", "content": "word " * 20_000}]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"
    assert new_rows(server, before) == [("chat", "requested.failed", 0, 0)]


def test_a_device_stream_the_client_leaves_leaves_an_abandoned_row_with_what_it_sent(server):
    before = len(rows(server))
    body = {"model": "device", "stream": True, "max_tokens": 200,
            "messages": [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=120) as r:
        got = 0
        for line in r.iter_lines():
            got += line.startswith("data:")
            if got == 4:  # the role chunk and three deltas
                break
    (feature, reason, prompt_tokens, completion_tokens), = new_rows(server, before)
    assert (feature, reason) == ("chat", "requested.abandoned")
    assert prompt_tokens > 0 and 3 <= completion_tokens < 200
