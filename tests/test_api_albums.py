"""Smart albums over HTTP on the shipped demo model: created, shown with what is new, kept
current by an index job, edited by hand, exported and deleted; bad input is a 4xx saying why."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from demo.shapes import write_collection
from tests.support.demo_library import demo_library

QUERY = "a red circle"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("albums")
    settings = demo_library(root, 30)
    with TestClient(create_app(settings)) as client:
        yield root, client


def _wait(client, job: dict) -> dict:
    for _ in range(600):
        job = client.get(f"/api/jobs/{job['id']}").json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"the job did not end: {job}")


def test_an_album_follows_an_index_job_and_marks_what_is_new(served):
    root, client = served
    created = client.post("/api/albums", json={"name": "reds", "query": QUERY, "min_match": 0.5})
    assert created.status_code == 201, created.text
    album = created.json()
    assert {"name", "query", "min_match", "sort", "count", "results"} <= set(album)
    everything = {"q": QUERY, "k": 100, "rerank_top": 100, "min_match": 0.5}
    before = {hit["id"] for hit in client.get("/api/search", params=everything).json()["results"]}
    shown = client.get("/api/albums/reds", params={"limit": 200}).json()
    assert {hit["id"] for hit in shown["results"]} == before and shown["count"] == len(before) > 0

    write_collection(root / "photos" / "new", seed=6, count=30)
    job = client.post("/api/index", json={"paths": [str(root / "photos")], "ocr": False}).json()
    assert _wait(client, job)["status"] == "done"
    listed = client.get("/api/albums").json()["albums"]
    after = {hit["id"] for hit in client.get("/api/search", params=everything).json()["results"]}
    assert [(a["name"], a["new"]) for a in listed] == [("reds", len(after - before))]
    shown = client.get("/api/albums/reds", params={"limit": 200}).json()
    assert {hit["id"] for hit in shown["results"]} == after and set(shown["new_ids"]) == after - before
    assert client.get("/api/albums/reds").json()["new"] == 0  # shown: nothing is new any more

    within = client.get("/api/search", params={"q": "album:reds", "k": 100}).json()["results"]
    assert {hit["id"] for hit in within} == after
    outsider = next(hit["id"] for hit in client.get("/api/images", params={"limit": 100}).json()["images"]
                    if hit["id"] not in after)
    edited = client.patch("/api/albums/reds", json={"pin": [outsider], "exclude": [min(after)]}).json()
    assert edited["pinned"] == [outsider] and edited["excluded"] == [min(after)]
    exported = client.get("/api/albums/reds/export")
    assert exported.status_code == 200 and "attachment" in exported.headers["content-disposition"]
    assert len(exported.json()) == len(after) and all(path.startswith(str(root)) for path in exported.json())
    assert client.delete("/api/albums/reds").status_code == 204
    assert client.get("/api/albums").json()["albums"] == []


@pytest.mark.parametrize("method, url, body, status, says", [
    ("post", "/api/albums", {"name": "x", "query": "path:old", "min_match": 0.5}, 422, "text term"),
    ("post", "/api/albums", {"name": "x/y", "query": QUERY}, 422, "name"),
    ("post", "/api/albums", {"name": "x", "query": "a cat after:never"}, 422, "after: takes a date"),
    ("post", "/api/albums", {"name": "x", "query": QUERY, "min_match": 2}, 422, "less than or equal"),
    ("post", "/api/albums", {"name": "x", "query": QUERY, "sort": "random"}, 422, "relevance"),
    ("get", "/api/albums/nothing", None, 404, "no album named 'nothing'"),
    ("patch", "/api/albums/nothing", {"pin": [1]}, 404, "no album named"),
    ("delete", "/api/albums/nothing", None, 404, "no album named"),
    ("get", "/api/albums/nothing/export", None, 404, "no album named"),
    ("get", "/api/search?q=album:nothing", None, 404, "no album named"),
])
def test_bad_album_requests_say_why(served, method, url, body, status, says):
    _, client = served
    response = getattr(client, method)(url, **({"json": body} if body is not None else {}))
    assert response.status_code == status, response.text
    assert says in str(response.json()["detail"])


def test_a_name_is_taken_once_and_an_unknown_image_cannot_be_pinned(served):
    _, client = served
    assert client.post("/api/albums", json={"name": "old", "query": "path:old"}).status_code == 201
    again = client.post("/api/albums", json={"name": "old", "query": QUERY})
    assert again.status_code == 422 and "exists" in again.json()["detail"]
    pinned = client.patch("/api/albums/old", json={"pin": [999999]})
    assert pinned.status_code == 404 and "999999" in pinned.json()["detail"]
    assert client.delete("/api/albums/old").status_code == 204
