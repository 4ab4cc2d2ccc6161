"""Smart albums on the web page, in Debian's Chromium against the real server and the demo
model: a search saved as an album, new images marked after an index job, an image pinned
from the detail view, the JSON export, and the album deleted."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from demo.shapes import write_collection
from tests.support.browsing import open_page, serve
from tests.support.demo_library import demo_library

QUERY = "a red circle"


@pytest.fixture(scope="module")
def album_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("page-albums")
    settings = demo_library(root, 24)
    for url in serve(settings):
        yield url, root


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def _index(url: str, folder) -> None:
    job = _post(f"{url}/api/index", {"paths": [str(folder)], "ocr": False})
    for _ in range(600):
        with urllib.request.urlopen(f"{url}/api/jobs/{job['id']}", timeout=10) as response:
            job = json.load(response)
        if job["status"] in ("done", "failed"):
            assert job["status"] == "done", job
            return
        time.sleep(0.1)
    raise AssertionError(f"the index job did not end: {job}")


def test_a_search_saved_as_an_album_shows_what_is_new(browser, album_server):
    url, root = album_server
    page = open_page(browser, url)
    try:
        page.wait_for_function("document.querySelector('#message').textContent.includes('images indexed')")
        page.fill("#query", QUERY)
        page.keyboard.press("Enter")
        page.wait_for_selector("#results .hit")
        page.once("dialog", lambda dialog: dialog.accept("red circles"))
        page.click("#save-album")
        page.wait_for_function("/saved|Could not/.test(document.querySelector('#message').textContent)")
        assert "saved" in page.locator("#message").inner_text(), page.locator("#message").inner_text()
        saved = int(page.locator("#message").inner_text().split(": ")[1].split(" ")[0])
        assert saved > 0

        write_collection(root / "photos" / "new", seed=6, count=24)
        _index(url, root / "photos")
        page.click("#albums")
        page.wait_for_selector(".album[data-name='red circles']")
        row = page.locator(".album[data-name='red circles']")
        new = int(row.locator(".new-badge").inner_text().split(" ")[0])
        assert new > 0 and f"{saved + new} items" == row.locator(".count").inner_text()
        row.click()
        page.wait_for_selector("#album-bar:not([hidden])")
        assert page.locator("#results .hit").count() == saved + new
        assert page.locator("#results .hit.new").count() == new  # marked: new since the last visit
        assert page.get_attribute("#album-export", "href") == "/api/albums/red%20circles/export"

        page.click("#browse")
        page.wait_for_selector("#pager:not([hidden])")
        outsider = page.locator("#results .hit").last
        pinned = int(outsider.get_attribute("data-id"))
        outsider.click()
        page.wait_for_selector("#album-place:not([hidden])")
        page.select_option("#album-choice", "red circles")
        page.click("#album-pin")
        page.wait_for_function("document.querySelector('#album-placed').textContent.includes('Pinned')")
        page.keyboard.press("Escape")
        page.click("#albums")
        page.locator(".album[data-name='red circles']").click()
        page.wait_for_selector("#album-bar:not([hidden])")
        assert page.locator("#results .hit").first.get_attribute("data-id") == str(pinned)  # pinned first
        assert page.locator("#results .hit.new").count() == 0  # seen on the last visit

        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#album-delete")
        page.wait_for_function("document.querySelector('#message').textContent.includes('No albums yet')")
    finally:
        page.close()
