"""Every endpoint through TestClient, on the real engine (tiny checkpoint), SQLite and FAISS."""

from __future__ import annotations

import io
import json
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from api.app import create_app
from tests.support.browsing import serve
from tests.support.hostile import bomb_png

HIT_KEYS = {"id", "path", "score", "caption", "match", "taken_at", "text", "text_marks", "media", "moment",
            "time_s", "duration_s", "moments"}


@pytest.fixture(scope="module")
def client(served_index):
    with TestClient(create_app(served_index["settings"])) as client:
        yield client


def _png(colour=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 40), colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.smoke  # the HTTP API end to end: `blip2-search serve`, uvicorn, a socket
def test_the_real_server_answers_over_http(served_index):
    with contextmanager(serve)(served_index["settings"]) as url:
        def get(path: str):
            with urllib.request.urlopen(url + path, timeout=60) as response:
                return response.status, json.loads(response.read())

        status, found = get("/api/search?q=a+red+circle&k=3")
        assert status == 200 and len(found["results"]) == 3
        assert [hit["id"] for hit in found["results"]] == [hit["id"] for hit in _in_process(served_index)]
        assert get("/api/stats")[1]["images"] == 10
        with pytest.raises(urllib.error.HTTPError) as refused:
            get("/api/search?q=%22unclosed&k=3")
        assert refused.value.code == 422 and "never closed" in json.loads(refused.value.read())["detail"]


def _in_process(served_index) -> list:
    with TestClient(create_app(served_index["settings"])) as client:
        return client.get("/api/search", params={"q": "a red circle", "k": 3}).json()["results"]


def test_search(client):
    body = client.get("/api/search", params={"q": "a red circle", "k": 4}).json()
    assert body["query"] == "a red circle" and len(body["results"]) == 4
    assert all(set(hit) == HIT_KEYS and hit["match"] is None for hit in body["results"])
    scores = [hit["score"] for hit in body["results"]]
    assert scores == sorted(scores, reverse=True)
    page = client.get("/api/search", params={"q": "a red circle", "k": 2, "offset": 2}).json()
    assert [h["id"] for h in page["results"]] == [h["id"] for h in body["results"][2:4]]


def test_search_options(client, served_index):
    reranked = client.get("/api/search", params={"q": "blue", "k": 3, "rerank": True}).json()["results"]
    assert len(reranked) == 3
    assert [hit["match"] for hit in reranked] == sorted((hit["match"] for hit in reranked), reverse=True)
    kept = client.get("/api/search", params={"q": "blue", "k": 10, "min_match": 0.0}).json()["results"]
    assert len(kept) == 10 and all(hit["match"] is not None for hit in kept)
    hybrid = client.get("/api/search", params={"q": "shape", "k": 10, "hybrid": True})
    assert hybrid.status_code == 200
    folder = str(served_index["root"] / "photos")
    filtered = client.get("/api/search", params={"q": "x", "k": 20, "path_prefix": folder}).json()["results"]
    assert len(filtered) == 10 and all(h["path"].startswith(folder + "/") for h in filtered)
    part = client.get("/api/search", params={"q": "x", "path_prefix": folder + "/img000"}).json()["results"]
    assert part == []  # a folder, not the start of a name
    none = client.get("/api/search", params={"q": "x", "after": "2999-01-01T00:00:00"}).json()
    assert none["results"] == []


def test_search_by_image(client):
    upload = {"file": ("red.png", _png(), "image/png")}
    response = client.post("/api/search/image", params={"k": 3}, files=upload)
    assert response.status_code == 200
    body = response.json()
    assert body["query"] == "red.png" and len(body["results"]) == 3


def test_image_metadata_similar_thumbnail_file(client):
    info = client.get("/api/images/2").json()
    assert set(info) == {"id", "path", "caption", "text", "width", "height", "taken_at", "indexed_at",
                         "status", "error", "media", "duration_s", "video", "time_s", "end_s"}
    assert info["status"] == "ok" and info["width"] == 32 and info["media"] == "image"
    similar = client.get("/api/images/2/similar", params={"k": 3}).json()
    assert len(similar["results"]) == 3 and 2 not in [h["id"] for h in similar["results"]]
    thumb = client.get("/api/images/2/thumbnail")
    assert thumb.headers["content-type"] == "image/webp"
    assert Image.open(io.BytesIO(thumb.content)).size == (32, 32)
    file = client.get("/api/images/2/file")
    assert file.status_code == 200 and file.content == open(info["path"], "rb").read()


def test_ask_with_history(client):
    body = {"question": "what color is the circle?", "history": [{"question": "is there a star?",
                                                                   "answer": "no"}]}
    answer = client.post("/api/images/3/ask", json=body).json()
    assert answer["id"] == 3 and answer["question"] == body["question"]


