"""The query language through the HTTP API on the demo model, on a held-out shapes set with
EXIF dates (a seed never used in training): date order over the match head's cutoff,
negative terms, filters, listings and malformed queries."""

from __future__ import annotations

import itertools
import json
import random
import re
from datetime import datetime, timedelta

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from api.app import create_app
from cli.main import main
from demo.shapes import COLORS, SHAPES, coverage, generate
from search.config import load_settings
from search.presets import DEMO_FOLDER

SEED = 20261202  # training draws seeds 0..47; the demo command uses 4242
COUNT = 240
FIRST_DAY = datetime(2021, 1, 1, 9, 0, 0)
pytestmark = pytest.mark.slow  # a held-out set indexed with the demo model, searched through the API


@pytest.fixture(scope="module")
def dated(tmp_path_factory):
    """COUNT images, each with its own EXIF date (days in a shuffled order), indexed with the
    demo model by the CLI, their encoder output kept (a date order and a where condition ask
    the match head and the decoder of hundreds of candidates: without the image encoder);
    what each image holds and when it was taken."""
    root = tmp_path_factory.mktemp("dated")
    days = list(range(COUNT))
    random.Random(SEED).shuffle(days)
    truth = {}
    for i, sample in enumerate(generate(SEED, COUNT)):
        path = root / "photos" / f"{i:04d}.{'jpg' if sample.format == 'JPEG' else 'png'}"
        path.parent.mkdir(exist_ok=True)
        taken = FIRST_DAY + timedelta(days=days[i])
        exif = Image.Exif()
        exif[0x0132] = taken.strftime("%Y:%m:%d %H:%M:%S")  # DateTime
        options = {"quality": sample.quality} if sample.format == "JPEG" else {}
        sample.image.save(path, format=sample.format, exif=exif, **options)
        truth[str(path)] = {"shapes": {(s.color, s.kind) for s in sample.shapes}, "taken": taken,
                            "drawn": sample.shapes, "side": sample.image.size[0]}
    index = root / "index"
    assert main(["index", str(root / "photos"), "--index", str(index), "--model", "demo", "--workers", "0",
                 "--keep-features", "--json"]) == 0
    return {"index": index, "truth": truth}


@pytest.fixture(scope="module")
def client(dated):
    settings = load_settings(index=dated["index"], model="demo", workers=0, device="cpu")
    with TestClient(create_app(settings)) as client:
        yield client


