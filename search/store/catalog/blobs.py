"""Vectors as the catalog stores them (float16 blobs): `StoredVectors`, which the catalog
holds as `catalog.vectors`, reads one, many at once on several connections, or all."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from .schema import ImageRow, VectorRow
from .view import View

T = TypeVar("T")
READERS = 16  # connections reading one request's vectors at once, at most
IDS_A_READER = 64  # and one for each this many ids: fewer when the file is in the page cache
PARALLEL_READ = 256  # vectors asked for at once from which reads run on several connections
Each = Callable[[np.ndarray], np.ndarray]


class StoredVectors:
    """Stored vectors of the images the catalog's view sees (`view`): `one` and `iterate`
    narrow to them, `many` is asked for ids that the view's vector index holds."""

    def __init__(self, engine: Engine, view: View) -> None:
        self._engine = engine
        self._view = view
        self._pool: ThreadPoolExecutor | None = None  # readers of many vectors, made on first use

    def one(self, image_id: int, shape: tuple[int, int]) -> np.ndarray | None:
        """(Q, D) float16 stored vectors of one image, or None."""
        with Session(self._engine) as session:
            data = session.scalar(self._select(VectorRow.data).where(VectorRow.image_id == image_id))
            return None if data is None else decode(data, shape)

    def many(self, ids: Iterable[int], shape: tuple[int, int], each: Each | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
        """(the ids that have vectors, ascending and once each; their (n, Q, D) float16 vectors,
        or what `each` makes of them), for ids the view's vector index gave.

        `each` runs on every part's (m, Q, D) vectors on the thread that read them: a caller
        that needs one score an image (re-scoring) then has the parts converted and scored on
        every core, and never holds them all (at a million images, 1,250 candidates are 41 MB
        as float32; BENCHMARKS.md has the timings)."""
        wanted = sorted({int(i) for i in ids})  # in id order each reader takes one stretch of the file
        each = each or (lambda vectors: vectors)
        # not narrowed to the view: these ids come from the view's own vector index (candidates
        # to re-score), and joining each to its image row cost 40 % more on 1,000 of them
        chosen = select(VectorRow.image_id, VectorRow.data)

        def read(part: list[int]) -> tuple[list[int], np.ndarray]:
            with Session(self._engine) as session:
                found = dict(session.execute(
                    chosen.where(VectorRow.image_id.in_(part))).all())
            present = [i for i in part if i in found]
            return present, each(decode_many([found[i] for i in present], shape))

        parts = read_many(wanted, read, self._readers() if len(wanted) >= PARALLEL_READ else None)
        if not parts:
            return np.zeros(0, dtype=np.int64), each(np.zeros((0, *shape), dtype=np.float16))
        return (np.array([i for present, _ in parts for i in present], dtype=np.int64),
                np.concatenate([values for _, values in parts]))

    def iterate(self, shape: tuple[int, int], chunk: int = 2048,
                at: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids (n,), vectors (n, Q, D) float16) of every stored image in id order, `chunk` at
        a time, at generation `at` (None: the view's, as the call began)."""
        last, chosen = -1, self._select(VectorRow.image_id, VectorRow.data, at=at)
        while True:
            with Session(self._engine) as session:
                rows = session.execute(
                    chosen.where(VectorRow.image_id > last).order_by(VectorRow.image_id).limit(chunk)
                ).all()
            if not rows:
                return
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            yield ids, decode_many([r[1] for r in rows], shape)
            last = int(ids[-1])

    def _select(self, *columns, at: int | None = None):
        """SELECT `columns` of the vectors whose image is seen at `at` (None: the view's)."""
        seen = self._view.generation if at is None else at
        joined = select(*columns).join(ImageRow, ImageRow.id == VectorRow.image_id)
        return joined.where(self._view.visible(seen))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()

    def _readers(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(READERS, thread_name_prefix="catalog-read")
        return self._pool


def chunks(items: list, size: int = 1000) -> Iterator[list]:
    """Pieces small enough for any database's limit on bound parameters."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def encode(vectors: np.ndarray) -> bytes:
    return np.ascontiguousarray(vectors, dtype=np.float16).tobytes()


def decode(data: bytes, shape: tuple[int, int]) -> np.ndarray:
    """(Q, D) float16, as stored (read-only: a view of the blob)."""
    return np.frombuffer(data, dtype=np.float16).reshape(shape)


def decode_many(blobs: list[bytes], shape: tuple[int, int]) -> np.ndarray:
    """(n, *shape) float16 from n blobs in one pass (per blob, numpy's overhead doubled the
    time a query re-scoring 1,250 candidates spends here)."""
    return np.frombuffer(b"".join(blobs), dtype=np.float16).reshape(-1, *shape)


def read_many(ids: list[int], read: Callable[[list[int]], T], pool: ThreadPoolExecutor | None) -> list[T]:
    """`read(part)` for each of `ids`' contiguous parts, in order, on `pool`'s threads when given.

    A compressed index re-scores about 1,000 candidates a query at a million images, one
    random read each where the catalog is not in the page cache; one connection waits for
    them one at a time, several keep the disk busy (BENCHMARKS.md has the figures). SQLite
    releases the GIL while it reads, and numpy while it converts, so each part is decoded
    on its thread too.

    Each connection has its cost, though: when the file is in the page cache (a 100,000-image
    catalog is), a text search's 320 candidates read on 16 connections took twice as long
    as on 4, and the server answered 26 searches a second instead of 36 (BENCHMARKS.md). So
    a request gets a connection for each `IDS_A_READER` ids, up to `READERS`: 5 for 320, all
    16 for the 1,000 and more that a million-image search reads from disk.
    """
    if pool is None:
        return [read(part) for part in chunks(ids)]
    readers = min(READERS, -(-len(ids) // IDS_A_READER))
    split = np.array_split(np.array(ids, dtype=np.int64), readers)
    return list(pool.map(read, [piece.tolist() for piece in split if len(piece)]))

