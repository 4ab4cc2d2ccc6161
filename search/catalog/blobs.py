"""Vectors as the catalog stores them (float16 blobs), and reading many of them at once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from .schema import VectorRow

T = TypeVar("T")
READERS = 16  # connections reading one request's vectors at once, at most
IDS_A_READER = 64  # and one for each this many ids: fewer when the file is in the page cache


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


def iterate(engine: Engine, shape: tuple[int, int], chunk: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(ids (n,), vectors (n, *shape) float16) of every stored image in id order, `chunk` at a time."""
    last = -1
    while True:
        with Session(engine) as session:
            rows = session.execute(
                select(VectorRow.image_id, VectorRow.data)
                .where(VectorRow.image_id > last).order_by(VectorRow.image_id).limit(chunk)
            ).all()
        if not rows:
            return
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        yield ids, decode_many([r[1] for r in rows], shape)
        last = int(ids[-1])
