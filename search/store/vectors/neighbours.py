"""Each image's nearest others by one pooled vector: candidates for the duplicate finder,
with no all-pairs comparison past a few thousand images.

Up to `EXACT_UP_TO` vectors the search is exact (a flat inner-product index); above it an
inverted file (`IndexIVFFlat`, 4 x sqrt(n) lists, `PROBES` of them visited), trained on a
small sample with few k-means rounds (near copies lie so close together that coarse lists
still hold them together): each query reads about PROBES / lists of the collection (0.6 %
at 100,000 images).
"""

from __future__ import annotations

import math

import faiss
import numpy as np

EXACT_UP_TO = 20_000  # below this an exact search costs less than training the inverted file
PROBES = 8
TRAIN_PER_LIST = 10  # k-means training points per list
TRAIN_ROUNDS = 10
BATCH = 8_192  # queries asked at once


def nearest(vectors: np.ndarray, k: int, *, seed: int = 0,
            exact_up_to: int = EXACT_UP_TO) -> tuple[np.ndarray, np.ndarray]:
    """For (n, D) float32 L2-normalised `vectors`: (n, k) indices of each one's nearest others
    (-1 where fewer exist) and their (n, k) cosines, best first; each row leaves itself out."""
    n, dim = vectors.shape
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    want = min(k + 1, n)
    if n <= exact_up_to:
        index = faiss.IndexFlatIP(dim)
    else:
        lists = int(4 * math.sqrt(n))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(seed).choice(n, min(n, lists * TRAIN_PER_LIST), replace=False)
        index.cp.niter, index.cp.min_points_per_centroid = TRAIN_ROUNDS, 1  # few points a list: on purpose
        index.train(vectors[np.sort(sample)])
        index.nprobe = PROBES
    index.add(vectors)
    found, cosines = [], []
    for start in range(0, n, BATCH):
        scores, ids = index.search(vectors[start : start + BATCH], want)
        rows = np.arange(start, start + len(ids))[:, None]
        order = np.argsort((ids == rows) | (ids < 0), axis=1, kind="stable")[:, :k]  # itself last
        ids, scores = np.take_along_axis(ids, order, 1), np.take_along_axis(scores, order, 1)
        missing = (ids == rows) | (ids < 0)
        pad = ((0, 0), (0, k - ids.shape[1]))  # fewer others than asked for
        found.append(np.pad(np.where(missing, -1, ids), pad, constant_values=-1))
        cosines.append(np.pad(np.where(missing, 0.0, scores).astype(np.float32), pad))
    return np.concatenate(found), np.concatenate(cosines)


def nearest_layouts(hashes: np.ndarray, k: int, *, seed: int = 0,
                    exact_up_to: int = EXACT_UP_TO) -> np.ndarray:
    """For (n,) signed 64-bit picture hashes: (n, k) indices of each one's nearest others by
    layout (`picturehash.distance`: the Hamming distance to the other hash or to its
    complement, whichever is less; -1 where fewer exist): exact up to `exact_up_to` hashes,
    from an inverted file of them above (as `nearest`)."""
    n = len(hashes)
    codes = np.ascontiguousarray(np.asarray(hashes, dtype=np.int64)).view(np.uint8).reshape(n, 8)
    if n <= exact_up_to:
        index = faiss.IndexBinaryFlat(64)
    else:
        index = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(64), 64, int(4 * math.sqrt(n)))
        sample = np.random.default_rng(seed).choice(n, min(n, index.nlist * TRAIN_PER_LIST), replace=False)
        index.cp.niter, index.cp.min_points_per_centroid = TRAIN_ROUNDS, 1
        index.train(codes[np.sort(sample)])
        index.nprobe = PROBES
    index.add(codes)
    want = min(k + 1, n)
    found = []
    for start in range(0, n, BATCH):
        query = codes[start : start + BATCH]
        near, ids = index.search(query, want)
        flipped, flipped_ids = index.search(np.ascontiguousarray(~query), want)
        every, ids = np.concatenate([near, flipped], 1), np.concatenate([ids, flipped_ids], 1)
        rows = np.arange(start, start + len(ids))[:, None]
        every = np.where((ids == rows) | (ids < 0), 1 << 30, every)  # itself and nothing last
        order = np.argsort(every, axis=1, kind="stable")
        ids = np.where(np.take_along_axis(every, order, 1) >= 1 << 30, -1, np.take_along_axis(ids, order, 1))
        found.append(_first_unique(ids, k))
    return np.concatenate(found) if found else np.zeros((0, k), dtype=np.int64)


def _first_unique(ids: np.ndarray, k: int) -> np.ndarray:
    """Each row's first `k` distinct ids (>= 0), in order, padded with -1."""
    order = np.argsort(ids, axis=1, kind="stable")
    sorted_ids = np.take_along_axis(ids, order, 1)
    repeat = np.zeros_like(ids, dtype=bool)
    np.put_along_axis(repeat, order[:, 1:], sorted_ids[:, 1:] == sorted_ids[:, :-1], 1)
    ids = np.where(repeat, -1, ids)
    keep = np.argsort(ids < 0, axis=1, kind="stable")[:, :k]  # distinct ids first, in their order
    ids = np.take_along_axis(ids, keep, 1)
    return np.pad(ids, ((0, 0), (0, k - ids.shape[1])), constant_values=-1)
