"""A compressed index built shard by shard searches as one index holding every shard."""

from __future__ import annotations

import faiss
import numpy as np

from search.shards import ShardedIndex, build
from search.vectors import memory_fetch

Q, D = 4, 32


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _clustered(n, seed=3):
    rng = np.random.default_rng(seed)
    centres = _unit(rng.normal(size=(60, D)))
    vectors = _unit(centres[rng.integers(0, 60, n)][:, None, :] + 0.12 * rng.normal(size=(n, Q, D)))
    texts = _unit(centres[rng.integers(0, 60, 40)] + 0.12 * rng.normal(size=(40, D)))
    return vectors.astype(np.float16).astype(np.float32), texts.astype(np.float32)


def test_shards_search_as_their_merge_and_recall_exact_results(tmp_path):
    n = 3000
    vectors, texts = _clustered(n)
    ids = np.arange(n, dtype=np.int64) * 3 + 1
    fetch = memory_fetch(dict(zip(ids.tolist(), vectors, strict=True)))

    batches = ((ids[i : i + 256], vectors[i : i + 256]) for i in range(0, n, 256))
    paths = build(tmp_path, vectors[::4], n, batches, images_per_shard=700)
    assert [p.name for p in paths] == [f"shard-{i:04d}.faiss" for i in range(5)]
    sharded = ShardedIndex.open(tmp_path, Q, D, fetch)
    assert sharded.ntotal == n * Q and len(sharded) == n
    assert [faiss.read_index(str(p)).ntotal for p in paths] == [700 * Q] * 4 + [200 * Q]

    merged = faiss.read_index(str(paths[0]))  # every shard in one index, as when it fits
    for path in paths[1:]:
        faiss.merge_into(merged, faiss.read_index(str(path)), False)
    whole = ShardedIndex([merged], Q, D, fetch)
    got, expected = sharded.search(texts, 10), whole.search(texts, 10)
    assert [[i for i, _ in hits] for hits in got] == [[i for i, _ in hits] for hits in expected]

    hits = 0
    for text, found in zip(texts, got, strict=True):
        truth = ids[np.argsort(-(vectors @ text).max(axis=1), kind="stable")[:10]]
        hits += len({i for i, _ in found} & set(truth.tolist()))
    assert hits / (10 * len(texts)) >= 0.95
