"""The vector index equals brute-force BLIP-2 max-sim, and its snapshots are safe."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from search import compressed
from search.errors import SearchError
from search.vectors import SnapshotError, VectorIndex, memory_fetch

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
    vectors = _unit(rng.normal(size=(60, Q, D))).astype(np.float16).astype(np.float32)  # as stored
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


def _Store(ids, vectors):
    """Stored vectors by image id, as the catalog supplies them to a compressed index."""
    return memory_fetch({int(i): v for i, v in zip(ids, vectors, strict=True)})


def _compressed(ids, vectors):
    index = VectorIndex(Q, D, "compressed", _Store(ids, vectors))
    index.add(ids, vectors)
    return index


@pytest.mark.parametrize("k", [1, 10, 60])
def test_compressed_results_are_exact_scores_of_its_candidates(data, k):
    ids, vectors, texts = data  # 60 images: fewer than the candidates, so all are re-scored
    index = _compressed(ids, vectors)
    assert index.kind == "compressed" and index.ntotal == len(ids) * Q
    for text, got in zip(texts, index.search(texts, k), strict=True):
        _assert_same(got, brute_force(ids, vectors, text, k))
    np.testing.assert_array_equal(index.vectors_of(int(ids[3])), vectors[3])


def test_compressed_deletes_filters_and_snapshots(tmp_path, data):
    ids, vectors, texts = data
    index = _compressed(ids, vectors)
    index.remove(ids[::3])
    keep = np.isin(ids, ids[::3], invert=True)
    for text, got in zip(texts, index.search(texts, 10), strict=True):
        _assert_same(got, brute_force(ids[keep], vectors[keep], text, 10))
    allowed = ids[keep][:7]
    for text, got in zip(texts, index.search(texts, 5, allowed=allowed), strict=True):
        _assert_same(got, brute_force(ids, vectors, text, 5, allowed))
    index.generation = 3
    index.save(tmp_path / "vectors.faiss")
    loaded = VectorIndex.load(tmp_path / "vectors.faiss", Q, D, index.fetch)
    assert (loaded.kind, loaded.generation, loaded.trained_on) == ("compressed", 3, len(ids))
    assert loaded.search(texts, 5) == index.search(texts, 5)
    with pytest.raises(SearchError, match="no vectors to iterate"):
        loaded.all_vectors()


@pytest.mark.parametrize("rows_per_list", [compressed.ROWS_PER_LIST, 2])
def test_compressed_recall_against_exact_on_clustered_vectors(monkeypatch, rows_per_list):
    """5,000 images in 100 clusters, 32 dimensions: far more images than candidates; at the
    default sizing 8 inverted lists, all probed; with 2 rows a list, 64 lists, 8 probed."""
    monkeypatch.setattr(compressed, "ROWS_PER_LIST", rows_per_list)
    rng = np.random.default_rng(7)
    n, dim, queries = 5000, 32, 4
    centres = _unit(rng.normal(size=(100, dim)))
    noise = 0.12 * rng.normal(size=(n, queries, dim))  # about 0.7 of the centre's length
    vectors = _unit(centres[rng.integers(0, 100, n)][:, None, :] + noise)
    vectors = vectors.astype(np.float16).astype(np.float32)
    ids = np.arange(n, dtype=np.int64) * 3
    store = {int(i): v for i, v in zip(ids, vectors, strict=True)}
    index = VectorIndex(queries, dim, "compressed", memory_fetch(store))
    index.add(ids, vectors)
    texts = _unit(centres[rng.integers(0, 100, 50)] + 0.12 * rng.normal(size=(50, dim)))
    hits = 0
    for text, got in zip(texts, index.search(texts, 10), strict=True):
        truth = np.argsort(-(vectors @ text).max(axis=1), kind="stable")[:10]
        hits += len({i for i, _ in got} & set(ids[truth].tolist()))
    assert hits / 500 >= 0.95, hits / 500


def test_unknown_kind_is_refused():
    with pytest.raises(SearchError, match="unknown index type"):
        VectorIndex(Q, D, "hnsw")


def test_a_compressed_index_of_one_image_works(data):
    ids, vectors, texts = data
    index = _compressed(ids[:1], vectors[:1])  # 4 rows: fewer than the quantiser's 16 centroids
    assert [i for i, _ in index.search(texts[:1], 5)[0]] == [int(ids[0])]


def test_first_stage_sizing():
    assert [compressed.lists_for(rows) for rows in (4, 20_000, 32 * 20_000, 32 * 10**6, 32 * 10**7)] == [
        1, 8, 64, 256, 1024]
    assert [compressed.quantiser(8, rows).nprobe for rows in (4, 32 * 10**6, 32 * 10**7)] == [1, 16, 64]
    assert [compressed.candidates_per_hit(images) for images in (10, 100_000, 10**6, 10**7)] == [
        32, 32, 125, 256]


@pytest.fixture
def three_parts():
    """Indexes made now hold three parts (one per FAISS thread), as on a 3-core machine."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(3)
    yield
    faiss.omp_set_num_threads(before)


@pytest.mark.parametrize("kind", ["exact", "compressed"])
def test_an_index_in_parts_searches_like_one(tmp_path, data, three_parts, kind):
    ids, vectors, texts = data
    vectors = vectors.copy()
    vectors[40:50] = vectors[3]  # ties across parts
    index = VectorIndex(Q, D, kind, _Store(ids, vectors))
    for start in range(0, len(ids), 7):  # batches of images spread over the parts
        index.add(ids[start : start + 7], vectors[start : start + 7])
    held = [part.ntotal for part in index._index.parts]
    assert len(held) == 3 and min(held) > 0 and sum(held) == len(ids) * Q
    index.remove(ids[:5])
    keep_ids, keep = ids[5:], vectors[5:]
    allowed = keep_ids[::3]
    path = tmp_path / "vectors.faiss"
    index.save(path)
    loaded = VectorIndex.load(path, Q, D, _Store(keep_ids, keep))
    assert [part.ntotal for part in loaded._index.parts] == [part.ntotal for part in index._index.parts]
    for k in (1, 6, 30):
        batch = loaded.search(texts, k)  # several queries: the parts in turn
        for text, got in zip(texts, batch, strict=True):
            one = loaded.search(text, k)[0]  # one query: a thread per part
            assert one == got
            if kind == "exact":
                _assert_same(got, brute_force(keep_ids, keep, text, k))
            filtered = loaded.search(text, k, allowed=allowed)[0]
            assert {i for i, _ in filtered} <= set(allowed.tolist())
            if kind == "exact":
                _assert_same(filtered, brute_force(keep_ids, keep, text, k, allowed))
    if kind == "exact":
        np.testing.assert_allclose(loaded.vectors_of(int(keep_ids[-1])), keep[-1], atol=1e-6)
        got_ids, got = loaded.all_vectors()
        order = np.argsort(keep_ids)
        np.testing.assert_array_equal(got_ids, keep_ids[order])
        np.testing.assert_allclose(got, keep[order], atol=1e-6)
