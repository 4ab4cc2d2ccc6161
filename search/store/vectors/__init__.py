"""The vector index: multi-vector max-sim over every image's Q query vectors, on FAISS.

The only package that imports faiss. `VectorIndex` is the interface of every kind; the
`exact` and `compressed` kinds a collection holds in memory are `MemoryIndex`. Each is a
first stage that returns `Candidates`; re-scoring unscored ones from the stored vectors is
the query code's (`search.query.scoring`).
"""

from .base import KINDS, NONE, Candidates, SnapshotError, VectorIndex
from .memory import MemoryIndex

__all__ = ["KINDS", "NONE", "Candidates", "MemoryIndex", "SnapshotError", "VectorIndex", "set_threads"]


def set_threads(threads: int) -> None:
    """FAISS's OpenMP threads (`runtime.configure` sets them beside torch's)."""
    import faiss

    faiss.omp_set_num_threads(threads)
