"""Stored image features (`index --keep-features`): compact, the same matches and answers as
the image itself, and kept in step with the catalog's images."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from demo.shapes import write_collection
from search.media.images import open_image
from search.models import Blip2Engine
from search.query.searcher import Searcher, SearchOptions
from search.store.features import Features
from tests.support.corpus import write_corpus
from tests.support.engines import FLOAT32


def test_quantized_features_keep_outlier_channels_and_small_ones():
    """A ViT's hidden states hold a few channels far larger than the rest; each channel's own
    scale keeps the small ones exact to about 1 % of their size."""
    rng = np.random.default_rng(5)
    hidden = rng.normal(0, 1, size=(257, 96)).astype(np.float32)
    hidden[:, [3, 40]] *= 60  # outlier channels
    hidden[0] *= 8  # a large token, like [CLS]
    stored = Features.quantize(hidden)
    again = Features.from_bytes(stored.to_bytes(), stored.shape)
    error = np.abs(again.dequantize() - hidden)
    small = np.setdiff1d(np.arange(96), [3, 40])
    assert stored.codes.dtype == np.int8 and stored.nbytes == 257 * 96 + 2 * (257 + 96)
    assert error[1:, small].max() < 0.05 * np.abs(hidden[1:, small]).max()
    assert np.median(error[1:, small]) < 0.01
    with pytest.raises(ValueError):
        Features.from_bytes(stored.to_bytes()[:-2], stored.shape)


@pytest.fixture(scope="module")
def demo_engine():
    return Blip2Engine.load("demo", device="cpu", precision=FLOAT32)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shapes")
    write_collection(folder, seed=31337, count=48)
    return folder


@pytest.fixture(scope="module")
def kept(demo_engine, shapes, tmp_path_factory):
    from indexer.pipeline import IndexOptions, index_paths
    from search.collection import Collection

    collection = Collection.open(tmp_path_factory.mktemp("kept") / "index", create=True)
    summary = index_paths(collection, demo_engine, [shapes], IndexOptions(workers=0, keep_features=True))
    yield collection, summary
    collection.close()


def test_matches_from_stored_features_equal_those_from_the_image(demo_engine, kept):
    collection, summary = kept
    assert summary.features == summary.added == 48
    searcher = Searcher(collection, demo_engine)
    records = collection.catalog.get_many(range(1, 49))
    ids = sorted(records)
    pictures = [open_image(records[i].path) for i in ids]
    worst = 0.0
    for query in ("a red circle", "two shapes", "a green triangle on a black background", "a blue square"):
        stored = searcher.questions.match(query, ids)
        direct = demo_engine.itm(pictures, query)
        worst = max(worst, float(np.abs(np.array([stored[i] for i in ids]) - direct).max()))
    assert worst <= 0.01, worst
    reranked = searcher.search("a red circle", SearchOptions(k=5, rerank=True, rerank_top=20))
    assert len(reranked) == 5
    assert [hit.match for hit in reranked] == sorted((hit.match for hit in reranked), reverse=True)
    assert all(abs(hit.match - demo_engine.itm([open_image(hit.path)], "a red circle")[0]) <= 0.01
               for hit in reranked)


def test_answers_from_stored_features_equal_those_from_the_image(demo_engine, kept):
    collection, _ = kept
    searcher = Searcher(collection, demo_engine)
    records = collection.catalog.get_many(range(1, 13))
    for image_id, record in records.items():
        for question in ("how many shapes are there?", "what shape is it?"):
            expected = demo_engine.ask(open_image(record.path), question)
            assert searcher.questions.ask(image_id, question) == expected


def test_a_rerank_does_not_read_files_that_have_stored_features(demo_engine, shapes, tmp_path):
    """The stored features stand in for the file: with the file gone, the match is the same."""
    from indexer.pipeline import IndexOptions, index_paths
    from search.collection import Collection

    (tmp_path / "one").mkdir()
    source = next(path for path in sorted(shapes.iterdir()) if path.suffix in (".png", ".jpg"))
    picture = tmp_path / "one" / f"picture{source.suffix}"
    shutil.copy(source, picture)
    collection = Collection.open(tmp_path / "index", create=True)
    index_paths(collection, demo_engine, [tmp_path / "one"], IndexOptions(workers=0, keep_features=True))
    searcher = Searcher(collection, demo_engine)
    before = searcher.questions.match("a red circle", [1])
    picture.unlink()
    assert searcher.questions.match("a red circle", [1]) == before
    collection.close()


def _feature_rows(collection) -> list[int]:
    """Image ids of every stored feature row, read from the catalog's table itself."""
    from sqlalchemy import text

    with collection.catalog._engine.connect() as connection:
        return sorted(row[0] for row in connection.execute(text("SELECT image_id FROM features")))


