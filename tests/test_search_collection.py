"""The vector snapshot follows the catalog: behind, missing or corrupt means rebuilt, no model."""

from __future__ import annotations

import logging
import os
import threading
import time

import numpy as np
import pytest

from search.collection import SNAPSHOT, Collection, CollectionError, IndexPolicy
from search.records import ImageFile, ModelInfo
from tests.support.corpus import all_vectors

INFO = ModelInfo("test-model", 4, 8)


def _fill(collection: Collection, count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(count, 4, 8)).astype(np.float16)
    collection.commit([ImageFile(path=f"/r/{seed}-{i}.png", size=1, mtime=1.0, root="/r",
                                 content_hash=f"{seed}-{i}", vectors=vectors[i]) for i in range(count)])
    return vectors


@pytest.fixture
def built(tmp_path):
    collection = Collection.open(tmp_path / "index", create=True)
    collection.bind_model(INFO)
    _fill(collection, 10)
    collection.save()
    collection.close()
    return tmp_path / "index"


def _reopen(folder):
    collection = Collection.open(folder)
    return collection, all_vectors(collection)


def test_current_snapshot_is_loaded(built):
    collection, (ids, _) = _reopen(built)
    assert collection.snapshot_state == "loaded" and len(ids) == 10


def test_snapshot_behind_the_catalog_is_brought_up_to_date(built):
    collection = Collection.open(built)
    _fill(collection, 5, seed=1)  # committed, but the process "dies" before saving the snapshot
    collection.remove([1, 2])
    collection.close()
    collection, (ids, vectors) = _reopen(built)
    assert collection.snapshot_state == "rebuilt"
    assert len(ids) == 13 and 1 not in ids and 2 not in ids
    stored = np.stack([collection.vectors_of(int(i)) for i in ids])
    np.testing.assert_array_equal(vectors, stored)
    assert Collection.open(built).snapshot_state == "loaded"  # the rebuild was saved


@pytest.mark.parametrize("damage", ["missing", "truncated", "garbage"])
def test_missing_or_corrupt_snapshot_is_rebuilt_not_emptied(built, damage):
    path = built / SNAPSHOT
    if damage == "missing":
        path.unlink()
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:-100])
    else:
        path.write_bytes(b"\x00" * 64)
    (built / f".{SNAPSHOT}.1234.tmp").write_bytes(b"half-written")
    collection, (ids, _) = _reopen(built)
    assert collection.snapshot_state == "rebuilt"
    assert len(ids) == 10
    assert not list(built.glob(f".{SNAPSHOT}.*.tmp"))


def test_another_model_is_refused(built):
    collection = Collection.open(built)
    with pytest.raises(CollectionError, match="built with model test-model"):
        collection.bind_model(ModelInfo("other", 4, 8))
    collection.bind_model(INFO)  # the same model is fine
    with pytest.raises(CollectionError, match="built with model test-model"):
        collection.model_to_load("demo")  # refused before anything loads
    assert collection.model_to_load(None) == "test-model"


def test_missing_index_is_a_clear_error(tmp_path):
    with pytest.raises(CollectionError, match="no index at"):
        Collection.open(tmp_path / "nothing")


def _ranked(collection, texts, k=5):
    from search.query.searcher import Searcher

    return [[i for i, _ in hits] for hits in Searcher(collection, engine=None).nearest(texts, k)]


def test_changing_the_index_type_rebuilds_from_the_catalog_alone(built):
    texts = np.random.default_rng(3).normal(size=(4, 8)).astype(np.float32)
    collection = Collection.open(built)
    exact = _ranked(collection, texts)
    collection.set_index_type("compressed")  # no engine anywhere: the catalog's vectors suffice
    assert collection.stats().vector_index == "compressed"
    assert _ranked(collection, texts) == exact  # 10 images: every one is re-scored exactly
    collection.close()
    collection = Collection.open(built)
    assert (collection.snapshot_state, collection.stats().vector_index) == ("loaded", "compressed")
    _fill(collection, 3, seed=2)
    assert len(list(collection.iter_vectors())[0][0]) == 13  # read from the catalog
    collection.set_index_type("exact")
    assert collection.stats().vector_index == "exact" and collection.indexed == 13
    with pytest.raises(CollectionError, match="unknown index type"):
        collection.set_index_type("hnsw")


