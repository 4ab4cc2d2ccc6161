"""The CLI's --json and the HTTP API give the same JSON for the same question on the same index:
one definition of each shape (search.schemas), one query path."""

from __future__ import annotations

import json
import shutil

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from cli.main import main
from tests.support.corpus import write_corpus

QUERY = "a red circle"
TERMS = "2:a circle + #3 - a square path:photos"  # weighted, an image, a negative term, a filter
FILTERS = "after:2000 path:photos"  # filters alone: a listing, newest first


@pytest.fixture(scope="module")
def client(served_index):
    with TestClient(create_app(served_index["settings"])) as client:
        yield client


@pytest.fixture(scope="module")
def cli(served_index):
    settings = served_index["settings"]

    def run(capsys, *argv: str, index=None) -> dict:
        code = main([*argv, "--index", str(index or settings.index), "--json"])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        return json.loads(captured.out)

    return run


def _api(response) -> dict:
    assert response.status_code in (200, 202), response.text
    return response.json()


@pytest.mark.parametrize(("argv", "params"), [
    ([QUERY, "-k", "5"], {"q": QUERY, "k": 5}),
    ([QUERY, "-k", "3", "--offset", "2"], {"q": QUERY, "k": 3, "offset": 2}),
    ([QUERY, "-k", "3", "--rerank", "--rerank-top", "6"],
     {"q": QUERY, "k": 3, "rerank": True, "rerank_top": 6}),
    ([QUERY, "-k", "10", "--min-match", "0.2"], {"q": QUERY, "k": 10, "min_match": 0.2}),
    (["circle", "-k", "4", "--hybrid"], {"q": "circle", "k": 4, "hybrid": True}),
    ([QUERY, "--after", "2000-01-01T00:00:00"], {"q": QUERY, "after": "2000-01-01T00:00:00"}),
    (["a circle - a red circle", "-k", "5"], {"q": "a circle - a red circle", "k": 5}),
    ([TERMS, "-k", "4"], {"q": TERMS, "k": 4}),
    ([QUERY, "--sort", "newest", "--min-match", "0", "--candidates", "8"],
     {"q": QUERY, "sort": "newest", "min_match": 0, "candidates": 8}),
    ([QUERY, "--sort", "oldest", "-k", "3", "--min-match", "0.01"],  # the tiny model's head is untrained
     {"q": QUERY, "sort": "oldest", "k": 3, "min_match": 0.01}),
    ([FILTERS, "-k", "6", "--offset", "1"], {"q": FILTERS, "k": 6, "offset": 1}),
    (['text:"open" circle'], {"q": 'text:"open" circle'}),
    ([QUERY, "-k", "2", "--where", "what color is it?=red", "--where", "is it big?=no", "--candidates", "6"],
     {"q": QUERY, "k": 2, "where": ["what color is it?=red", "is it big?=no"], "candidates": 6}),
])
def test_search(client, cli, capsys, argv, params):
    got = cli(capsys, "search", *argv)
    assert got == _api(client.get("/api/search", params=params))
    if "text:" in params["q"]:
        assert got["results"] == []  # no image says "open"
    elif params.get("where"):
        assert got["where"]["asked"] == 6  # the whole candidate budget: the tiny model's answers are noise
    else:
        assert got["results"]
    assert got["notes"] == []  # every image's text was read


def test_search_by_path_prefix(client, cli, capsys, served_index):
    prefix = str(served_index["root"] / "photos")  # a folder
    got = cli(capsys, "search", QUERY, "-k", "20", "--path-prefix", prefix)
    assert got == _api(client.get("/api/search", params={"q": QUERY, "k": 20, "path_prefix": prefix}))
    assert got["results"] and all(hit["path"].startswith(prefix + "/") for hit in got["results"])


def test_similar(client, cli, capsys):
    assert cli(capsys, "similar", "--id", "2", "-k", "3") == _api(client.get("/api/images/2/similar",
                                                                             params={"k": 3}))


def test_ask(client, cli, capsys):
    question = "what color is the circle?"
    assert cli(capsys, "ask", "3", question) == _api(client.post("/api/images/3/ask",
                                                                 json={"question": question}))


def test_image_metadata(client, cli, capsys):
    assert cli(capsys, "image", "4") == _api(client.get("/api/images/4"))


def test_stats(client, cli, capsys):
    here, there = cli(capsys, "stats"), _api(client.get("/api/stats"))
    assert set(there) - set(here) == {"jobs_running", "model_parts"}  # what only a server has
    assert here == {key: there[key] for key in here}
    assert here["vector_index"] == "exact" and here["index_type"] == "auto"


def test_index_summaries(client, cli, capsys, served_index, tmp_path):
    """The same new folder indexed into two copies of the index, by the CLI and by an API job."""
    new = tmp_path / "new"
    write_corpus(new, 4, seed=31)
    (new / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    by_cli = tmp_path / "by-cli"
    shutil.copytree(served_index["settings"].index, by_cli)
    here = cli(capsys, "index", str(new), "--workers", "0", index=by_cli)
    by_api = tmp_path / "by-api"
    shutil.copytree(served_index["settings"].index, by_api)
    settings = served_index["settings"].model_copy(update={"index": by_api})
    with TestClient(create_app(settings)) as other:
        job = _api(other.post("/api/index", json={"paths": [str(new)]}))
        while job["status"] in ("queued", "running"):
            job = _api(other.get(f"/api/jobs/{job['id']}"))
    assert job["status"] == "done", job
    assert here == job["summary"]
    assert (here["added"], here["failed"], here["errors"][0]["path"]) == (4, 1, str(new / "broken.jpg"))


@pytest.mark.parametrize("sort", ["newest", "oldest", "path"])
def test_browse(client, cli, capsys, sort):
    got = cli(capsys, "browse", "--sort", sort, "--offset", "2", "--limit", "5")
    assert got == _api(client.get("/api/images", params={"sort": sort, "offset": 2, "limit": 5}))
    assert got["total"] == 10 and len(got["images"]) == 5


def test_explain(client, cli, capsys):
    got = cli(capsys, "explain", "3", "a red circle")
    assert got == _api(client.get("/api/images/3/explain", params={"q": "a red circle"}))
    assert got["id"] == 3 and len(got["grid"]) == len(got["grid"][0]) > 1
