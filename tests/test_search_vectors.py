"""The vector index equals brute-force BLIP-2 max-sim, and its snapshots are safe."""

from __future__ import annotations

import numpy as np
import pytest

from search.vectors import SnapshotError, VectorIndex

Q, D = 4, 8


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def brute_force(ids, vectors, text, k, allowed=None):
    """Max over queries of the cosine, ranked by (score desc, id asc)."""
    scores = {int(i): float((v @ text).max()) for i, v in zip(ids, vectors, strict=True)
              if allowed is None or i in set(allowed.tolist())}
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:k]


def _assert_same(got, expected):
    assert [i for i, _ in got] == [i for i, _ in expected]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], atol=1e-5)


@pytest.fixture
def data():
    rng = np.random.default_rng(1338)
    ids = rng.choice(10_000, size=60, replace=False).astype(np.int64)
    vectors = _unit(rng.normal(size=(60, Q, D)))
    texts = _unit(rng.normal(size=(5, D)))
    return ids, vectors, texts


@pytest.mark.parametrize("k", [1, 5, 10, 59, 60, 100])
def test_topk_equals_brute_force(data, k):
    ids, vectors, texts = data
    index = VectorIndex(Q, D)
    index.add(ids, vectors)
    assert index.ntotal == len(ids) * Q
    for text, got in zip(texts, index.search(texts, k), strict=True):
        _assert_same(got, brute_force(ids, vectors, text, k))


def test_ties_are_ordered_by_id(data):
    ids, vectors, texts = data
    vectors = vectors.copy()
    vectors[10:30] = vectors[5]  # 21 images with identical vectors: ties everywhere
    index = VectorIndex(Q, D)
    index.add(ids, vectors)
    for k in (3, 8, 25):
        for text, got in zip(texts, index.search(texts, k), strict=True):
            _assert_same(got, brute_force(ids, vectors, text, k))


def test_empty_index_and_deletes(data):
    ids, vectors, texts = data
    index = VectorIndex(Q, D)
    assert index.search(texts, 5) == [[] for _ in texts]
    index.add(ids, vectors)
    gone = ids[::3]
    index.remove(gone)
    keep = np.isin(ids, gone, invert=True)
    assert index.ntotal == keep.sum() * Q
    for text, got in zip(texts, index.search(texts, 10), strict=True):
        assert not set(i for i, _ in got) & set(gone.tolist())
        _assert_same(got, brute_force(ids[keep], vectors[keep], text, 10))
    index.remove(ids)
    assert index.ntotal == 0
    assert index.search(texts, 3) == [[] for _ in texts]


def test_re_adding_an_id_replaces_it(data):
    ids, vectors, texts = data
    index = VectorIndex(Q, D)
    index.add(ids, vectors)
    index.add(ids[:1], vectors[1:2])
    assert index.ntotal == len(ids) * Q
    np.testing.assert_allclose(index.vectors_of(int(ids[0])), vectors[1], atol=1e-6)


def test_allowed_ids_filter(data):
    ids, vectors, texts = data
    index = VectorIndex(Q, D)
    index.add(ids, vectors)
    allowed = ids[5:25]
    for text, got in zip(texts, index.search(texts, 7, allowed=allowed), strict=True):
        _assert_same(got, brute_force(ids, vectors, text, 7, allowed))
    assert index.search(texts, 3, allowed=np.array([], dtype=np.int64)) == [[] for _ in texts]


def test_all_vectors_round_trip(data):
    ids, vectors, _ = data
    index = VectorIndex(Q, D)
    index.add(ids, vectors)
    got_ids, got = index.all_vectors()
    order = np.argsort(ids)
    np.testing.assert_array_equal(got_ids, ids[order])
    np.testing.assert_allclose(got, vectors[order], atol=1e-6)


def test_snapshot_round_trip_and_corruption(tmp_path, data):
    ids, vectors, texts = data
    index = VectorIndex(Q, D)
    index.add(ids, vectors)
    index.generation = 7
    path = tmp_path / "vectors.faiss"
    index.save(path)
    loaded = VectorIndex.load(path, Q, D)
    assert loaded.generation == 7 and loaded.ntotal == index.ntotal
    assert loaded.search(texts, 5) == index.search(texts, 5)
    assert not list(tmp_path.glob(".*tmp"))  # no temp file left behind

    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(SnapshotError, match="corrupt"):
        VectorIndex.load(path, Q, D)
    path.write_bytes(b"garbage")
    with pytest.raises(SnapshotError):
        VectorIndex.load(path, Q, D)
    with pytest.raises(SnapshotError, match="no vector snapshot"):
        VectorIndex.load(tmp_path / "missing.faiss", Q, D)
    index.save(path)
    with pytest.raises(SnapshotError, match="another shape"):
        VectorIndex.load(path, Q + 1, D)
