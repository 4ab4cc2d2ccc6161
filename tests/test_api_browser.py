"""The web page in Debian's Chromium, driven by Playwright, against the real server."""

from __future__ import annotations

import re
import urllib.request

import pytest

from tests.support.browsing import open_page, serve


@pytest.fixture(scope="module")
def server(served_index):
    yield from serve(served_index["settings"])


@pytest.fixture
def page(browser, server):
    """A page of each test's own: what one test leaves (a query, a view, a slider) is not
    where the next starts."""
    opened = open_page(browser, server)
    opened.wait_for_function("document.querySelector('#message').textContent.includes('images indexed')")
    yield opened
    opened.close()


@pytest.mark.smoke  # the web page end to end
def test_search_open_similar_ask_and_upload(page, served_index):
    page.fill("#query", "a red circle")
    page.keyboard.press("Enter")
    page.wait_for_selector("#results .hit")
    assert page.locator("#results .hit").count() == 10
    assert "score" in page.locator("#results .hit .score").first.inner_text()

    page.locator("#results .hit").first.focus()
    page.keyboard.press("Enter")  # keyboard-usable: a hit is a button
    page.wait_for_selector("#detail[open]")
    page.wait_for_selector("#similar .hit")
    assert page.locator("#similar .hit").count() == 8
    page.fill("#question", "what color is the circle?")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "document.querySelector('#chat-log .a') && document.querySelector('#chat-log .a').textContent !== '…'"
    )
    answer = page.locator("#chat-log .a").first.inner_text()
    assert answer and not answer.startswith("Could not")
    page.keyboard.press("Escape")
    page.wait_for_selector("#detail", state="hidden")

    upload = sorted((served_index["root"] / "photos").glob("*.png"))[0]
    page.set_input_files("#file", str(upload))
    page.wait_for_function("document.querySelector('#message').textContent.includes('similar to')")
    assert page.locator("#results .hit").count() == 10


def test_errors_are_shown(page):
    page.fill("#query", "x" * 2000)  # longer than the API accepts
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#message.error') && "
                           "document.querySelector('#message').textContent.includes('422')")
    assert page.locator("#message.error").inner_text().startswith("Search failed: 422")


def test_rerank_shows_first_stage_results_then_fills_in_matches(page):
    """With rerank on, the cards come at once with their match pending; the match head's
    scores arrive a few at a time (here the first request is held back until the cards have
    been seen), and the cards end in match order."""
    held, passed = [], []

    def hold_first(route):
        if not held:
            held.append(route)  # answered below, once the page has been looked at
            return
        passed.append(route.request.url)
        route.continue_()

    page.route("**/api/search/match*", hold_first)
    try:
        page.check("#rerank")
        page.fill("#query", "a blue square")
        page.keyboard.press("Enter")
        page.wait_for_selector("#results .hit .match.pending")
        page.wait_for_function("document.querySelector('#message').textContent.includes('results for')")
        assert page.locator("#results .hit").count() == 10
        assert page.locator("#results .hit .match.pending").count() == 10  # none scored yet
        assert page.locator("#results .hit .score").first.inner_text().startswith("score")
        assert len(held) == 1 and "ids=" in held[0].request.url
        held[0].continue_()
        page.wait_for_function("document.querySelector('#message').textContent.includes('in match order')")
    finally:
        page.unroute("**/api/search/match*")
        page.uncheck("#rerank")
    assert page.locator("#results .hit .match.pending").count() == 0
    texts = page.locator("#results .hit .match").all_inner_texts()
    assert all(re.fullmatch(r"match (<1|\d{1,3})%", text) for text in texts), texts
    matches = [float(v) for v in page.locator("#results .hit").evaluate_all(
        "cards => cards.map(card => card.dataset.match)")]
    assert matches == sorted(matches, reverse=True)
    assert len(passed) == 2  # after the held one: 10 hits, 4 a request


SHOWN_IDS = "cards => cards.map(c => c.dataset.id)"


