"""What every kind of vector index is to its callers: a first stage that proposes images.

Each image contributes Q rows (one per query vector) with FAISS id `image_id * Q + q`. A
first stage answers a text vector with `Candidates`: image ids, best first, with their exact
max-sim scores when the index holds exact vectors, or without scores when it holds codes
(the compressed kind), in which case the query code re-scores them from the stored vectors
(`search.query.scoring`). The index never reads the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ...errors import SearchError

KINDS = ("exact", "compressed")  # the kinds a collection holds in memory


class SnapshotError(SearchError):
    """The snapshot file is missing, truncated, corrupt, or for another vector shape."""


@dataclass(frozen=True)
class Candidates:
    ids: np.ndarray  # (n,) int64 image ids, best first
    scores: np.ndarray | None  # (n,) exact max-sim scores; None: re-score from the stored vectors

    @property
    def exact(self) -> bool:
        return self.scores is not None


NONE = Candidates(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))


class VectorIndex(Protocol):
    """The interface of the exact and compressed kinds (and of `benchmarks.segments`)."""

    kind: str
    queries: int  # Q: vectors an image
    dim: int  # D

    @property
    def ntotal(self) -> int:
        """Rows held: images × Q."""

    def __len__(self) -> int:
        """Images held."""

    def search(self, text_vecs: np.ndarray, k: int, allowed: np.ndarray | None = None,
               depth: int | None = None) -> list[Candidates]:
        """For each (D,) text vector, candidates for its top k images among `allowed` (all when
        None); `depth`: how many a kind without exact scores proposes (default: sized to k
        and to the index)."""


def row_ids(image_ids: np.ndarray, queries: int) -> np.ndarray:
    """(n * Q,) FAISS row ids of `image_ids`' vectors."""
    image_ids = np.asarray(image_ids, dtype=np.int64)
    return (image_ids[:, None] * queries + np.arange(queries)[None, :]).reshape(-1)


def as_rows(text_vecs: np.ndarray) -> np.ndarray:
    """(T, D) contiguous float32: what FAISS takes."""
    return np.ascontiguousarray(np.atleast_2d(text_vecs), dtype=np.float32)
