"""The vector snapshot of a collection: which kind it wants, and getting an index in step with
the catalog, from the snapshot file when it covers the catalog, else rebuilt from the
catalog's stored vectors (no model call). `Collection` decides when; this module, how.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .catalog import Catalog
from .vectors import MemoryIndex, SnapshotError

SNAPSHOT = "vectors.faiss"


@dataclass(frozen=True)
class IndexPolicy:
    """How a collection chooses and trains its vector index."""

    compressed_from: int = 20_000  # images; where `auto` switches from exact to compressed
    training_sample: int = 8_192  # images whose vectors train a compressed index's quantiser


DEFAULT_POLICY = IndexPolicy()


@dataclass(frozen=True)
class Wanted:
    """The index a collection wants: its vector shape, its kind and how to size it."""

    queries: int
    dim: int
    index_type: str  # auto, exact or compressed
    policy: IndexPolicy

    def kind(self, images: int) -> str:
        if self.index_type != "auto":
            return self.index_type
        return "compressed" if images >= self.policy.compressed_from else "exact"

    def fits(self, index: MemoryIndex) -> bool:
        """`index` is of the wanted kind for its size and needs no retraining."""
        return index.kind == self.kind(len(index)) and not index.needs_training

    def empty(self, images: int = 0) -> MemoryIndex:
        return MemoryIndex(self.queries, self.dim, self.kind(images))


def load_current(path: Path, wanted: Wanted, catalog: Catalog) -> MemoryIndex | None:
    """The snapshot at `path` when it matches the catalog (its generation, and a row for
    every stored vector) and fits; None when it is behind, missing, corrupt, of another kind,
    or holds another count of vectors than the catalog (a writer that saved what it had,
    unaware of another's images)."""
    try:
        index = MemoryIndex.load(path, wanted.queries, wanted.dim)
    except SnapshotError:
        return None
    if index.generation != catalog.generation or not wanted.fits(index):
        return None
    return index if len(index) == catalog.stats()["with_vectors"] else None


def rebuild(catalog: Catalog, wanted: Wanted) -> MemoryIndex:
    """A fresh index of the wanted kind from the catalog's vectors, tagged with its
    generation; a compressed one is trained first on an even sample of them (a second pass)."""
    generation = catalog.generation
    total = catalog.stats()["with_vectors"]
    index = wanted.empty(images=total)
    shape = (wanted.queries, wanted.dim)
    if index.kind == "compressed":
        stride = max(1, total // wanted.policy.training_sample)
        # copies: a strided view would keep each whole chunk (1 GB at a million images) alive
        sample = [v[::stride].copy() for _, v in catalog.iter_vectors(shape, chunk=stride * 256)]
        if sample:
            index.train(np.concatenate(sample), population=total)
    for ids, vectors in catalog.iter_vectors(shape):
        index.add(ids, vectors)
    index.generation = generation
    return index
