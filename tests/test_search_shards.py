"""A collection split into shards answers as it does on one machine: every shard's exact top
k, merged, is the one-machine top k (`search.store.shards`), asked in this process."""

from __future__ import annotations

import numpy as np
import pytest

from search.collection import Collection
from search.errors import CollectionError
from search.query.options import SearchOptions
from search.query.searcher import Searcher
from search.sharding import split
from search.store.shards import LocalShards, ShardedIndex, read_manifest
from search.store.shards.fanout import Shards
from tests.support.corpus import write_corpus

QUERIES = ["a red square", "blue", "a photo of a cat - a dog", "green text:sale", "path:photos a circle",
           "after:2000-01-01 before:2100-01-01 yellow"]


@pytest.fixture(scope="module")
def collection_and_shards(tmp_path_factory, engines):
    from indexer.pipeline import IndexOptions, index_paths

    root = tmp_path_factory.mktemp("sharded")
    write_corpus(root / "photos", 24, seed=5)
    collection = Collection.open(root / "index", create=True)
    index_paths(collection, engines["opt"], [root / "photos"], IndexOptions(workers=0))
    with collection.writing():  # words on a few pictures, for text: filters
        collection.set_readings({i: ("SALE today" if i % 3 == 0 else "closed", None) for i in range(1, 25)})
        collection.save()
    manifest = split(collection, 3)
    yield collection, root / "index" / "shards", manifest
    collection.close()


def _sharded(folder, shards: Shards | None = None) -> Collection:
    root = folder / "shards"
    return Collection.open(folder, vectors=ShardedIndex(root, shards or LocalShards(root)))


def test_every_image_is_in_one_shard(collection_and_shards):
    collection, root, manifest = collection_and_shards
    assert manifest.count == 3 and sum(manifest.images) == collection.indexed == 24
    shards = LocalShards(root)
    held = np.concatenate([engine.ids for engine in shards.engines])
    assert sorted(held.tolist()) == list(range(1, 25))
    assert all((engine.ids % 3 == engine.number).all() for engine in shards.engines)


@pytest.mark.parametrize("query", QUERIES)
def test_search_gives_the_one_machine_ids_and_scores(collection_and_shards, engines, query):
    collection, _, _ = collection_and_shards
    sharded = _sharded(collection.folder)
    dated = SearchOptions(k=6, sort="newest", min_match=0.0)
    for options in (SearchOptions(k=7), SearchOptions(k=5, offset=3), dated):
        one = Searcher(collection, engines["opt"]).find(query, options)
        many = Searcher(sharded, engines["opt"]).find(query, options)
        assert [h.id for h in many.results] == [h.id for h in one.results] and one.results
        assert np.allclose([h.score for h in many.results], [h.score for h in one.results], atol=1e-5)
        assert not many.partial and many.missing_shards == []
    sharded.close()


def test_similar_gives_the_one_machine_ids_and_scores(collection_and_shards, engines):
    collection, _, _ = collection_and_shards
    sharded = _sharded(collection.folder)
    for image_id in (1, 7, 20):
        one = Searcher(collection, engines["opt"]).similar.results(image_id, image_id=image_id, k=8)
        many = Searcher(sharded, engines["opt"]).similar.results(image_id, image_id=image_id, k=8)
        assert [h.id for h in many.results] == [h.id for h in one.results] and len(one.results) == 8
        assert np.allclose([h.score for h in many.results], [h.score for h in one.results], atol=1e-5)
    assert sharded.stats().images == 24 and sharded.stats().vector_index == "sharded"
    sharded.close()


class _WithoutOne:
    """Shards in this process, one of which never answers."""

    def __init__(self, root, lost: int) -> None:
        self.inner, self.lost = LocalShards(root), lost
        self.count = self.inner.count

    def ask(self, method, *args):
        from search.store.shards.fanout import record_missing

        record_missing([self.lost])
        return {n: a for n, a in self.inner.ask(method, *args).items() if n != self.lost}


def test_a_missing_shard_makes_a_partial_answer_of_the_others(collection_and_shards, engines):
    collection, root, _ = collection_and_shards
    sharded = _sharded(collection.folder, _WithoutOne(root, 1))
    found = Searcher(sharded, engines["opt"]).find("a red square", SearchOptions(k=24))
    assert found.partial and found.missing_shards == [1]
    assert found.notes == ["shard 1 did not answer: these results are from the others"]
    assert sorted(h.id for h in found.results) == [i for i in range(1, 25) if i % 3 != 1]
    similar = Searcher(sharded, engines["opt"]).similar.results(3, image_id=3, k=30)
    assert similar.partial and all(h.id % 3 != 1 for h in similar.results) and len(similar.results) == 15
    sharded.close()


def test_a_compressed_shard_scores_its_candidates_exactly(collection_and_shards, engines):
    collection, _, _ = collection_and_shards
    root = collection.folder / "compressed"
    split(collection, 2, root, kind="compressed")
    sharded = Collection.open(collection.folder, vectors=ShardedIndex(root, LocalShards(root)))
    one = Searcher(collection, engines["opt"]).find("a red square", SearchOptions(k=5))
    many = Searcher(sharded, engines["opt"]).find("a red square", SearchOptions(k=5))
    assert [h.id for h in many.results] == [h.id for h in one.results]  # 12 images a shard: all candidates
    assert np.allclose([h.score for h in many.results], [h.score for h in one.results], atol=1e-5)
    one = Searcher(collection, engines["opt"]).similar.results(5, image_id=5, k=6)
    many = Searcher(sharded, engines["opt"]).similar.results(5, image_id=5, k=6)
    assert [h.id for h in many.results] == [h.id for h in one.results] and len(many.results) == 6
    assert np.allclose([h.score for h in many.results], [h.score for h in one.results], atol=1e-5)
    sharded.close()


def test_a_new_set_is_followed_and_writes_are_refused(collection_and_shards, engines):
    collection, _, _ = collection_and_shards
    root = collection.folder / "moving"
    split(collection, 2, root)
    shards = LocalShards(root)
    sharded = Collection.open(collection.folder, vectors=ShardedIndex(root, shards))
    first = read_manifest(root).folder
    split(collection, 2, root)  # written again: each shard loads the new set within a second
    assert read_manifest(root).folder != first
    for engine in shards.engines:
        engine._checked = 0.0
    assert all(engine.info()["set"] == read_manifest(root).folder for engine in shards.engines)
    assert sharded.refresh() is True
    with pytest.raises(CollectionError, match="sharded"):
        with sharded.writing():
            pass
    sharded.close()
