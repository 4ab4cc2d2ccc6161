"""Stored vectors held in memory, for the vector index's tests and the benchmarks' sizing
experiments: a `search.query.scoring.Read` without a catalog."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from search.query.scoring import Each, Read


def in_memory(store: Mapping[int, np.ndarray]) -> Read:
    """A `Read` over (Q, D) vectors held in memory by image id."""

    def read(ids: np.ndarray, each: Each) -> tuple[np.ndarray, np.ndarray]:
        found = np.array(sorted({int(i) for i in ids} & store.keys()), dtype=np.int64)
        shape = next(iter(store.values())).shape
        vectors = np.stack([store[i] for i in found.tolist()]) if len(found) else np.zeros((0, *shape))
        return found, each(vectors)

    return read
