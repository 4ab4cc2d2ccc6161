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
    """FAISS's OpenMP threads (`runtime.configure` sets them beside torch's), and numpy's BLAS
    on one thread: the exact kind reads its slices on threads of its own (`exact`), and
    OpenBLAS's workers, left spinning after a product, took the cores from the next text
    query's encoder (torch): on 2 cores at 10,000 images it took 98 to 110 ms instead of 60."""
    import faiss
    from threadpoolctl import threadpool_limits

    faiss.omp_set_num_threads(threads)
    threadpool_limits(1, user_api="blas")
