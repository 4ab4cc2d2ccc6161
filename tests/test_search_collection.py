"""The vector snapshot follows the catalog: behind, missing or corrupt means rebuilt, no model."""

from __future__ import annotations

import numpy as np
import pytest

from search.catalog import NewImage
from search.collection import SNAPSHOT, Collection, CollectionError, ModelInfo

INFO = ModelInfo("test-model", 4, 8)


def _fill(collection: Collection, count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(count, 4, 8)).astype(np.float16).astype(np.float32)
    rows = [NewImage(path=f"/r/{seed}-{i}.png", root="/r", content_hash=f"{seed}-{i}", size=1, mtime=1.0,
                     vectors=vectors[i]) for i in range(count)]
    ids = collection.catalog.write(rows)
    collection.vectors.add(np.array(ids), vectors)
    return vectors


@pytest.fixture
def built(tmp_path):
    collection = Collection.open(tmp_path / "index", create=True)
    collection.bind_model(INFO)
    _fill(collection, 10)
    collection.save_vectors()
    collection.close()
    return tmp_path / "index"


def _reopen(folder):
    collection = Collection.open(folder)
    return collection, collection.vectors.all_vectors()


def test_current_snapshot_is_loaded(built):
    collection, (ids, _) = _reopen(built)
    assert collection.snapshot_state == "loaded" and len(ids) == 10


def test_snapshot_behind_the_catalog_is_brought_up_to_date(built):
    collection = Collection.open(built)
    _fill(collection, 5, seed=1)  # committed, but the process "dies" before saving the snapshot
    collection.catalog.remove([1, 2])
    collection.close()
    collection, (ids, vectors) = _reopen(built)
    assert collection.snapshot_state == "rebuilt"
    assert len(ids) == 13 and 1 not in ids and 2 not in ids
    stored = np.stack([collection.catalog.vectors(int(i), (4, 8)) for i in ids])
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


def test_missing_index_is_a_clear_error(tmp_path):
    with pytest.raises(CollectionError, match="no index at"):
        Collection.open(tmp_path / "nothing")


def _ranked(collection, texts, k=5):
    return [[i for i, _ in hits] for hits in collection.vectors.search(texts, k)]


def test_changing_the_index_type_rebuilds_from_the_catalog_alone(built):
    texts = np.random.default_rng(3).normal(size=(4, 8)).astype(np.float32)
    collection = Collection.open(built)
    exact = _ranked(collection, texts)
    collection.set_index_type("compressed")  # no engine anywhere: the catalog's vectors suffice
    assert collection.vectors.kind == "compressed" and collection.stats()["vector_index"] == "compressed"
    assert _ranked(collection, texts) == exact  # 10 images: every one is re-scored exactly
    collection.close()
    collection = Collection.open(built)
    assert (collection.snapshot_state, collection.vectors.kind) == ("loaded", "compressed")
    _fill(collection, 3, seed=2)
    assert len(list(collection.iter_vectors())[0][0]) == 13  # read from the catalog
    collection.set_index_type("exact")
    assert collection.vectors.kind == "exact" and len(collection.vectors) == 13
    with pytest.raises(CollectionError, match="unknown index type"):
        collection.set_index_type("hnsw")


def test_auto_turns_compressed_at_the_threshold(built, monkeypatch):
    monkeypatch.setattr("search.collection.COMPRESSED_FROM", 12)
    collection = Collection.open(built)
    assert collection.index_type == "auto" and collection.vectors.kind == "exact"
    _fill(collection, 2, seed=4)
    collection.save_vectors()
    assert collection.vectors.kind == "compressed" and len(collection.vectors) == 12
    collection.close()
    assert Collection.open(built).snapshot_state == "loaded"


def test_a_compressed_index_trained_on_a_sample_is_loaded_not_rebuilt(built, monkeypatch):
    monkeypatch.setattr("search.collection.TRAINING_SAMPLE", 2)  # a sample of 10 images' tenth
    collection = Collection.open(built)
    collection.set_index_type("compressed")
    assert collection.vectors.trained_on == 10 and not collection.vectors.needs_training
    collection.close()
    assert Collection.open(built).snapshot_state == "loaded"
