"""What an upstream-mode node sends its engine: the validated request, never the caller's own dict.

A real ``tether node serve --upstream`` process fronts a stand-in OpenAI-compatible engine (a
real loopback server in this process) that records every JSON body it gets. The requests are
sealed to the node and posted to its ``/v1/envelope`` as the relay would.
"""

from __future__ import annotations

import json
import threading

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tether.cloud.attestation import unb64
from tether.cloud.envelope import seal_request

from tests.cloud.conftest import serve_in_thread

# vLLM's and llama-server's own knobs: each would get around a node cap or its statelessness.
ENGINE_KNOBS = {"best_of": 64, "ignore_eos": True, "min_tokens": 4000, "use_beam_search": True, "prompt_logprobs": 20,
                "priority": -100, "kv_transfer_params": {"do_remote_prefill": True}, "id_slot": 0,
                "cache_prompt": True, "echo": True, "n_probs": 100, "min_p": 0.5, "repetition_penalty": 2.0}
SCHEMA = {"type": "object", "properties": {"fruit": {"type": "string"}}, "required": ["fruit"]}
MARK = "upstream-fields-test"


def _completion(body: dict) -> dict:
    return {"id": "e", "object": "chat.completion", "created": 1, "model": body.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": '{"fruit": "fig"}'},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}


def _sse(body: dict) -> bytes:
    chunks = [{"id": "e", "object": "chat.completion.chunk", "created": 1, "model": body.get("model"),
               "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
              for piece in ('{"fruit": ', '"fig"}')]
    chunks.append({"id": "e", "object": "chat.completion.chunk", "created": 1, "model": body.get("model"),
                   "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})
    return b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks) + b"data: [DONE]\n\n"


@pytest.fixture(scope="module")
def upstream_node(tmp_path_factory, start_service):
    received: list[dict] = []
    lock = threading.Lock()

    async def completions(request: Request) -> Response:
        body = await request.json()
        with lock:
            received.append(body)
        if body.get("stream"):
            return Response(_sse(body), media_type="text/event-stream")
        return JSONResponse(_completion(body))

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "engine-model"}]})

    engine, stop_engine = serve_in_thread([Route("/v1/chat/completions", completions, methods=["POST"]),
                                           Route("/v1/models", models)])
    root = tmp_path_factory.mktemp("upstream-fields")
    try:
        node = start_service("node", ["node", "serve", "-m", "smollm2-135m", "--upstream", engine,
                                      "--upstream-model", "engine-model", "--model-sha256", "0" * 64,
                                      "--max-tokens", "64", "--port", "0"], root)
    except BaseException:
        stop_engine()
        raise
    try:
        att = httpx.get(f"{node.url}/v1/attestation", timeout=10).json()
        yield {"url": node.url, "node_id": att["node_id"], "key": unb64(att["hpke_key"]), "received": received,
               "lock": lock, "node": node}
    finally:
        node.stop()
        stop_engine()


def _ask(node: dict, body: dict) -> tuple[list[dict], dict | None]:
    """Seal ``body`` to the node, post it, open every frame; return them and what the engine got for it."""
    sealed, openers = seal_request(body, [(node["node_id"], node["key"])])
    r = httpx.post(f"{node['url']}/v1/envelope", json=sealed.for_node(node["node_id"]), timeout=30)
    assert r.status_code == 200, r.text
    opener = openers[node["node_id"]]
    frames = list(opener.feed(r.content))
    opener.close()
    tag = body["messages"][-1]["content"]
    with node["lock"]:
        got = [b for b in node["received"] if json.dumps(b).find(tag) >= 0]
    assert len(got) <= 1
    return frames, got[0] if got else None


def _body(tag: str, **extra) -> dict:
    return {"model": "whatever-the-caller-says",
            "messages": [{"role": "system", "content": "Answer in JSON.", "name": "boss", "weight": 0},
                         {"role": "user", "content": f"{MARK} {tag}"}],
            "max_tokens": 5000, "temperature": 0.3, "top_p": 0.9, "stop": ["\n\n"], "seed": 7,
            "logprobs": True, "top_logprobs": 2, "presence_penalty": 0.5,
            "response_format": {"type": "json_schema",
                                "json_schema": {"name": "fruit", "schema": SCHEMA, "strict": True,
                                                "backend": "outlines"}},
            **ENGINE_KNOBS, **extra}


def test_only_the_fields_the_node_knows_reach_the_engine(upstream_node):
    frames, got = _ask(upstream_node, _body("plain"))
    assert frames[-1]["choices"][0]["message"]["content"] == '{"fruit": "fig"}'
    assert got is not None
    assert not set(ENGINE_KNOBS) & set(got), got
    assert got["model"] == "engine-model"  # the node's own, whatever the caller named
    assert got["max_tokens"] == 64  # capped at --max-tokens
    assert "max_completion_tokens" not in got
    assert {k: got[k] for k in ("temperature", "top_p", "stop", "seed", "logprobs", "top_logprobs",
                                "presence_penalty")} == {"temperature": 0.3, "top_p": 0.9, "stop": ["\n\n"],
                                                         "seed": 7, "logprobs": True, "top_logprobs": 2,
                                                         "presence_penalty": 0.5}
    assert got["response_format"] == {"type": "json_schema",
                                      "json_schema": {"name": "fruit", "schema": SCHEMA, "strict": True}}
    # Nested objects are re-serialised too: a message's unknown keys stay behind.
    assert got["messages"] == [{"role": "system", "content": "Answer in JSON."},
                               {"role": "user", "content": f"{MARK} plain"}]


def test_a_streamed_request_keeps_its_stream_fields_and_loses_the_rest(upstream_node):
    frames, got = _ask(upstream_node, _body("streamed", stream=True, max_completion_tokens=10,
                                            stream_options={"include_usage": True, "continuous_usage_stats": True}))
    assert "".join((c.get("delta") or {}).get("content") or "" for f in frames for c in f.get("choices") or []) \
        == '{"fruit": "fig"}'
    assert frames[-1] == {"done": True}
    assert got is not None and not set(ENGINE_KNOBS) & set(got), got
    assert got["stream"] is True and got["stream_options"] == {"include_usage": True}
    assert got["max_tokens"] == 10 and "max_completion_tokens" not in got
    assert got["model"] == "engine-model"


def test_an_engine_specific_response_format_is_refused_before_the_engine(upstream_node):
    body = _body("structural", response_format={"type": "structural_tag", "structures": [], "triggers": []})
    frames, got = _ask(upstream_node, body)
    assert got is None  # never sent on
    assert len(frames) == 1 and frames[0]["error"]["fault"] == "request"
    assert "structural_tag" in frames[0]["error"]["message"]
