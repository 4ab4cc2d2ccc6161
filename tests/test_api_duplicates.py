"""Duplicates through the front ends: `GET /api/duplicates` and `blip2-search duplicates` give
the same JSON, refuse a bad threshold in one line, change no file; the web page's review view
in Debian's Chromium (Playwright) against the real server."""

from __future__ import annotations

import hashlib
import json
import urllib.request

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from cli.main import main
from tests.support.browsing import open_page, serve

pytestmark = pytest.mark.slow  # a set of duplicates indexed with the demo model


@pytest.fixture(scope="module")
def client(duplicate_index):
    with TestClient(create_app(duplicate_index["settings"])) as client:
        yield client


def _cli(capsys, duplicate_index, *argv: str) -> tuple[int, str, str]:
    code = main(["duplicates", *argv, "--index", str(duplicate_index["settings"].index)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _files(duplicate_index) -> dict[str, tuple]:
    folder = duplicate_index["root"] / "photos"
    return {str(path): (path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
            for path in sorted(folder.iterdir())}


@pytest.mark.parametrize("threshold", [None, "0.7"])
def test_cli_and_api_give_the_same_groups_and_touch_no_file(client, capsys, duplicate_index, threshold):
    before = _files(duplicate_index)
    flags = ["--threshold", threshold] if threshold else []
    code, out, err = _cli(capsys, duplicate_index, *flags, "--json")
    assert code == 0, err
    response = client.get("/api/duplicates", params={"threshold": threshold} if threshold else {})
    assert response.status_code == 200, response.text
    assert json.loads(out) == response.json()
    groups = response.json()["groups"]
    assert groups and all(group["images"][0]["id"] == group["keep"]["id"] for group in groups)
    assert _files(duplicate_index) == before  # nothing deleted, moved or rewritten


def test_cli_lists_groups_as_text(capsys, duplicate_index):
    code, out, _ = _cli(capsys, duplicate_index)
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("keep [") and "images besides the kept ones" in lines[-1]
    assert "  (kept: the " in lines[0] and lines[0].endswith(")")
    near = [line for line in lines[1:] if line.lstrip().startswith("near")]
    assert near and all("pixels" in line and "meaning" in line for line in near)


@pytest.mark.parametrize("bad", ["2", "-1", "x", "0", "nan"])
def test_a_bad_threshold_is_a_422_and_exit_1(client, capsys, duplicate_index, bad):
    response = client.get("/api/duplicates", params={"threshold": bad})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "threshold"]
    code, out, err = _cli(capsys, duplicate_index, "--threshold", bad)
    assert (code, out) == (1, "")
    assert err.count("\n") == 1 and "threshold must be a number above 0 and at most 1" in err


@pytest.fixture(scope="module")
def page(browser, duplicate_index):
    for url in serve(duplicate_index["settings"]):
        opened = open_page(browser, url)
        yield opened, url
        opened.close()


def test_the_review_view_shows_groups_with_the_kept_image_marked(page, tmp_path):
    page, url = page
    want = json.loads(urllib.request.urlopen(f"{url}/api/duplicates", timeout=60).read())["groups"]
    page.wait_for_function("document.querySelector('#message').textContent.includes('images indexed')")
    page.click("#duplicates")
    page.wait_for_function("document.querySelector('#message').textContent.includes('groups of duplicates')")
    assert page.locator("#groups .group").count() == len(want)
    assert page.locator("#results").is_hidden()
    first = page.locator("#groups .group").first
    assert first.locator(".hit").count() == len(want[0]["images"])
    assert first.locator(".hit").first.get_attribute("class") == "hit kept"
    assert first.locator(".hit.kept .score").inner_text() == "keep"
    assert page.locator("#groups .hit.kept").count() == len(want)  # one kept image a group
    kept = page.locator("#groups .hit.kept").evaluate_all("cards => cards.map(c => Number(c.dataset.id))")
    assert kept == [group["keep"]["id"] for group in want]
    member = first.locator(".hit").nth(1)
    assert "similarity" in member.locator(".score").inner_text()
    assert first.locator(".hit.kept .because").inner_text() == want[0]["images"][0]["why"]
    assert member.locator(".because").inner_text() == want[0]["images"][1]["why"]  # how it differs
    page.screenshot(path=str(tmp_path / "duplicates.png"), full_page=False)

    member.click()  # a thumbnail opens the image's detail view
    page.wait_for_selector("#detail[open]")
    assert page.locator("#detail-path").inner_text() == want[0]["images"][1]["path"]
    page.keyboard.press("Escape")

    strict = json.loads(urllib.request.urlopen(f"{url}/api/duplicates?threshold=0.9", timeout=60).read())
    strict = strict["groups"]
    assert 0 < len(strict) < len(want)  # the page has to change for the wait below to see it
    page.fill("#threshold", "0.9")
    page.locator("#threshold-form button").click()
    page.wait_for_function(f"document.querySelectorAll('#groups .group').length === {len(strict)}")
