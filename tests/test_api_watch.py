"""`serve --watch` and the index endpoints it adds, through TestClient on the real app: a
polling watcher whose passes are the server's index jobs; a sub-path rescan; the status."""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from functools import partial

from fastapi.testclient import TestClient

from api import state
from api.app import create_app
from api.watching import WatchSetup
from indexer.guard import MARKER
from indexer.watching import WatchOptions
from tests.support.browsing import open_page, serve
from tests.support.corpus import write_corpus


def _until(condition, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, what
        time.sleep(0.1)
    return found


def _app(own_index):
    photos = own_index["root"] / "photos"
    options = WatchOptions(poll=True, interval=0.3, retry=0.3, settle=0.5, debounce_ms=200)
    setup = WatchSetup(roots=(photos,), options=options, ocr=False)
    return create_app(own_index["settings"], start=partial(state.start, watch=setup))


def _job(client, job_id: str) -> dict:
    return _until(lambda: (job := client.get(f"/api/jobs/{job_id}").json())["status"] in ("done", "failed")
                  and job, "the job ends")


def test_serve_watch_indexes_changes_rescans_a_sub_path_and_shows_paused_roots(own_index, tmp_path):
    photos = own_index["root"] / "photos"
    extra = write_corpus(tmp_path / "elsewhere", 2, seed=21)
    with TestClient(_app(own_index)) as client:
        status = client.get("/api/index/status").json()
        assert status["watching"] == [{"root": str(photos), "mode": "polling",
                                       "why": "polling was asked for"}]
        assert status["paused"] == []
        (photos / "sub").mkdir()
        shutil.copy(extra[0], photos / "sub" / "new.png")
        _until(lambda: client.get("/api/stats").json()["images"] == 11, "a copied image is indexed")

        started = client.post("/api/index/scan", params={"path": str(photos / "sub")})
        assert started.status_code == 202, started.text
        assert started.json()["paths"] == [str(photos / "sub")]
        job = _job(client, started.json()["id"])
        assert job["status"] == "done" and job["summary"]["unchanged"] == 1, job

        for path, why in ((tmp_path / "elsewhere", "not inside an indexed root"),
                          (photos / "nothing-here", "not a folder")):
            refused = client.post("/api/index/scan", params={"path": str(path)})
            assert refused.status_code == 422 and why in refused.json()["detail"]

        (photos / MARKER).unlink()  # looks unmounted: paused, nothing removed
        gone = next(photos.glob("*.png"))
        gone.unlink()
        paused = _until(lambda: client.get("/api/index/status").json()["paused"], "the root pauses")
        assert paused[0]["root"] == str(photos) and "marker" in paused[0]["reason"]
        assert client.get("/api/stats").json()["images"] == 11


def test_the_page_shows_the_watched_and_the_paused_roots(own_index, browser):
    photos = own_index["root"] / "photos"
    (photos / MARKER).unlink()  # looks unmounted from the start
    next(photos.glob("*.png")).unlink()
    server = serve(own_index["settings"], "--watch", str(photos), "--poll", "--interval", "0.5")
    url = next(server)
    try:
        _until(lambda: json.load(urllib.request.urlopen(f"{url}/api/index/status"))["paused"],
               "the root pauses")
        page = open_page(browser, url)
        page.wait_for_selector("#indexing .indexing-paused")
        text = page.inner_text("#indexing")
        assert f"Paused {photos}: the marker" in text and "is the disk mounted?" in text
        assert f"watching {photos} (polled)" in text
        page.close()
    finally:
        next(server, None)  # the server stops