def _search(client, **params) -> dict:
    response = client.get("/api/search", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _query(color: str, shape: str) -> str:
    return f"{'an' if color[0] in 'aeiou' else 'a'} {color} {shape}"


def _pairs(truth, least: int) -> list[tuple[str, str]]:
    return [(c, s) for c, s in itertools.product(COLORS, SHAPES)
            if sum((c, s) in t["shapes"] for t in truth.values()) >= least]


def test_date_order_keeps_the_matches_newest_first(client, dated):
    """`a red circle` with sort=newest, min_match=0.5: dates never increase; of the hits,
    361 of 365 hold the coloured shape, and 361 of the 362 images that hold it come back (the
    targets: 90 % and 80 %), give or take two where a sum's order flips a tie."""
    truth = dated["truth"]
    pairs = _pairs(truth, 3)
    assert len(pairs) >= 20
    returned = right = holders = found = 0
    for color, shape in pairs:
        body = _search(client, q=_query(color, shape), sort="newest", min_match=0.5, k=100)
        hits = body["results"]
        dates = [datetime.fromisoformat(hit["taken_at"]) for hit in hits]
        assert dates == sorted(dates, reverse=True)
        assert all(truth[hit["path"]]["taken"] == when for hit, when in zip(hits, dates, strict=True))
        assert all(hit["match"] >= 0.5 for hit in hits)
        holding = {path for path, t in truth.items() if (color, shape) in t["shapes"]}
        returned += len(hits)
        right += sum(hit["path"] in holding for hit in hits)
        holders += len(holding)
        found += len(holding & {hit["path"] for hit in hits})
    print(f"date order: precision {right}/{returned}, recall {found}/{holders}")
    assert holders == 362 and abs(returned - 365) <= 2, (returned, holders)
    assert right >= 361 - 2 and found >= 361 - 2, (right, found)


def test_oldest_first_is_the_same_hits_reversed(client):
    newest = _search(client, q="a blue square", sort="newest", k=100)["results"]
    oldest = _search(client, q="a blue square", sort="oldest", k=100)["results"]
    assert newest and [h["id"] for h in oldest] == [h["id"] for h in reversed(newest)]


def test_negative_terms_exclude_the_coloured_shape(client, dated):
    """`a circle - a red circle`: the top 5 all hold a circle and none a red one, for 32 of
    the 32 colour/shape pairs the set holds (the target: 90 %), give or take one."""
    truth = dated["truth"]
    def others(color, shape):  # images with the shape in another colour
        return sum(shape in {k for _, k in t["shapes"]} and (color, shape) not in t["shapes"]
                   for t in truth.values())

    pairs = [(c, s) for c, s in _pairs(truth, 2) if others(c, s) >= 5]
    assert len(pairs) >= 10
    good = 0
    for color, shape in pairs:
        hits = _search(client, q=f"a {shape} - {_query(color, shape)}", k=5)["results"]
        held = [truth[hit["path"]]["shapes"] for hit in hits]
        good += len(hits) == 5 and all(shape in {k for _, k in h} and (color, shape) not in h for h in held)
    print(f"negative terms: {good}/{len(pairs)}")
    assert len(pairs) == 32 and good >= 32 - 1, (good, len(pairs))


def test_filters_alone_list_the_images_newest_first(client, dated):
    body = _search(client, q="after:2021-03-01 before:2021-04-01", k=100)
    dates = [datetime.fromisoformat(hit["taken_at"]) for hit in body["results"]]
    assert len(dates) == 31 and dates == sorted(dates, reverse=True)
    assert all(datetime(2021, 3, 1) <= d < datetime(2021, 4, 1) for d in dates)
    assert all(hit["score"] is None for hit in body["results"])


def test_caption_and_path_filters_hold_for_every_hit(client, dated):
    hits = _search(client, q='a shape caption:"red" path:photos', k=50)["results"]
    assert hits and all(re.search(r"\bred\b", hit["caption"]) for hit in hits)
    assert _search(client, q="a shape path:elsewhere")["results"] == []


def test_text_filter_keeps_only_images_holding_the_words(client):
    """The shapes hold no writing: every image's text was read (no note), none holds `sale`."""
    body = _search(client, q='text:"sale" a red circle')
    assert body["results"] == [] and body["notes"] == []


def test_browse_pages_through_every_image(client, dated):
    seen = []
    for offset in range(0, COUNT, 100):
        response = client.get("/api/images", params={"offset": offset, "limit": 100, "sort": "newest"})
        assert response.status_code == 200
        body = response.json()
        assert body["total"] == COUNT
        seen += body["images"]
    assert len({image["id"] for image in seen}) == COUNT
    taken = [datetime.fromisoformat(image["taken_at"]) for image in seen]
    assert taken == sorted(taken, reverse=True) and all(image["text"] is not None for image in seen)
    by_path = client.get("/api/images", params={"sort": "path", "limit": 500}).json()["images"]
    assert [image["path"] for image in by_path] == sorted(dated["truth"])


MALFORMED = [("2: + -", "nothing before '-'"), ('"a red circle', "never closed"),
             ("colour:red circle", "unknown field 'colour:'"), ("after:yesterday circle", "takes a date"),
             ("circle - ", "nothing after '-'"), ("- circle", "nothing before '-'"),
             ("0:circle", "above 0"), ("3:", "no term"), ("circle - path:x", "no term"),
             ("#99999999999999999999999 + circle", "no image has the id"),
             ("9" * 40 + ":circle - a red circle", "at most 1000"), ("1001:circle", "at most 1000"),
             ('""', "the query is empty"), ('"" ""', "the query is empty")]


@pytest.mark.parametrize(("query", "reason"), MALFORMED)
def test_malformed_queries_are_a_422_and_exit_1_with_the_place(client, dated, capsys, query, reason):
    response = client.get("/api/search", params={"q": query})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert reason in detail and re.search(r"at character \d+", detail), detail
    assert main(["search", query, "--index", str(dated["index"])]) == 1
    err = capsys.readouterr().err.strip()
    assert reason in err and len(err.splitlines()) == 1, err


def test_a_question_as_a_filter_keeps_the_hits_that_answer_it(client, dated):
    """`a red circle` where "how many shapes are there?=two": 60 of the 60 hits of 12 queries
    hold two shapes (the target: 90 %), give or take one; the response says how many
    candidates were asked and why it stopped."""
    truth = dated["truth"]
    returned = right = 0
    for color, shape in _pairs(truth, 3)[:12]:
        body = _search(client, q=_query(color, shape), where="how many shapes are there?=two", k=5)
        report = body["where"]
        assert report["passed"] >= len(body["results"]) and report["asked"] <= report["budget"]
        assert report["stopped"] == ("enough hits" if report["passed"] >= 5 else "budget")
        assert len(body["results"]) == min(5, report["passed"])
        returned += len(body["results"])
        right += sum(len(truth[hit["path"]]["shapes"]) == 2 for hit in body["results"])
    print(f"where: {right}/{returned} hold two shapes")
    assert returned >= 60 - 1 and right >= returned - 1, (right, returned)
    one = _search(client, q="a circle", where=["how many shapes are there?=1", "is there a circle?=yes"], k=4)
    assert len(one["results"]) == 4
    assert all(len(truth[hit["path"]]["shapes"]) == 1 for hit in one["results"])  # "1" is "one"


@pytest.mark.parametrize("condition", ["no equals sign", "=yes", "is it red?="])
def test_a_malformed_where_is_a_422_and_exit_1(client, dated, capsys, condition):
    response = client.get("/api/search", params={"q": "a circle", "where": condition})
    assert response.status_code == 422 and "QUESTION=ANSWER" in response.json()["detail"]
    assert main(["search", "a circle", "--where", condition, "--index", str(dated["index"])]) == 1
    assert "QUESTION=ANSWER" in capsys.readouterr().err


def test_explanations_point_inside_the_named_shape(client, dated):
    """On two-shape images returned for `a {colour} {shape}`, the grid's highest cell lies
    inside the named shape (at least half the cell is that shape) in 107 of 114 cases (the
    target: 75 %), give or take two."""
    truth = dated["truth"]
    queries = client.get("/api/stats").json()["queries_per_image"]
    vision = json.loads((DEMO_FOLDER / "retrieval" / "config.json").read_text())["vision_config"]
    side = vision["image_size"] // vision["patch_size"]  # the encoder's patch grid
    inside = total = 0
    for color, shape in _pairs(truth, 3):
        for hit in _search(client, q=_query(color, shape), k=5)["results"]:
            held = truth[hit["path"]]
            if len(held["drawn"]) != 2 or (color, shape) not in held["shapes"]:
                continue
            response = client.get(f"/api/images/{hit['id']}/explain", params={"q": _query(color, shape)})
            assert response.status_code == 200, response.text
            body = response.json()
            grid = np.array(body["grid"])
            assert body["id"] == hit["id"] and 0 <= body["token"] < queries
            assert body["score"] == pytest.approx(hit["score"], abs=1e-5)  # its best vector: the ITC score
            assert grid.shape == (side, side) and grid.max() == 1
            share = coverage(held["drawn"], held["side"], grid.shape[0])[..., 1 + SHAPES.index(shape)]
            inside += share[np.unravel_index(grid.argmax(), grid.shape)] >= 0.5
            total += 1
    print(f"explanations inside the named shape: {inside}/{total}")
    assert abs(total - 114) <= 2 and inside >= 107 - 2, (inside, total)


def test_explain_from_the_cli_writes_an_overlay(dated, tmp_path, capsys):
    out = tmp_path / "why.png"
    index = str(dated["index"])
    assert main(["explain", "3", "a red circle", "--index", index, "--out", str(out), "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert set(body) == {"id", "query", "token", "score", "grid", "time_s"}
    assert body["query"] == "a red circle"
    assert body["time_s"] is None  # an image, not a moment of a video
    with Image.open(out) as overlay:
        assert overlay.format == "PNG" and overlay.size[0] >= 64
    assert main(["explain", "99999", "a red circle", "--index", str(dated["index"])]) == 1
    assert "no indexed image with id 99999" in capsys.readouterr().err
    assert main(["explain", "3", "circle", "--out", str(tmp_path / "no" / "x.png"), "--index",
                 str(dated["index"])]) == 1
    assert "does not exist" in capsys.readouterr().err


AWARE = ["circle after:2021-03-01T00:00+05:00", "circle before:2021-06-01T12:00Z",
         "circle after:0001-01-01T00:00+14:00", "circle before:9999-12-31T23:00-14:00"]


@pytest.mark.parametrize("query", AWARE)
def test_dates_with_a_time_zone_are_searched_as_local_time(client, dated, capsys, query):
    """An aware date beside a plain one (the API's after=), and aware dates at the ends of
    the calendar: a 200 and exit 0, the hits inside the bound."""
    body = _search(client, q=query, after="2021-02-01", k=50)
    bound = datetime.fromisoformat(query.split(":", 1)[1]).astimezone().replace(tzinfo=None) \
        if "0001" not in query and "9999" not in query else None
    for hit in body["results"]:
        taken = dated["truth"][hit["path"]]["taken"]
        assert taken >= datetime(2021, 2, 1)
        if bound is not None:
            assert taken >= bound if "after:" in query else taken < bound
    index = str(dated["index"])
    assert main(["search", query, "--after", "2021-02-01", "-k", "50", "--index", index, "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["results"]) == len(body["results"])


def test_a_min_match_that_is_not_a_probability_is_exit_1(dated, capsys):
    for value in ("nan", "1.5", "-0.1"):
        assert main(["search", "circle", "--min-match", value, "--index", str(dated["index"])]) == 1
        assert "min_match is a probability" in capsys.readouterr().err


def test_a_huge_weight_on_the_cli_is_exit_1_not_infinity(dated, capsys):
    index = str(dated["index"])
    assert main(["search", "9" * 40 + ":circle - a red circle", "--index", index, "--json"]) == 1
    assert "at most 1000" in capsys.readouterr().err
    assert main(["search", "1000:circle - 1000:a red circle", "--index", index, "--json"]) == 0
    scores = [hit["score"] for hit in json.loads(capsys.readouterr().out)["results"]]
    assert scores and all(np.isfinite(scores))
