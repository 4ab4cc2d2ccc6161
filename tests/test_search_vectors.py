"""The vector index equals brute-force BLIP-2 max-sim, and its snapshots are safe."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from search.errors import SearchError
from search.query import scoring
from search.store.vectors import MemoryIndex, SnapshotError, compressed
from tests.support.vectors import in_memory

Q, D = 4, 8


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def brute_force(ids, vectors, text, k, allowed=None):
    """Max over queries of the cosine, ranked by (score desc, id asc)."""
    scores = {int(i): float((v @ text).max()) for i, v in zip(ids, vectors, strict=True)
              if allowed is None or i in set(allowed.tolist())}
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:k]


def ranked(index, texts, k, allowed=None, store=None):
    """The index's first stage, made exact as a query makes it: its own scores, or its
    candidates re-scored from `store`'s vectors."""
    read = in_memory(store) if store else None
    return [scoring.ranked(first, text, k, read)
            for first, text in zip(index.search(texts, k, allowed), np.atleast_2d(texts), strict=True)]


def _all_vectors(index):
    chunks = list(index.iter_vectors())
    ids = np.concatenate([i for i, _ in chunks])
    order = np.argsort(ids)
    return ids[order], np.concatenate([v for _, v in chunks])[order]


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
    index = MemoryIndex(Q, D)
    index.add(ids, vectors)
    assert index.ntotal == len(ids) * Q
    for text, got in zip(texts, ranked(index, texts, k), strict=True):
        _assert_same(got, brute_force(ids, vectors, text, k))


def test_ties_are_ordered_by_id(data):
    ids, vectors, texts = data
    vectors = vectors.copy()
    vectors[10:30] = vectors[5]  # 21 images with identical vectors: ties everywhere
    index = MemoryIndex(Q, D)
    index.add(ids, vectors)
    for k in (3, 8, 25):
        for text, got in zip(texts, ranked(index, texts, k), strict=True):
            _assert_same(got, brute_force(ids, vectors, text, k))


def test_empty_index_and_deletes(data):
    ids, vectors, texts = data
    index = MemoryIndex(Q, D)
    assert ranked(index, texts, 5) == [[] for _ in texts]
    index.add(ids, vectors)
    gone = ids[::3]
    index.remove(gone)
    keep = np.isin(ids, gone, invert=True)
    assert index.ntotal == keep.sum() * Q
    for text, got in zip(texts, ranked(index, texts, 10), strict=True):
        assert not set(i for i, _ in got) & set(gone.tolist())
        _assert_same(got, brute_force(ids[keep], vectors[keep], text, 10))
    index.remove(ids)
    assert index.ntotal == 0
    assert ranked(index, texts, 3) == [[] for _ in texts]


def test_re_adding_an_id_replaces_it(data):
    ids, vectors, texts = data
    index = MemoryIndex(Q, D)
    index.add(ids, vectors)
    index.add(ids[:1], vectors[1:2])
    assert index.ntotal == len(ids) * Q
    got_ids, got = _all_vectors(index)
    np.testing.assert_allclose(got[got_ids == ids[0]][0], vectors[1], atol=1e-6)


def test_allowed_ids_filter(data):
    ids, vectors, texts = data
    index = MemoryIndex(Q, D)
    index.add(ids, vectors)
    allowed = ids[5:25]
    for text, got in zip(texts, ranked(index, texts, 7, allowed=allowed), strict=True):
        _assert_same(got, brute_force(ids, vectors, text, 7, allowed))
    assert ranked(index, texts, 3, allowed=np.array([], dtype=np.int64)) == [[] for _ in texts]


def test_all_vectors_round_trip(data):
    ids, vectors, _ = data
    index = MemoryIndex(Q, D)
    index.add(ids, vectors)
    got_ids, got = _all_vectors(index)
    order = np.argsort(ids)
    np.testing.assert_array_equal(got_ids, ids[order])
    np.testing.assert_allclose(got, vectors[order], atol=1e-6)


