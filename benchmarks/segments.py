"""A compressed index built and searched in segments, for collections beyond one build's memory:
the ten-million-vector benchmark (`benchmarks.large`) builds one; the product does not.

The first stage (`compressed.quantiser`, IVF-PQ fast-scan) is trained once, on an even
sample of the vectors. Segments are then filled one at a time from a stream of (image ids,
vectors), each written to its own file (`segment-0000.faiss`, ...) and dropped, so a build
holds one segment's codes in memory, never the whole index. Every segment is a copy of the
same trained index, so their codes and scores are comparable. Searching opens the segments
as the slices of one index, which asks each and merges their best rows by score (one query
asks them on a thread each: FAISS itself would run it on one core); its candidates are
re-scored exactly from the stored vectors by the query code, as for a compressed index in
memory. A segment per process or per machine is the same merge over the network; it is not
built here.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import faiss
import numpy as np

from search.errors import SearchError
from search.store.vectors import compressed
from search.store.vectors.base import Candidates, as_rows, row_ids
from search.store.vectors.slices import Slices

PATTERN = "segment-{:04d}.faiss"


def build(folder: Path, sample: np.ndarray, population: int,
          batches: Iterable[tuple[np.ndarray, np.ndarray]], images_per_segment: int) -> list[Path]:
    """Train on (n, Q, D) `sample`, drawn evenly from `population` images, then write segments
    of at most `images_per_segment` images from `batches` of (ids (n,), vectors (n, Q, D))."""
    queries, dim = sample.shape[1:]
    template = faiss.serialize_index(compressed.train(dim, sample.reshape(-1, dim), population * queries))
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    segment, held = None, 0
    for ids, vectors in batches:
        start = 0
        while start < len(ids):
            if segment is None:
                segment, held = faiss.deserialize_index(template), 0  # an empty, trained copy
            take = min(images_per_segment - held, len(ids) - start)
            rows = np.ascontiguousarray(vectors[start : start + take].reshape(-1, dim), dtype=np.float32)
            segment.add_with_ids(rows, row_ids(ids[start : start + take], queries))
            held, start = held + take, start + take
            if held == images_per_segment:
                written.append(_write(segment, folder, len(written)))
                segment = None
    if segment is not None:
        written.append(_write(segment, folder, len(written)))
    return written


class SegmentedIndex:
    """The segments of a folder as one compressed first stage (read only)."""

    kind = "compressed"

    def __init__(self, segments: list[faiss.Index], queries: int, dim: int) -> None:
        if not segments:
            raise SearchError("no index segments to search")
        self.queries, self.dim = queries, dim
        self.per_hit: int | None = None
        self._slices = Slices(segments)

    @classmethod
    def open(cls, folder: Path, queries: int, dim: int) -> SegmentedIndex:
        paths = sorted(folder.glob("segment-*.faiss"))
        return cls([faiss.read_index(str(path)) for path in paths], queries, dim)

    @property
    def ntotal(self) -> int:
        return self._slices.ntotal

    def __len__(self) -> int:
        return self.ntotal // self.queries

    def search(self, text_vecs: np.ndarray, k: int, allowed: np.ndarray | None = None,
               depth: int | None = None) -> list[Candidates]:
        return compressed.candidates(self._slices, self.queries, as_rows(text_vecs), k, allowed, self.per_hit,
                                     depth)


def _write(segment: faiss.Index, folder: Path, number: int) -> Path:
    path = folder / PATTERN.format(number)
    faiss.write_index(segment, str(path))
    return path
