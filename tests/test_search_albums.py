"""Smart albums on the shipped demo model: an album follows the index, judging each new
image once against its calibrated cutoff, and agrees with a search of the same query."""

from __future__ import annotations

import shutil

import pytest

from demo.shapes import write_collection
from indexer.pipeline import IndexOptions, index_paths
from search.collection import Collection
from search.errors import InputError, NotFound
from search.models import Blip2Engine
from search.query.albums import AlbumSpec
from search.query.options import SearchOptions
from search.query.searcher import Searcher
from search.records import Selection
from tests.support.engines import FLOAT32

QUERY = "a red circle"
EVERYTHING = SearchOptions(k=500, rerank_top=500, candidates=500, min_match=0.5)


@pytest.fixture(scope="module")
def demo_engine():
    return Blip2Engine.load("demo", device="cpu", precision=FLOAT32)


@pytest.fixture
def library(tmp_path, demo_engine, request):
    """40 demo-world images indexed; the catalog in SQLite, or in PostgreSQL for a test that
    asks for `catalog_url`."""
    catalog_url = request.getfixturevalue("catalog_url") if "catalog_url" in request.fixturenames else None
    write_collection(tmp_path / "photos" / "old", seed=5, count=40)
    collection = Collection.open(tmp_path / "index", create=True, url=catalog_url)
    index = lambda: index_paths(collection, demo_engine, [tmp_path / "photos"],  # noqa: E731
                                IndexOptions(workers=0, ocr=False))
    index()
    yield tmp_path / "photos", collection, Searcher(collection, demo_engine), index
    collection.close()


def _ids(album) -> set[int]:
    return {hit.id for hit in album.results}


def test_an_album_takes_the_new_images_that_pass_its_cutoff_and_loses_deleted_ones(catalog_url, library,
                                                                                   demo_engine):
    photos, collection, searcher, index = library
    albums = searcher.albums
    created = albums.create(AlbumSpec(name="red circles", query=QUERY, min_match=0.5))
    before = _ids(albums.show("red circles", limit=500))
    assert created.count == len(before) > 0
    assert before == {hit.id for hit in searcher.search(QUERY, EVERYTHING)}

    old_ids = set(collection.catalog.listing.ids(Selection()).tolist())
    write_collection(photos / "new", seed=6, count=40)
    index()
    calls = demo_engine.model_calls
    shown = albums.show("red circles", limit=500)
    assert demo_engine.model_calls == calls  # the index run judged them: showing runs no model
    new_ids = set(collection.catalog.listing.ids(Selection()).tolist()) - old_ids
    passing = {hit.id for hit in searcher.search(QUERY, EVERYTHING)} & new_ids
    assert passing, "the seed draws red circles among the new images"
    assert _ids(shown) - before == passing  # exactly the new images that pass
    assert _ids(shown) & before == before  # the old ones were not judged again
    assert set(shown.new_ids) == passing and shown.new == len(passing)
    assert albums.show("red circles").new == 0  # shown once: nothing is new any more

    gone = sorted(passing)[0]
    path = collection.catalog.get(gone).path
    shutil.move(path, photos.parent / "outside.png")
    index()
    after = albums.show("red circles", limit=500)
    assert gone not in _ids(after) and after.count == len(before | passing) - 1
    assert albums.update() == 0  # nothing new: no row judged, no model call


def test_album_filter_in_the_query_language_keeps_the_album(library):
    photos, collection, searcher, _ = library
    albums = searcher.albums
    albums.create(AlbumSpec(name="reds", query=QUERY))
    held = _ids(albums.show("reds", limit=500))
    hits = searcher.search("a shape album:reds", SearchOptions(k=100))
    assert {hit.id for hit in hits} == held
    listed = searcher.search("album:reds", SearchOptions(k=100))  # filters alone: a listing
    assert {hit.id for hit in listed} == held


def test_pins_exclusions_filters_and_export(library):
    photos, collection, searcher, index = library
    albums = searcher.albums
    albums.create(AlbumSpec(name="old ones", query="path:old", sort="oldest"))  # filters alone
    everything = albums.show("old ones", limit=500)
    assert everything.min_match is None and everything.count == 40
    album = albums.create(AlbumSpec(name="reds", query=QUERY, min_match=0.5))
    held = _ids(albums.show("reds", limit=500))
    outsider = next(i for i in _ids(everything) if i not in held)
    insider = sorted(held)[0]
    album = albums.place("reds", pin=[outsider], exclude=[insider])
    shown = albums.show("reds", limit=500)
    assert _ids(shown) == (held | {outsider}) - {insider}
    assert shown.results[0].id == outsider  # pinned first
    assert album.pinned == [outsider] and album.excluded == [insider]
    albums.place("reds", unpin=[outsider], include=[insider])
    assert _ids(albums.show("reds", limit=500)) == held
    paths = albums.paths("reds")
    assert len(paths) == len(held) and all(path.startswith(str(photos)) for path in paths)
    assert [a.name for a in albums.all()] == ["old ones", "reds"]
    albums.delete("old ones")
    with pytest.raises(NotFound, match="no album named 'old ones'"):
        albums.show("old ones")


REFUSED = [
    (AlbumSpec(name="", query=QUERY), "an album's name"),
    (AlbumSpec(name="a/b", query=QUERY), "an album's name"),
    (AlbumSpec(name="x", query=QUERY, min_match=1.5), "min_match is a probability"),
    (AlbumSpec(name="x", query="path:old", min_match=0.5), "needs a \\+ text term"),
    (AlbumSpec(name="x", query=QUERY, sort="random"), "sort is"),
    (AlbumSpec(name="x", query="a cat album:y"), "cannot name an album"),
    (AlbumSpec(name="x", query="a cat after:someday"), "after: takes a date"),
    (AlbumSpec(name="x", query=QUERY, where=("is it red",)), "QUESTION=ANSWER"),
]


def test_what_cannot_be_an_album_says_why(library):
    _, _, searcher, _ = library
    for spec, message in REFUSED:
        with pytest.raises(InputError, match=message):
            searcher.albums.create(spec)
    assert searcher.albums.all() == []


def test_a_name_is_taken_once(library):
    _, _, searcher, _ = library
    searcher.albums.create(AlbumSpec(name="reds", query=QUERY))
    with pytest.raises(InputError, match="exists"):
        searcher.albums.create(AlbumSpec(name="reds", query="a blue square"))
