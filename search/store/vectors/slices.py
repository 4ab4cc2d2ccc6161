"""A FAISS index split into slices that one query searches on as many threads.

FAISS parallelises a search over its queries, so one text query (the common case) runs on
one core however many the process may use. Measured at 100,000 images (3.2 million float16
rows of 256 dimensions): exact search took twice as long on one thread as in two halves
searched on two threads at once (FAISS releases the GIL); BENCHMARKS.md has the figures.

So an index is held as slices, one per thread, each a FAISS index of the same kind (copies
of one empty or trained template, so their scores compare): a batch of images goes to the
slice that holds fewest rows, an image's rows all to one slice. One query searches every
slice on its own thread and their best rows are merged by score; a batch of queries
searches the slices in turn, each on every thread, which is FAISS's own parallelism.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import faiss
import numpy as np


class Slices:
    def __init__(self, slices: list[faiss.Index]) -> None:
        self.slices = slices
        self._pool: ThreadPoolExecutor | None = None

    @classmethod
    def copies(cls, template: faiss.Index, count: int | None = None) -> Slices:
        """`count` copies of `template` (default: one per FAISS thread)."""
        blob = faiss.serialize_index(template)
        count = count or faiss.omp_get_max_threads()
        return cls([faiss.deserialize_index(blob) for _ in range(max(1, count))])

    @property
    def ntotal(self) -> int:
        return sum(piece.ntotal for piece in self.slices)

    @property
    def is_trained(self) -> bool:
        return self.slices[0].is_trained

    def add_with_ids(self, rows: np.ndarray, ids: np.ndarray) -> None:
        min(self.slices, key=lambda piece: piece.ntotal).add_with_ids(rows, ids)

    def remove_ids(self, selector: faiss.IDSelector) -> int:
        return sum(piece.remove_ids(selector) for piece in self.slices)

    def search(self, queries: np.ndarray, k: int,
               selector: faiss.IDSelector | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (n, k): the best rows over every slice, by score, of the rows
        `selector` lets through (default: all); ids -1 past the end."""
        found = self._each(lambda piece: piece.search(queries, k, params=_params(selector)), len(queries))
        scores = np.concatenate([s for s, _ in found], axis=1)
        ids = np.concatenate([i for _, i in found], axis=1)
        scores = np.where(ids >= 0, scores, -np.inf)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)

    def range_search(self, query: np.ndarray, radius: float,
                     selector: faiss.IDSelector | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of every row scoring above `radius` for one (1, D) query."""
        found = self._each(lambda piece: piece.range_search(query, radius, params=_params(selector)), 1)
        return np.concatenate([s for _, s, _ in found]), np.concatenate([i for _, _, i in found])

    def serialize(self) -> list[np.ndarray]:
        """Each slice as FAISS writes it: (bytes,) uint8 arrays."""
        return [faiss.serialize_index(piece) for piece in self.slices]

    @classmethod
    def deserialize(cls, payloads: list[bytes | memoryview]) -> Slices:
        return cls([faiss.deserialize_index(np.frombuffer(p, dtype=np.uint8)) for p in payloads])

    def map(self, call: Callable[[faiss.Index], tuple]) -> list[tuple]:
        """`call(slice)` for every slice that holds rows, on a thread each."""
        pieces = [piece for piece in self.slices if piece.ntotal]
        if len(pieces) <= 1:
            return [call(piece) for piece in pieces]
        return list(self._threads().map(call, pieces))

    def _threads(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=len(self.slices), thread_name_prefix="faiss-slice")
        return self._pool

    def _each(self, call: Callable[[faiss.Index], tuple], queries: int) -> list[tuple]:
        if queries > 1 or len(self.slices) == 1:
            return [call(piece) for piece in self.slices]
        return list(self._threads().map(call, self.slices))


def _params(selector: faiss.IDSelector | None) -> faiss.SearchParameters | None:
    """Parameters for one slice's search: never shared between slices, because IndexIDMap
    swaps its own selector into the object it is given while it searches."""
    return None if selector is None else faiss.SearchParameters(sel=selector)