def test_auto_turns_compressed_at_the_threshold(built):
    policy = IndexPolicy(exact_up_to=11)
    collection = Collection.open(built, policy=policy)
    assert collection.index_type == "auto" and collection.stats().vector_index == "exact"
    _fill(collection, 2, seed=4)
    collection.save()
    assert collection.stats().vector_index == "compressed" and collection.indexed == 12
    collection.close()
    assert Collection.open(built, policy=policy).snapshot_state == "loaded"


def test_a_compressed_index_trained_on_a_sample_is_loaded_not_rebuilt(built):
    policy = IndexPolicy(training_sample=2)  # a sample of 10 images' tenth
    collection = Collection.open(built, policy=policy)
    collection.set_index_type("compressed")
    assert collection.stats().vector_index == "compressed" and collection.indexed == 10
    collection.close()
    assert Collection.open(built, policy=policy).snapshot_state == "loaded"


def test_refresh_sees_what_another_writer_committed(built):
    reader = Collection.open(built)
    writer = Collection.open(built)
    _fill(writer, 3, seed=5)
    assert reader.indexed == 10  # the reader's index is as it opened it
    assert reader.refresh() and reader.indexed == 13  # rebuilt in memory from the catalog
    writer.save()
    writer.remove([1])
    writer.save()
    assert reader.refresh() and reader.indexed == 12  # the writer's snapshot, loaded
    assert not reader.refresh()  # in step: nothing to do
    reader.close()
    writer.close()


def test_a_refresh_asked_in_the_background_runs_on_a_thread_of_its_own(built, caplog):
    """What a server's request asks: the call returns at once with the view unchanged, and the
    catch-up runs on the `vector-refresh` thread (its log record says so), after which the
    view is the catalog's."""
    caplog.set_level(logging.DEBUG, logger="blip2_search")
    reader, writer = Collection.open(built), Collection.open(built)
    _fill(writer, 3, seed=5)
    assert reader.refresh(background=True) is False
    deadline = time.monotonic() + 60
    while reader.indexed != 13 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert reader.indexed == 13
    [record] = [r for r in caplog.records if "caught up" in r.getMessage()]
    assert record.threadName == "vector-refresh" and record.threadName != threading.current_thread().name
    assert reader.refresh(background=True) is False and not reader.refresh()  # in step now
    reader.close()
    writer.close()


def test_duplicate_groups_are_kept_until_the_catalog_changes(built):
    from search.query.duplicates import groups

    collection = Collection.open(built)
    first = groups(collection)
    assert groups(collection) is first  # from memory: the catalog has not changed
    assert groups(collection, 0.9) is not first  # another threshold is its own result
    with collection.writing():
        _fill(collection, 1, seed=9)
        collection.save()
    assert groups(collection) is not first  # a new generation: found again
    collection.close()


def test_a_snapshot_that_misses_images_is_not_trusted(built):
    """A writer that saves what it holds, unaware of another's images, tags its snapshot with
    the catalog's generation: the vector count gives it away, and it is rebuilt."""
    stale, other = Collection.open(built), Collection.open(built)
    _fill(other, 4, seed=7)  # committed by another writer
    stale.save()  # 10 images, tagged with the generation that has 14
    other.close()
    stale.close()
    collection, (ids, _) = _reopen(built)
    assert collection.snapshot_state == "rebuilt" and len(ids) == 14
    assert collection.stats().vectors == 14 * INFO.queries


