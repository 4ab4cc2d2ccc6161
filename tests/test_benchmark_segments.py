"""A compressed index built segment by segment searches as one index holding every segment."""

from __future__ import annotations

import faiss
import numpy as np

from benchmarks.segments import SegmentedIndex
from benchmarks.segments import build as build_segments
from search.query import scoring
from tests.support.vectors import in_memory

Q, D = 4, 32


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _clustered(n, seed=3):
    rng = np.random.default_rng(seed)
    centres = _unit(rng.normal(size=(60, D)))
    vectors = _unit(centres[rng.integers(0, 60, n)][:, None, :] + 0.12 * rng.normal(size=(n, Q, D)))
    texts = _unit(centres[rng.integers(0, 60, 40)] + 0.12 * rng.normal(size=(40, D)))
    return vectors.astype(np.float16).astype(np.float32), texts.astype(np.float32)


def test_segments_search_as_their_merge_and_recall_exact_results(tmp_path):
    n = 3000
    vectors, texts = _clustered(n)
    ids = np.arange(n, dtype=np.int64) * 3 + 1
    read = in_memory(dict(zip(ids.tolist(), vectors, strict=True)))

    def ranked(index):
        return [scoring.ranked(first, text, 10, read) for first, text in zip(index.search(texts, 10), texts,
                                                                               strict=True)]

    batches = ((ids[i : i + 256], vectors[i : i + 256]) for i in range(0, n, 256))
    paths = build_segments(tmp_path, vectors[::4], n, batches, images_per_segment=700)
    assert [p.name for p in paths] == [f"segment-{i:04d}.faiss" for i in range(5)]
    segmented = SegmentedIndex.open(tmp_path, Q, D)
    assert segmented.ntotal == n * Q and len(segmented) == n
    assert [faiss.read_index(str(p)).ntotal for p in paths] == [700 * Q] * 4 + [200 * Q]

    merged = faiss.read_index(str(paths[0]))  # every segment in one index, as when it fits
    for path in paths[1:]:
        faiss.merge_into(merged, faiss.read_index(str(path)), False)
    whole = SegmentedIndex([merged], Q, D)
    got, expected = ranked(segmented), ranked(whole)
    assert [[i for i, _ in hits] for hits in got] == [[i for i, _ in hits] for hits in expected]

    hits = 0
    for text, found in zip(texts, got, strict=True):
        truth = ids[np.argsort(-(vectors @ text).max(axis=1), kind="stable")[:10]]
        hits += len({i for i, _ in found} & set(truth.tolist()))
    assert hits / (10 * len(texts)) >= 0.95
