"""The exact kind's rows read in place: a text query's best rows, and an image's score
against every image.

One text vector against every row is a matrix-vector product that memory bandwidth bounds.
FAISS's flat search runs it a row at a time on one thread a slice and keeps a heap: 9.8 GB/s
at 100,000 images (3.28 GB of rows) on an AVX2 EPYC, where BLAS's product over the same rows,
then a partition for the best, read at 22 GB/s (BENCHMARKS.md, run 13). So an unfiltered
search of the exact kind is this product, each slice on a thread of its own with BLAS on
that thread alone (`vectors.set_threads`); a filtered one stays FAISS's, whose selector
skips the rows it leaves out.
"""

from __future__ import annotations

import faiss
import numpy as np

from .slices import Slices


def rows_of(piece: faiss.Index) -> np.ndarray:
    """(rows, D) float32: a view of an exact slice's rows, no copy (valid while it lives)."""
    flat = faiss.downcast_index(piece.index)
    return faiss.rev_swig_ptr(flat.get_xb(), piece.ntotal * flat.d).reshape(piece.ntotal, flat.d)


def ids_of(piece: faiss.Index) -> np.ndarray:
    """(rows,) int64: a view of an exact slice's row ids."""
    return faiss.rev_swig_ptr(piece.id_map.data(), piece.ntotal)


def best_rows(slices: Slices, text_vecs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids), each (T, k): every slice's best k rows for each (T, D) text vector,
    merged, by score descending (ids -1 and scores -inf past the rows there are). Each slice
    is read on a thread of its own (`Slices.map`), BLAS on that thread alone (`runtime`)."""

    def scan(piece: faiss.Index) -> tuple[np.ndarray, np.ndarray]:
        rows = rows_of(piece)
        # a matrix-vector product for each vector: the same sums however many are asked at once
        scores = np.stack([rows @ text for text in text_vecs])  # (T, rows)
        take = min(k, scores.shape[1])
        best = np.argpartition(-scores, take - 1, axis=1)[:, :take]
        return np.take_along_axis(scores, best, 1), ids_of(piece)[best]

    found = slices.map(scan)
    if not found:
        return np.full((len(text_vecs), k), -np.inf, np.float32), np.full((len(text_vecs), k), -1, np.int64)
    scores = np.concatenate([s for s, _ in found], axis=1)
    ids = np.concatenate([i for _, i in found], axis=1)
    order = np.lexsort((ids, -scores), axis=1)[:, :k]
    scores, ids = np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)
    if scores.shape[1] < k:
        pad = k - scores.shape[1]
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
    return scores, ids