def test_one_writer_at_a_time(built):
    from search.store.lock import IndexBusy

    first, second = Collection.open(built), Collection.open(built)
    waited = []
    with first.writing():
        with pytest.raises(IndexBusy, match="another writer holds the index") as refused:
            with second.writing(wait=False):
                pass
        assert f"pid {os.getpid()}" in str(refused.value)
        _fill(first, 2, seed=8)
        assert second.refresh() is False and second.indexed == 10  # a reader keeps its view meanwhile
    with second.writing(waiting=waited.append):
        assert second.indexed == 12  # in step with the writer before it
    assert waited == []  # free by then: no wait
    first.close()
    second.close()


@pytest.mark.parametrize("kind", ["exact", "compressed"])
def test_similar_through_the_index_agrees_with_the_full_scan(tmp_path, kind):
    """3,000 seeded images in 60 clusters: similar by id through the first stage (candidates
    for each query vector, their union scored exactly) against scoring every image."""
    from search.query.searcher import Searcher

    rng = np.random.default_rng(20261202)
    queries, dim, n = 4, 32, 3000
    centres = rng.normal(size=(60, dim))
    vectors = centres[rng.integers(0, 60, n)][:, None, :] + 0.5 * rng.normal(size=(n, queries, dim))
    vectors = (vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)).astype(np.float16)
    collection = Collection.open(tmp_path / "index", create=True)
    collection.bind_model(ModelInfo("synthetic", queries, dim))
    collection.set_index_type(kind)
    for start in range(0, n, 500):
        collection.commit([ImageFile(path=f"/s/{i}.png", size=1, mtime=1.0, root="/s", content_hash=str(i),
                                     vectors=vectors[i]) for i in range(start, start + 500)])
    collection.save()  # as an index run ends: the index in step with the catalog
    assert collection.stats().vector_index == kind
    searcher = Searcher(collection, engine=None)
    found = total = 0
    for image_id in range(1, 3001, 150):
        fast = searcher.similar.find(image_id=image_id, k=10)
        full = searcher.similar.find(image_id=image_id, k=10, exhaustive=True)
        assert image_id not in [hit.id for hit in fast]
        exact = {hit.id: hit.score for hit in full}
        for hit in fast:  # every score is the exact one
            if hit.id in exact:
                assert abs(hit.score - exact[hit.id]) < 1e-6
        found += len(set(exact) & {hit.id for hit in fast})
        total += len(exact)
    assert found == total  # observed on this seed for both kinds (the exact kind: from its int8 first stage)
    collection.close()


def test_a_batch_the_catalog_refuses_leaves_no_thumbnail(built, monkeypatch):
    """The batch is in, or not at all: its new thumbnails go too (on a full disk, that space
    is what lets the run publish the batches before it); one another image shares stays."""
    from search.errors import CatalogError

    collection = Collection.open(built)
    try:
        kept = collection.catalog.get_many([1])[1]
        collection.thumbnails.write(kept.content_hash, b"RIFF\x04\x00\x00\x00WEBP")
        batch = [ImageFile(path=f"/r/new-{i}.png", size=1, mtime=1.0, root="/r", content_hash=f"new-{i}",
                           thumbnail=b"RIFF\x04\x00\x00\x00WEBP", vectors=np.zeros((4, 8), np.float16))
                 for i in range(3)]
        batch.append(ImageFile(path="/r/copy.png", size=1, mtime=1.0, root="/r",
                               content_hash=kept.content_hash, thumbnail=b"RIFF\x04\x00\x00\x00WEBP",
                               vectors=np.zeros((4, 8), np.float16)))

        def refuse(*args, **kwargs):
            raise CatalogError("the catalog could not be written (database or disk is full)")

        monkeypatch.setattr(collection.catalog, "write", refuse)
        with pytest.raises(CatalogError):
            collection.commit(batch)
        assert [collection.thumbnails.path(f"new-{i}").exists() for i in range(3)] == [False] * 3
        assert collection.thumbnails.whole(kept.content_hash)
    finally:
        collection.close()