def test_rerank_scores_of_a_query_with_a_minus_term_are_the_apis(page, server):
    """The match the page fills in is the query language's (the + term's probability times
    one minus the - term's), as the API's rerank gives it, not the raw text's."""
    import json

    page.fill("#query", "a circle - a red circle")
    page.check("#rerank")
    try:
        page.keyboard.press("Enter")
        page.wait_for_function("document.querySelector('#message').textContent.includes('in match order')")
    finally:
        page.uncheck("#rerank")
    shown = page.locator("#results .hit").evaluate_all(
        "cards => cards.map(c => [Number(c.dataset.id), Number(c.dataset.match)])")
    body = json.loads(urllib.request.urlopen(
        f"{server}/api/search?q=a+circle+-+a+red+circle&k=24&rerank=true&rerank_top=24", timeout=300).read())
    wanted = {hit["id"]: hit["match"] for hit in body["results"]}
    assert len(shown) == len(wanted) and {i for i, _ in shown} == set(wanted)
    assert all(abs(match - wanted[i]) < 1e-6 for i, match in shown), (shown, wanted)
    assert [match for _, match in shown] == sorted((match for _, match in shown), reverse=True)


def test_date_order_slider_negative_terms_and_all_images(page, server, tmp_path):
    """Sort by date, move the min-match slider, type a negative term, page through all images."""
    import json

    def api(query: str) -> dict:
        return json.loads(urllib.request.urlopen(f"{server}/api/search?{query}", timeout=60).read())

    page.fill("#query", "a red circle")
    page.select_option("#sort", "newest")
    assert page.locator("#min-match").is_enabled()
    page.wait_for_function("document.querySelector('#message').textContent.includes('newest first')")
    page.locator("#min-match").evaluate(
        "slider => { slider.value = 0; slider.dispatchEvent(new Event('input'));"
        " slider.dispatchEvent(new Event('change')); }")
    assert page.locator("#min-match-value").inner_text() == "0%"
    page.wait_for_function("document.querySelector('#message').textContent.includes('match at least 0%')")
    page.wait_for_function("document.querySelectorAll('#results .hit').length === 10")
    shown = [int(i) for i in page.locator("#results .hit").evaluate_all(SHOWN_IDS)]
    want = api("q=a+red+circle&k=24&sort=newest&min_match=0")["results"]
    assert shown == [hit["id"] for hit in want]
    dates = [text.split("·")[-1].strip() for text in page.locator("#results .hit .score").all_inner_texts()]
    assert dates == sorted(dates, reverse=True) and all(re.fullmatch(r"\d{4}-\d\d-\d\d", d) for d in dates)
    page.screenshot(path=str(tmp_path / "date-order.png"))

    page.select_option("#sort", "relevance")
    assert not page.locator("#min-match").is_enabled()
    page.fill("#query", "a circle - a red circle")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "document.querySelector('#message').textContent.includes('results for “a circle - a red circle”')")
    shown = [int(i) for i in page.locator("#results .hit").evaluate_all(SHOWN_IDS)]
    assert shown == [hit["id"] for hit in api("q=a+circle+-+a+red+circle&k=24")["results"]]

    page.locator("#results .hit").first.click()  # the detail view overlays why it matched
    page.wait_for_selector("#overlay[data-peak]", state="attached")
    assert "query vector" in page.locator("#why").inner_text()
    assert "a circle" in page.locator("#why").inner_text()
    painted = page.locator("#overlay").evaluate(
        "c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return [c.width, n]; }")
    assert painted[0] > 1 and painted[1] > 0  # a grid of cells, some of them red
    page.screenshot(path=str(tmp_path / "why.png"))
    page.keyboard.press("Escape")

    page.fill("#query", "circle colour:red")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#message').classList.contains('error')")
    assert "unknown field 'colour:'" in page.locator("#message").inner_text()

    page.click("#browse")
    page.wait_for_function("document.querySelector('#page-info').textContent === '1–10 of 10'")
    assert page.locator("#results .hit").count() == 10 and page.locator("#next").is_disabled()
    page.screenshot(path=str(tmp_path / "all-images.png"))


