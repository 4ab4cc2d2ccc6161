"""A compressed index built and searched in shards, for collections beyond one build's memory.

The first stage (`compressed.quantiser`, IVF-PQ fast-scan) is trained once, on an even
sample of the vectors. Shards are then filled one at a time from a stream of (image ids,
vectors), each written to its own file (`shard-0000.faiss`, ...) and dropped, so a build
holds one shard's codes in memory, never the whole index. Every shard is a copy of the
same trained index, so their codes and scores are comparable. Searching opens the shards
as the `Parts` of one index, which asks each and merges their best rows by score (one query
asks them on a thread each: FAISS itself would run it on one core); that is the compressed
kind's first stage, and `compressed.search` re-scores its candidates exactly from the
stored vectors, as for a single index. A shard per process or per machine is the same merge
over the network; it is not built here.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import faiss
import numpy as np

from . import compressed
from .errors import SearchError
from .parts import Parts
from .vectors import Fetch

PATTERN = "shard-{:04d}.faiss"


def build(folder: Path, sample: np.ndarray, population: int,
          batches: Iterable[tuple[np.ndarray, np.ndarray]], images_per_shard: int) -> list[Path]:
    """Train on (n, Q, D) `sample`, drawn evenly from `population` images, then write shards
    of at most `images_per_shard` images from `batches` of (ids (n,), vectors (n, Q, D))."""
    queries, dim = sample.shape[1:]
    trained = compressed.quantiser(dim, population * queries)
    trained.train(np.ascontiguousarray(sample.reshape(-1, dim), dtype=np.float32))
    template = faiss.serialize_index(trained)  # an empty, trained copy for every shard
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    shard, held = None, 0
    for ids, vectors in batches:
        start = 0
        while start < len(ids):
            if shard is None:
                shard, held = faiss.deserialize_index(template), 0
            take = min(images_per_shard - held, len(ids) - start)
            rows = np.ascontiguousarray(vectors[start : start + take].reshape(-1, dim), dtype=np.float32)
            shard.add_with_ids(rows, _row_ids(ids[start : start + take], queries))
            held, start = held + take, start + take
            if held == images_per_shard:
                written.append(_write(shard, folder, len(written)))
                shard = None
    if shard is not None:
        written.append(_write(shard, folder, len(written)))
    return written


class ShardedIndex:
    """The shards of `folder` as one first stage; `search` as `VectorIndex.search` gives it
    for the compressed kind."""

    kind = "compressed"

    def __init__(self, shards: list[faiss.Index], queries: int, dim: int, fetch: Fetch) -> None:
        if not shards:
            raise SearchError("no index shards to search")
        self.queries, self.dim, self.fetch = queries, dim, fetch
        self._index = Parts(shards)

    @classmethod
    def open(cls, folder: Path, queries: int, dim: int, fetch: Fetch) -> ShardedIndex:
        paths = sorted(folder.glob("shard-*.faiss"))
        return cls([faiss.read_index(str(path)) for path in paths], queries, dim, fetch)

    @property
    def ntotal(self) -> int:
        return self._index.ntotal

    def __len__(self) -> int:
        return self.ntotal // self.queries

    def top_rows(self, text_vecs: np.ndarray, rows: int) -> np.ndarray:
        return self._index.search(text_vecs, rows)[1]

    def search(self, text_vecs: np.ndarray, k: int,
               allowed: np.ndarray | None = None) -> list[list[tuple[int, float]]]:
        text_vecs = np.ascontiguousarray(np.atleast_2d(text_vecs), dtype=np.float32)
        return compressed.search(self, text_vecs, k, allowed)


def _row_ids(image_ids: np.ndarray, queries: int) -> np.ndarray:
    return (np.asarray(image_ids, dtype=np.int64)[:, None] * queries + np.arange(queries)).reshape(-1)


def _write(shard: faiss.Index, folder: Path, number: int) -> Path:
    path = folder / PATTERN.format(number)
    faiss.write_index(shard, str(path))
    return path
