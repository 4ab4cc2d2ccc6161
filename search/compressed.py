"""The compressed kind of vector index: a product-quantised first stage, re-scored exactly.

Every query vector is held as dim/8 four-bit codes (PQ fast-scan: 16 bytes for 256
dimensions, 512 bytes for an image's 32 vectors, against 16 KB in float16), in the inverted
lists of a coarse k-means (IVF): each code is of the vector's offset from its list's centre,
and a query scans only the `nprobe` lists nearest to it. A text query takes its best
`ROWS_PER_CANDIDATE * candidates` rows, the images they belong to, in order, as candidates,
and re-scores each candidate with the exact max-sim over its stored vectors, which the
catalog supplies. Only the codes and their ids stay in memory.

How many candidates: four-bit codes rank the images near a query only roughly, and the
number of near-ties around a query grows with the collection, so the candidates re-scored
per result do too (`candidates_per_hit`). Measured on clustered vectors with 1,000 images a
cluster (`benchmarks.candidates`, and a million in memory): recall@10 0.44 at 32 a hit,
0.76 at 64, 1.00 at 128; with 100 images a cluster 32 a hit gave 1.00.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import faiss
import numpy as np

if TYPE_CHECKING:
    from .vectors import VectorIndex

CANDIDATES_PER_HIT = (32, 256)  # least and most images re-scored exactly per result asked for
IMAGES_PER_CANDIDATE = 8_000  # above 32 a hit, one more candidate per hit for this many images
MIN_CANDIDATES = 64
ROWS_PER_CANDIDATE = 4  # first-stage rows fetched per candidate image
ROWS_PER_LIST = 16  # inverted lists: about sqrt(rows) / this, a power of two, at most MAX_LISTS
MAX_LISTS = 1024
PROBED = 16  # a query scans one list in this many, and at least 8


def quantiser(dim: int, rows: int = 0) -> faiss.Index:
    """An untrained first stage sized for `rows` vectors: at a million images (32 million
    rows) 256 lists, 16 probed; a few images get one list, which is a plain PQ scan."""
    lists = lists_for(rows)
    index = faiss.IndexIVFPQFastScan(faiss.IndexFlatIP(dim), dim, lists, max(1, dim // 8), 4,
                                     faiss.METRIC_INNER_PRODUCT)
    index.nprobe = min(lists, max(8, lists // PROBED))
    return index


def lists_for(rows: int) -> int:
    wanted = np.sqrt(max(rows, 1)) / ROWS_PER_LIST
    lists = 1 << max(0, int(np.round(np.log2(max(wanted, 1)))))
    return int(min(MAX_LISTS, lists, max(1, rows // 64)))  # k-means wants 39+ points a centre


def candidates_per_hit(images: int) -> int:
    least, most = CANDIDATES_PER_HIT
    return int(min(most, max(least, -(-images // IMAGES_PER_CANDIDATE))))


def search(index: VectorIndex, text_vecs: np.ndarray, k: int,
           allowed: np.ndarray | None) -> list[list[tuple[int, float]]]:
    if allowed is not None:
        allowed = np.asarray(allowed, dtype=np.int64)
        if len(allowed) == 0:
            return [[] for _ in text_vecs]
    wanted = max(MIN_CANDIDATES, candidates_per_hit(len(index)) * k)
    rows = min(index.ntotal, ROWS_PER_CANDIDATE * wanted)
    results = []
    for text, found in zip(text_vecs, index.top_rows(text_vecs, rows), strict=True):
        images = found[found >= 0] // index.queries
        _, first = np.unique(images, return_index=True)
        candidates = images[np.sort(first)][:wanted]  # in first-stage order
        if allowed is not None:
            candidates = candidates[np.isin(candidates, allowed)]
            if len(candidates) < k:  # a narrow filter: score every allowed image exactly
                candidates = allowed
        results.append(rescore(index, text, candidates, k))
    return results


def rescore(index: VectorIndex, text: np.ndarray, candidates: np.ndarray, k: int,
            chunk: int = 4096) -> list[tuple[int, float]]:
    """The exact top k of `candidates` by max-sim over their stored vectors."""
    ids, scores = [], []

    def max_sim(vectors: np.ndarray) -> np.ndarray:  # (m, Q, D) -> (m,), where they were read
        return (vectors @ text).max(axis=1)

    for start in range(0, len(candidates), chunk):
        found, best = index.fetch(candidates[start : start + chunk], max_sim)  # ids with stored vectors
        ids.append(found)
        scores.append(best)
    if not ids:
        return []
    ids, scores = np.concatenate(ids), np.concatenate(scores)
    order = np.lexsort((ids, -scores))[:k]
    return [(int(ids[i]), float(scores[i])) for i in order]
