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