def test_snapshot_round_trip_and_corruption(tmp_path, data):
    ids, vectors, texts = data
    index = MemoryIndex(Q, D)
    index.add(ids, vectors)
    index.generation = 7
    path = tmp_path / "vectors.faiss"
    index.save(path)
    loaded = MemoryIndex.load(path, Q, D)
    assert loaded.generation == 7 and loaded.ntotal == index.ntotal
    assert ranked(loaded, texts, 5) == ranked(index, texts, 5)
    assert not list(tmp_path.glob(".*tmp"))  # no temp file left behind

    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(SnapshotError, match="corrupt"):
        MemoryIndex.load(path, Q, D)
    path.write_bytes(b"garbage")
    with pytest.raises(SnapshotError):
        MemoryIndex.load(path, Q, D)
    with pytest.raises(SnapshotError, match="no vector snapshot"):
        MemoryIndex.load(tmp_path / "missing.faiss", Q, D)
    index.save(path)
    with pytest.raises(SnapshotError, match="another shape"):
        MemoryIndex.load(path, Q + 1, D)


def _store(ids, vectors):
    """Stored vectors by image id, as the catalog holds them for re-scoring."""
    return {int(i): v for i, v in zip(ids, vectors, strict=True)}


def _compressed(ids, vectors):
    index = MemoryIndex(Q, D, "compressed")
    index.add(ids, vectors)
    return index


@pytest.mark.parametrize("k", [1, 10, 60])
def test_compressed_results_are_exact_scores_of_its_candidates(data, k):
    ids, vectors, texts = data  # 60 images: fewer than the candidates, so all are re-scored
    index = _compressed(ids, vectors)
    assert index.kind == "compressed" and index.ntotal == len(ids) * Q
    assert all(not first.exact for first in index.search(texts, k))  # codes: no scores of its own
    for text, got in zip(texts, ranked(index, texts, k, store=_store(ids, vectors)), strict=True):
        _assert_same(got, brute_force(ids, vectors, text, k))


def test_compressed_deletes_filters_and_snapshots(tmp_path, data):
    ids, vectors, texts = data
    index = _compressed(ids, vectors)
    index.remove(ids[::3])
    keep = np.isin(ids, ids[::3], invert=True)
    store = _store(ids[keep], vectors[keep])  # the catalog drops removed images' vectors too
    for text, got in zip(texts, ranked(index, texts, 10, store=store), strict=True):
        _assert_same(got, brute_force(ids[keep], vectors[keep], text, 10))
    allowed = ids[keep][:7]
    for text, got in zip(texts, ranked(index, texts, 5, allowed=allowed, store=store), strict=True):
        _assert_same(got, brute_force(ids, vectors, text, 5, allowed))
    index.generation = 3
    index.save(tmp_path / "vectors.faiss")
    loaded = MemoryIndex.load(tmp_path / "vectors.faiss", Q, D)
    assert (loaded.kind, loaded.generation, loaded.trained_on) == ("compressed", 3, len(ids))
    assert ranked(loaded, texts, 5, store=store) == ranked(index, texts, 5, store=store)
    with pytest.raises(SearchError, match="no vectors to iterate"):
        list(loaded.iter_vectors())


