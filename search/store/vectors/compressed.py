"""The compressed first stage: product-quantised rows whose candidates are re-scored exactly.

Every query vector is held as dim/8 four-bit codes (PQ fast-scan: 16 bytes for 256
dimensions, 512 bytes for an image's 32 vectors, against 16 KB in float16), in the inverted
lists of an IVF index: each code is of the vector's offset from its list's centre, and a
query scans only the `nprobe` lists nearest to it. A text query takes its best
`ROWS_PER_CANDIDATE * candidates` rows and hands the images they belong to, in order, back
as candidates without scores: the query code re-scores each with the exact max-sim over its
stored vectors (`search.query.scoring`). Only the codes and their ids stay in memory.

How many candidates: four-bit codes rank the images near a query only roughly, and the
number of near-ties around a query grows with the collection, so the candidates re-scored
per result do too (`candidates_per_hit`; `benchmarks.candidates` measures recall against
it, and BENCHMARKS.md has the figures).
"""

from __future__ import annotations

import faiss
import numpy as np

from .base import NONE, Candidates
from .slices import Slices

CANDIDATES_PER_HIT = (32, 256)  # least and most images re-scored exactly per result asked for
IMAGES_PER_CANDIDATE = 8_000  # above 32 a hit, one more candidate per hit for this many images
MIN_CANDIDATES = 64
ROWS_PER_CANDIDATE = 4  # first-stage rows fetched per candidate image
ROWS_PER_LIST = 16  # inverted lists: about sqrt(rows) / this, a power of two, at most MAX_LISTS
MAX_LISTS = 1024
PROBED = 16  # a query scans one list in this many, and at least 8


def quantiser(dim: int, rows: int = 0, rows_per_list: int = ROWS_PER_LIST) -> faiss.Index:
    """An untrained first stage sized for `rows` vectors: at a million images (32 million
    rows) 256 lists, 16 probed; a few images get one list, which is a plain PQ scan."""
    lists = lists_for(rows, rows_per_list)
    index = faiss.IndexIVFPQFastScan(faiss.IndexFlatIP(dim), dim, lists, max(1, dim // 8), 4,
                                     faiss.METRIC_INNER_PRODUCT)
    index.nprobe = min(lists, max(8, lists // PROBED))
    return index


def lists_for(rows: int, rows_per_list: int = ROWS_PER_LIST) -> int:
    wanted = np.sqrt(max(rows, 1)) / rows_per_list
    lists = 1 << max(0, int(np.round(np.log2(max(wanted, 1)))))
    return int(min(MAX_LISTS, lists, max(1, rows // 64)))  # k-means wants 39+ points a centre


def train(dim: int, sample: np.ndarray, rows: int, rows_per_list: int = ROWS_PER_LIST) -> faiss.Index:
    """A first stage sized for `rows` vectors, trained on (n, D) `sample` rows."""
    trained = quantiser(dim, rows, rows_per_list)
    trained.train(_enough(np.ascontiguousarray(sample, dtype=np.float32)))
    return trained


def candidates_per_hit(images: int) -> int:
    least, most = CANDIDATES_PER_HIT
    return int(min(most, max(least, -(-images // IMAGES_PER_CANDIDATE))))


def candidates(slices: Slices, queries: int, text_vecs: np.ndarray, k: int, allowed: np.ndarray | None,
               per_hit: int | None = None, depth: int | None = None) -> list[Candidates]:
    """Per text, the images of its best rows in first-stage order, unscored; with `allowed`,
    only those (every allowed image when fewer than k remain: a narrow filter is scored
    exactly in full). `per_hit` overrides `candidates_per_hit`; `depth`, the candidates
    themselves (a caller that asks with many vectors at once and unites their answers)."""
    if allowed is not None and len(allowed) == 0:
        return [NONE for _ in text_vecs]
    images = slices.ntotal // queries
    wanted = depth or max(MIN_CANDIDATES, (per_hit or candidates_per_hit(images)) * k)
    rows = min(slices.ntotal, ROWS_PER_CANDIDATE * wanted)
    results = []
    for found in slices.search(text_vecs, rows)[1]:
        owners = found[found >= 0] // queries
        _, first = np.unique(owners, return_index=True)
        ids = owners[np.sort(first)][:wanted]  # in first-stage order
        if allowed is not None:
            ids = ids[np.isin(ids, allowed)]
            if len(ids) < k:
                ids = np.asarray(allowed, dtype=np.int64)
        results.append(Candidates(ids, None))
    return results


def _enough(rows: np.ndarray, least: int = 256) -> np.ndarray:
    """Rows repeated up to `least`: k-means needs at least as many points as centroids (16
    per sub-quantizer), which a collection of a few images does not have."""
    return rows if len(rows) >= least else np.resize(rows, (least, rows.shape[1]))
