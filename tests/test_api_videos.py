"""Videos through the HTTP API and the CLI: hits at their moment, the moment's thumbnail, the
file served in ranges (a player seeks), and `at` for similar, ask and explain."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.support.video_library import video_library


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    return video_library(tmp_path_factory.mktemp("videos"))


@pytest.fixture(scope="module")
def client(library):
    with TestClient(create_app(library["settings"])) as client:
        yield client


def _shot(library, number: int = 0, shot: int = 1):
    clip = library["clips"][number]
    return clip, clip.shots[shot], library["ids"][clip.path.name]


def test_a_search_returns_the_video_at_its_moment(client, library):
    clip, shot, video = _shot(library)
    body = client.get("/api/search", params={"q": shot.caption, "k": 10}).json()
    top = body["results"][0]
    assert top["id"] == video and top["media"] == "video"
    assert shot.start - 0.6 <= top["time_s"] < shot.end
    assert top["duration_s"] == pytest.approx(clip.shots[-1].end, abs=0.2)
    assert {"id", "time_s", "score"} <= set(top["moments"][0])
    assert len({hit["id"] for hit in body["results"]}) == len(body["results"])
    thumbnail = client.get(f"/api/images/{top['moment']}/thumbnail")
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/webp"
    images = client.get("/api/search", params={"q": f"{shot.caption} media:image"}).json()["results"]
    assert images and all(hit["media"] == "image" for hit in images)


def test_the_video_record_its_file_in_ranges_and_its_moments(client, library):
    clip, _, video = _shot(library)
    info = client.get(f"/api/images/{video}").json()
    assert info["media"] == "video" and info["duration_s"] == pytest.approx(clip.shots[-1].end, abs=0.2)
    whole = client.get(f"/api/images/{video}/file")
    assert whole.status_code == 200 and whole.content == clip.path.read_bytes()
    part = client.get(f"/api/images/{video}/file", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == clip.path.read_bytes()[100:200]
    moment = client.get("/api/search", params={"q": clip.shots[0].caption}).json()["results"][0]["moment"]
    record = client.get(f"/api/images/{moment}").json()
    assert record["video"] == video and record["time_s"] is not None and record["end_s"] > record["time_s"]
    refused = client.get(f"/api/images/{moment}/file")
    assert refused.status_code == 404 and f"/api/images/{video}/file" in refused.json()["detail"]
    stats = client.get("/api/stats").json()
    assert (stats["videos"], stats["images"]) == (3, 4) and stats["moments"] >= 9


def test_similar_ask_and_explain_at_a_time(client, library):
    clip, shot, video = _shot(library, 1, -1)
    at = (shot.start + shot.end) / 2
    similar = client.get(f"/api/images/{video}/similar", params={"k": 4, "at": at}).json()
    assert similar["results"] and video not in [hit["id"] for hit in similar["results"]]
    answer = client.post(f"/api/images/{video}/ask", json={"question": "what shape is it?", "at": at})
    assert answer.status_code == 200 and answer.json()["answer"]
    explained = client.get(f"/api/images/{video}/explain", params={"q": shot.caption, "at": at}).json()
    assert shot.start - 0.6 <= explained["time_s"] < shot.end and explained["grid"]
    past = client.post(f"/api/images/{video}/ask", json={"question": "what?", "at": 10_000})
    assert past.status_code == 422 and "outside it" in past.json()["detail"]
    image = client.get(f"/api/images/{library['image']}/similar", params={"at": 1.0})
    assert image.status_code == 422 and "not a video" in image.json()["detail"]
    assert client.get(f"/api/images/{video}/similar", params={"at": -1}).status_code == 422


def _cli(library, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli.main", *args, "--index", str(library["settings"].index),
                           "--model", "demo"], capture_output=True, text=True, timeout=300)


def test_the_cli_searches_moments_and_asks_at_a_time(library):
    clip, shot, video = _shot(library, 2, 0)
    found = _cli(library, "search", shot.caption, "-k", "3", "--json")
    assert found.returncode == 0, found.stderr
    top = json.loads(found.stdout)["results"][0]
    assert top["id"] == video and top["media"] == "video" and top["time_s"] is not None
    human = _cli(library, "search", shot.caption, "-k", "3")
    assert f"[{video}]" in human.stdout and " at 0:" in human.stdout
    asked = _cli(library, "ask", str(video), "what shape is it?", "--at", str(shot.start + 0.5), "--json")
    assert asked.returncode == 0 and json.loads(asked.stdout)["answer"]
    wrong = _cli(library, "ask", str(library["image"]), "what shape is it?", "--at", "1")
    assert wrong.returncode == 1 and "not a video" in wrong.stderr and "Traceback" not in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1