@pytest.mark.parametrize("rows_per_list", [compressed.ROWS_PER_LIST, 2])
def test_compressed_recall_against_exact_on_clustered_vectors(rows_per_list):
    """5,000 images in 100 clusters, 32 dimensions: far more images than candidates; at the
    default sizing 8 inverted lists, all probed; with 2 rows a list, 64 lists, 8 probed."""
    rng = np.random.default_rng(7)
    n, dim, queries = 5000, 32, 4
    centres = _unit(rng.normal(size=(100, dim)))
    noise = 0.12 * rng.normal(size=(n, queries, dim))  # about 0.7 of the centre's length
    vectors = _unit(centres[rng.integers(0, 100, n)][:, None, :] + noise)
    vectors = vectors.astype(np.float16).astype(np.float32)
    ids = np.arange(n, dtype=np.int64) * 3
    index = MemoryIndex(queries, dim, "compressed", rows_per_list=rows_per_list)
    index.train(vectors)
    expected_lists = 8 if rows_per_list == 16 else 64
    assert index.lists == compressed.lists_for(n * queries, rows_per_list) == expected_lists
    index.add(ids, vectors)
    texts = _unit(centres[rng.integers(0, 100, 50)] + 0.12 * rng.normal(size=(50, dim)))
    hits = 0
    for text, got in zip(texts, ranked(index, texts, 10, store=_store(ids, vectors)), strict=True):
        truth = np.argsort(-(vectors @ text).max(axis=1), kind="stable")[:10]
        hits += len({i for i, _ in got} & set(ids[truth].tolist()))
    assert hits / 500 >= 0.95, hits / 500


def test_unknown_kind_is_refused():
    with pytest.raises(SearchError, match="unknown index type"):
        MemoryIndex(Q, D, "hnsw")


def test_a_compressed_index_of_one_image_works(data):
    ids, vectors, texts = data
    index = _compressed(ids[:1], vectors[:1])  # 4 rows: fewer than the quantiser's 16 centroids
    assert [i for i, _ in ranked(index, texts[:1], 5, store=_store(ids[:1], vectors[:1]))[0]] == [int(ids[0])]


def test_first_stage_sizing():
    assert [compressed.lists_for(rows) for rows in (4, 20_000, 32 * 20_000, 32 * 10**6, 32 * 10**7)] == [
        1, 8, 64, 256, 1024]
    assert [compressed.quantiser(8, rows).nprobe for rows in (4, 32 * 10**6, 32 * 10**7)] == [1, 16, 64]
    assert [compressed.candidates_per_hit(images) for images in (10, 100_000, 10**6, 10**7)] == [
        32, 32, 125, 256]


@pytest.fixture
def three_slices():
    """Indexes made now hold three slices (one per FAISS thread), as on a 3-core machine."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(3)
    yield
    faiss.omp_set_num_threads(before)


@pytest.mark.parametrize("kind", ["exact", "compressed"])
def test_an_index_in_slices_searches_like_one(tmp_path, data, three_slices, kind):
    ids, vectors, texts = data
    vectors = vectors.copy()
    vectors[40:50] = vectors[3]  # ties across slices
    index = MemoryIndex(Q, D, kind)
    for start in range(0, len(ids), 7):  # batches of images spread over the slices
        index.add(ids[start : start + 7], vectors[start : start + 7])
    held = index.slice_sizes
    assert len(held) == 3 and min(held) > 0 and sum(held) == len(ids) * Q
    index.remove(ids[:5])
    keep_ids, keep = ids[5:], vectors[5:]
    allowed = keep_ids[::3]
    path = tmp_path / "vectors.faiss"
    index.save(path)
    loaded = MemoryIndex.load(path, Q, D)
    assert loaded.slice_sizes == index.slice_sizes
    store = _store(keep_ids, keep)
    for k in (1, 6, 30):
        batch = ranked(loaded, texts, k, store=store)  # several queries: the slices in turn
        for text, got in zip(texts, batch, strict=True):
            one = ranked(loaded, text, k, store=store)[0]  # one query: a thread per slice
            assert one == got
            if kind == "exact":
                _assert_same(got, brute_force(keep_ids, keep, text, k))
            filtered = ranked(loaded, text, k, allowed=allowed, store=store)[0]
            assert {i for i, _ in filtered} <= set(allowed.tolist()) and len(filtered) == min(k, len(allowed))
            if kind == "exact":
                _assert_same(filtered, brute_force(keep_ids, keep, text, k, allowed))
    if kind == "exact":
        got_ids, got = _all_vectors(loaded)
        order = np.argsort(keep_ids)
        np.testing.assert_array_equal(got_ids, keep_ids[order])
        np.testing.assert_allclose(got, keep[order], atol=1e-6)