@pytest.fixture(scope="module")
def written_page(browser, tmp_path_factory, tiny_dirs):
    """A page over an index of rendered words (tiny model, OCR on, as `index` runs it)."""
    from cli.main import main
    from search.config import load_settings
    from tests.support.words import render

    root = tmp_path_factory.mktemp("written-page")
    drawn = render(root / "photos", 6, seed=77)
    model = str(tiny_dirs["opt"])
    assert main(["index", str(root / "photos"), "--index", str(root / "index"), "--model", model,
                 "--workers", "0"]) == 0
    settings = load_settings(index=root / "index", model=model, workers=0, device="cpu")
    for url in serve(settings):
        opened = open_page(browser, url)
        yield opened, drawn
        opened.close()


def test_a_word_written_in_an_image_finds_it_and_is_highlighted(written_page, tmp_path):
    page, drawn = written_page
    target = drawn[2]
    word = max(target.words, key=len)
    page.fill("#query", f'text:"{word.lower()}"')
    page.keyboard.press("Enter")
    page.wait_for_selector("#results .hit")
    first = page.locator("#results .hit").first
    assert first.locator("img").get_attribute("alt")  # a card, with its picture
    first.click()
    page.wait_for_selector("#detail[open]")
    assert page.locator("#detail-path").inner_text() == str(target.path)
    assert page.locator("#detail-text").is_visible()
    assert page.locator("#detail-text").inner_text().startswith("Text in the image:")
    marked = page.locator("#detail-text mark").all_inner_texts()
    assert [text.lower() for text in marked] == [word.lower()]
    page.screenshot(path=str(tmp_path / "text.png"))
    page.keyboard.press("Escape")


def test_marks_after_characters_past_u_ffff_land_on_their_words(written_page):
    """Python counts the marks in characters, JavaScript strings in UTF-16 units (two for a
    rare CJK character or an emoji): the page marks the matched words, not letters beside them."""
    from search.media.textmatch import marks

    page, _ = written_page
    written = "\U00020bb7\U00020bb7\U0001f600 OPEN DAILY \U00020bb7 open"
    spans = marks(written, ["open"])
    assert [written[start:end] for start, end in spans] == ["OPEN", "open"]
    page.evaluate("hit => showText(hit)", {"text": written, "text_marks": [list(span) for span in spans]})
    assert page.locator("#detail-text mark").all_inner_texts() == ["OPEN", "open"]


@pytest.fixture(scope="module")
def video_server(tmp_path_factory):
    from tests.support.video_library import video_library

    library = video_library(tmp_path_factory.mktemp("page-videos"))
    for url in serve(library["settings"]):
        yield url, library


def test_a_video_hit_plays_from_its_moment(browser, video_server):
    url, library = video_server
    page = open_page(browser, url)
    try:
        page.wait_for_function("document.querySelector('#message').textContent.includes('videos indexed')")
        clip = next(clip for clip in library["clips"] if clip.container == ".webm")
        shot = clip.shots[-1]
        page.fill("#query", shot.caption)
        page.keyboard.press("Enter")
        page.wait_for_selector("#results .hit.video")
        card = page.locator("#results .hit").first
        assert "video" in card.get_attribute("class")
        assert re.fullmatch(r"▶ \d+:\d\d", card.locator(".duration").inner_text())
        card.click()
        page.wait_for_selector("#detail-video:not([hidden])")
        page.wait_for_function("document.querySelector('#detail-video').readyState >= 1")
        shown = page.evaluate("document.querySelector('#detail-video').currentTime")
        assert shot.start - 0.6 <= shown < shot.end  # the player starts at the moment found
        assert page.locator("#detail-image").is_hidden()
        buttons = page.locator("#moments .moment")
        assert buttons.count() >= 1
        first = float(buttons.first.get_attribute("data-time"))
        buttons.first.click()
        page.wait_for_function(
            f"Math.abs(document.querySelector('#detail-video').currentTime - {first}) < 0.05")
        page.wait_for_function("document.querySelector('#similar .hit')")
    finally:
        page.close()