def test_index_job_and_stats(own_index):
    from tests.support.corpus import write_corpus

    write_corpus(own_index["root"] / "photos" / "more", 3, seed=12)
    with TestClient(create_app(own_index["settings"])) as client:
        before = client.get("/api/stats").json()
        started = client.post("/api/index", json={"paths": [str(own_index["root"] / "photos")]})
        assert started.status_code == 202
        job_id = started.json()["id"]
        deadline = time.monotonic() + 60
        while (job := client.get(f"/api/jobs/{job_id}").json())["status"] in ("queued", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert job["status"] == "done", job
        assert (job["summary"]["added"], job["summary"]["unchanged"]) == (3, 10)
        assert job["done"] == job["total"] == 3
        after = client.get("/api/stats").json()
        found = client.get("/api/search", params={"q": "x", "k": 50}).json()["results"]
    assert before["images"] == 10 and after["images"] == 13
    assert after["vectors"] == after["images"] * after["queries_per_image"]
    assert len(found) == after["images"]  # the new images are searchable


def test_health_metrics_docs_and_page(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    client.get("/api/search", params={"q": "metrics"})
    metrics = client.get("/metrics").text
    assert 'blip2_search_requests_total{method="GET",route="/api/search",status="200"}' in metrics
    for stage in ("text_encode", "vector_search", "rerank", "generation"):
        assert f'blip2_search_stage_seconds_count{{stage="{stage}"}}' in metrics
    assert "/api/search" in client.get("/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and "search-form" in page.text
    assert client.get("/static/app.js").status_code == 200


@pytest.mark.parametrize(
    ("method", "url", "kwargs", "status"),
    [("get", "/api/images/999", {}, 404),
     ("get", "/api/images/999/similar", {}, 404),
     ("get", "/api/images/999/thumbnail", {}, 404),
     ("get", "/api/images/999/file", {}, 404),
     ("post", "/api/images/999/ask", {"json": {"question": "what?"}}, 404),
     ("get", "/api/jobs/nope", {}, 404),
     ("get", "/api/images/abc", {}, 422),
     ("get", "/api/images/99999999999999999999", {}, 422),
     ("get", "/api/search", {}, 422),
     ("get", "/api/search", {"params": {"q": ""}}, 422),
     ("get", "/api/search", {"params": {"q": "   "}}, 422),
     ("get", "/api/search", {"params": {"q": "x", "k": 0}}, 422),
     ("get", "/api/search", {"params": {"q": "x", "after": "yesterday"}}, 422),
     ("post", "/api/images/2/ask", {"json": {"question": ""}}, 422),
     ("post", "/api/images/2/ask", {"content": b"{not json", "headers": {"content-type": "application/json"}},
      422),
     ("post", "/api/index", {"json": {"paths": ["/definitely/not/here"]}}, 422),
     ("post", "/api/index", {"json": {"paths": []}}, 422),
     ("post", "/api/search/image", {}, 422),
     ("post", "/api/search/image", {"files": {"file": ("x.png", b"not an image", "image/png")}}, 422),
     ("post", "/api/search/image", {"files": {"file": ("bomb.png", bomb_png(), "image/png")}}, 422)],
)
def test_error_paths(client, method, url, kwargs, status):
    response = getattr(client, method)(url, **kwargs)
    assert response.status_code == status, response.text
    assert "detail" in response.json()


def test_bomb_upload_says_why(client):
    response = client.post("/api/search/image", files={"file": ("bomb.png", bomb_png(), "image/png")})
    assert "decompression bomb" in response.json()["detail"]


def test_the_server_builds_a_part_when_a_request_first_needs_it(served_index):
    """It starts with the text side; a question builds the language model off the model
    thread, and a text search sent meanwhile is answered before the question is."""
    with TestClient(create_app(served_index["settings"])) as client:
        assert client.get("/api/stats").json()["model_parts"] == ["text"]
        assert client.get("/api/images/1/similar", params={"k": 3}).status_code == 200
        assert client.get("/api/stats").json()["model_parts"] == ["text"]
        source = client.app.state.blip2.engine.parts.source
        building, release = threading.Event(), threading.Event()
        build = source.language_model

        def held():
            building.set()
            assert release.wait(120)
            return build()

        source.language_model = held
        asked: dict = {}
        question = threading.Thread(target=lambda: asked.update(
            reply=client.post("/api/images/1/ask", json={"question": "what color is the circle?"})))
        question.start()
        assert building.wait(120)
        found = client.get("/api/search", params={"q": "a red circle", "k": 3})
        assert found.status_code == 200 and len(found.json()["results"]) == 3
        assert "reply" not in asked  # still waiting for its language model
        release.set()
        question.join(120)
        assert asked["reply"].status_code == 200 and asked["reply"].json()["answer"]
        built = client.get("/api/stats").json()["model_parts"]
        assert built == ["text", "encoder", "generation", "language_model"]