def test_features_follow_removes_moves_copies_and_changes(indexer, tmp_path, catalog_url, engines):
    photos = tmp_path / "photos"
    paths = write_corpus(photos, 6, seed=3)
    summary, collection = indexer(photos, url=catalog_url, keep_features=True)
    assert summary.features == 6
    assert _feature_rows(collection) == sorted(collection.catalog.get_many(range(1, 7)))
    moved = collection.catalog.at_path(str(paths[0]))
    os.rename(paths[0], photos / "renamed.png")  # a move keeps its row, so its features
    shutil.copy(paths[1], photos / "copy.png")  # a copy gets the twin's features
    paths[2].unlink()  # a removal drops them
    write_corpus(tmp_path / "other", 1, seed=99)[0].replace(paths[3])  # new content: new features
    changed = collection.catalog.at_path(str(paths[3]))
    summary, collection = indexer(photos, url=catalog_url)  # remembered without the flag
    assert (summary.moved, summary.added, summary.removed, summary.updated) == (1, 1, 1, 1)
    ids = sorted(collection.catalog.get_many(range(1, 20)))
    assert _feature_rows(collection) == ids and len(ids) == 6
    assert collection.catalog.at_path(str(photos / "renamed.png")).id == moved.id
    twin = collection.catalog.at_path(str(paths[1]))
    copy = collection.catalog.at_path(str(photos / "copy.png"))
    key = "shared"
    stored = collection.catalog.features.read([twin.id, copy.id, changed.id], [key])
    assert stored[twin.id][key].to_bytes() == stored[copy.id][key].to_bytes()
    fresh = engines["opt"].features([open_image(changed.path)])[0][key]
    assert stored[changed.id][key].to_bytes() == fresh.to_bytes()
    stats = collection.stats()
    assert stats.features == 6 and stats.feature_bytes == 6 * len(fresh.to_bytes())


def test_an_index_gains_features_for_images_indexed_before(indexer, tmp_path, engines):
    photos = tmp_path / "photos"
    write_corpus(photos, 5, seed=8)
    summary, collection = indexer(photos)
    assert summary.features == 0 and _feature_rows(collection) == [] and not collection.keeps_features
    calls = engines["opt"].encoder_passes
    summary, collection = indexer(photos, keep_features=True)
    assert summary.unchanged == 5 and summary.features == 5 and summary.added == 0
    assert engines["opt"].encoder_passes - calls == 5  # the encoder alone, once an image
    assert _feature_rows(collection) == sorted(collection.catalog.get_many(range(1, 6)))
    summary, _ = indexer(photos, keep_features=True)
    assert summary.features == 0 and summary.model_calls == 0


def test_separate_encoders_store_a_side_each(indexer, tmp_path, engines):
    engine = engines["distinct"]
    assert engine.encoder_mode == "separate"
    photos = tmp_path / "photos"
    write_corpus(photos, 3, seed=4)
    _, collection = indexer(photos, engine=engine, keep_features=True)
    image_id = min(collection.catalog.get_many(range(1, 4)))
    assert set(collection.catalog.features.read([image_id], ["retrieval"])[image_id]) == {"retrieval"}
    assert set(collection.catalog.features.read([image_id], ["generation"])[image_id]) == {"generation"}
    searcher = Searcher(collection, engine)
    picture = open_image(collection.catalog.get(image_id).path)
    match = searcher.questions.match("a photo", [image_id])[image_id]
    assert abs(match - engine.itm([picture], "a photo")[0]) <= 0.01
    assert searcher.questions.ask(image_id, "what is it?") == engine.ask(picture, "what is it?")
