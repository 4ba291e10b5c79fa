"""``/v1/search`` and ``/v1/ask``: the user's indexed files, searched and answered on the device."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.gateway.conftest import app_in_thread, start_server, stop_server
from tests.search.conftest import index_files

FILES = {
    "dentist.ics": "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:d-1\nSUMMARY:Dentist check-up\nDTSTART:20261210T091500Z\n"
                   "LOCATION:Smile Dental Clinic\nEND:VEVENT\nEND:VCALENDAR\n",
    "gym.md": "# Gym membership\n\nMembership at Iron Temple costs 45 dollars a month.\n",
    "bread.md": "# Sourdough\n\nMix 500 g flour with 350 g water. Bake at 240 degrees for 40 minutes.\n",
}


def build_index(root: Path) -> Path:
    return index_files(root, FILES)


@pytest.fixture(scope="module")
def searching(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gateway-search")
    s = start_server(tmp, "--index", str(build_index(tmp)))
    try:
        yield s
    finally:
        stop_server(s)


def post(url: str, path: str, body, **kwargs) -> httpx.Response:
    return httpx.post(url + path, json=body, timeout=120, **kwargs)


def test_search_finds_the_file_on_the_device(searching):
    r = post(searching.url, "/v1/search", {"query": "when is the dentist", "k": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["data"]) == 2 and Path(body["data"][0]["path"]).name == "dentist.ics"
    assert body["data"][0]["title"] == "Dentist check-up" and "Smile Dental Clinic" in body["data"][0]["text"]
    assert body["tether"]["tier"] == "device" and body["tether"]["rule"] == "search"
    assert r.headers["X-Tether-Tier"] == "device"
    bm25 = post(searching.url, "/v1/search", {"query": "sourdough", "mode": "bm25"}).json()["data"]
    assert [Path(h["path"]).name for h in bm25] == ["bread.md"]  # keywords only: one file has the word


def test_ask_answers_from_the_files_and_says_where_it_ran(searching):
    r = post(searching.url, "/v1/ask", {"question": "How much is my gym membership?", "k": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["answer"].strip() and Path(body["sources"][0]["path"]).name == "gym.md"
    assert "Iron Temple" in body["context"]  # the device saw the excerpt as it is
    assert body["tier"] == "device" and body["stayed_on_device"]
    assert body["tether"]["tier"] == "device" and body["tether"]["rule"] == "no_cloud"
    assert r.headers["X-Tether-Rule"] == "no_cloud"


@pytest.mark.parametrize("path,body,status,param", [
    ("/v1/search", {"query": ""}, 400, "query"),
    ("/v1/search", {"query": "   "}, 400, "query"),
    ("/v1/search", {"query": "x", "k": 0}, 400, "k"),
    ("/v1/search", {"query": "x", "mode": "fuzzy"}, 400, "mode"),
    ("/v1/search", {"query": "x", "extra": 1}, 400, "extra"),
    ("/v1/search", ["x"], 400, None),
    ("/v1/ask", {"question": ""}, 400, "question"),
    ("/v1/ask", {"question": "x", "k": 21}, 400, "k"),
    ("/v1/ask", {"question": "x", "model": "no-such-model"}, 404, "model"),
])
def test_bad_requests_are_clear_errors_and_the_server_stays_up(searching, path, body, status, param):
    r = post(searching.url, path, body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["message"] and error.get("param") == param
    assert httpx.post(searching.url + "/v1/search", content=b"{", headers={"Content-Type": "application/json"},
                      timeout=30).status_code == 400
    assert httpx.post(searching.url + "/v1/search", content=b"query", timeout=30).status_code == 415
    assert httpx.get(searching.url + "/healthz", timeout=30).json()["status"] == "ok"


def test_a_missing_index_is_a_404_until_it_is_built(tmp_path):
    db = tmp_path / "later" / "index.sqlite"
    with app_in_thread(search_index=db) as url:
        r = post(url, "/v1/search", {"query": "dentist"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "index_not_found", r.text
        assert "tether index add" in r.json()["error"]["message"] and not db.exists()  # nothing made
        build_index(db.parent)
        r = post(url, "/v1/search", {"query": "dentist"})
        assert r.status_code == 200 and Path(r.json()["data"][0]["path"]).name == "dentist.ics"

        for suffix in ("", "-wal", "-shm"):  # the user deletes the index and builds another in its place
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        r = post(url, "/v1/search", {"query": "dentist"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "index_not_found", r.text
        from tether.search import Index

        other = db.parent / "other"
        other.mkdir()
        (other / "boat.md").write_text("# Boat trip\n\nThe ferry to the island leaves at noon.\n")
        idx = Index.open(db)
        idx.add([other])
        idx.close()
        r = post(url, "/v1/search", {"query": "dentist"})
        assert [Path(h["path"]).name for h in r.json()["data"]] == ["boat.md"]  # the new index, not the old one


def test_personal_search_is_off_unless_the_gateway_was_given_an_index(tmp_path):
    from tether.cli.serve import search_index

    with app_in_thread() as url:
        for path, body in (("/v1/search", {"query": "dentist"}), ("/v1/ask", {"question": "When is my dentist?"})):
            r = post(url, path, body)
            assert r.status_code == 403 and r.json()["error"]["code"] == "search_disabled", r.text
    assert search_index("0.0.0.0", None) is None  # a network interface shares no files by default
    assert search_index("0.0.0.0", "/x/i.sqlite") == "/x/i.sqlite"
    assert search_index("127.0.0.1", None) and search_index("localhost", None)  # the user's own index


def test_the_openapi_document_describes_both(searching):
    doc = httpx.get(searching.url + "/openapi.json", timeout=30).json()
    assert doc["paths"]["/v1/search"]["post"]["tags"] == ["search"]
    assert "query" in doc["components"]["schemas"]["SearchBody"]["properties"]
    assert "question" in doc["components"]["schemas"]["AskBody"]["properties"]
